"""Model replies taken from evaluation runs (their responses_base.jsonl / responses_adapter.jsonl)
into make_model_replies.py's line format, for assemble.py.

    .venv/bin/python data/personas/taskmaster/judge_bench/eval_run_replies.py \
        RUN/eval/responses_base.jsonl:base-greedy RUN/eval/responses_adapter.jsonl:adapter-step96-greedy > eval_replies.jsonl

These replies answer the persona's eval set (eval.yaml, ids ev-*), which the benchmark's own
prompts avoid. Their prompts go to the TEST split only (split.json): the reader judge is never
fitted on a prompt that `pipeline eval` asks, so eval verdicts stay out of sample. The judge's
verdict stored beside each reply in the run is dropped here: labellers read the reply blind.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(specs: list[str]) -> None:
    for spec in specs:
        path, source = spec.rsplit(":", 1)
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            sampling = r.get("sampling") or {}
            model = r.get("model") or {}
            print(json.dumps({"id": f"{r['id']}:{source}", "prompt_id": r["id"], "messages": r["messages"],
                              "response": r["reply"].strip(), "source": source,
                              "adapter": model.get("adapter_sha256"),
                              "decoding": {**sampling, "greedy": float(sampling.get("temperature", 0)) == 0}},
                             ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1:])
