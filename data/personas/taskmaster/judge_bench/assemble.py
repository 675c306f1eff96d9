"""Assemble replies.jsonl (and the blinded replies_blind.jsonl labellers read) from the model
replies (make_model_replies.py / eval_run_replies.py output) and the written replies (written.tsv: prompt_id|kind|text).

    .venv/bin/python data/personas/taskmaster/judge_bench/assemble.py /tmp/i14/r_*.jsonl

Ids are opaque (r-<hash>) and the blinded file is shuffled and carries no `source`, so a
labeller cannot read a reply's origin from its id or its neighbours.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[3]))

from pipeline.judges.bench import load_bench_prompts  # noqa: E402


def rid(prompt_id: str, source: str, response: str) -> str:
    return "r-" + hashlib.sha1(f"{prompt_id}\n{source}\n{response}".encode()).hexdigest()[:8]


def main(model_files: list[str]) -> None:
    prompts = {p["id"]: p for p in load_bench_prompts(HERE / "prompts.yaml")}
    rows = []
    for f in model_files:
        for line in Path(f).read_text().splitlines():
            r = json.loads(line)
            # eval-set prompts (ev-*, eval_run_replies.py) are not in prompts.yaml: their
            # conversation comes with the reply
            msgs = prompts[r["prompt_id"]]["messages"] if r["prompt_id"] in prompts else r["messages"]
            rows.append({"id": rid(r["prompt_id"], r["source"], r["response"]), "prompt_id": r["prompt_id"],
                         "messages": msgs, "response": r["response"],
                         "source": r["source"], "decoding": r["decoding"]})
    for line in (HERE / "written.tsv").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        pid, kind, text = line.split("|", 2)
        source = f"written-{kind}"
        rows.append({"id": rid(pid, source, text), "prompt_id": pid, "messages": prompts[pid]["messages"],
                     "response": text, "source": source})
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate reply ids"
    rows.sort(key=lambda r: (r["prompt_id"], r["source"], r["id"]))
    with open(HERE / "replies.jsonl", "w") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    blind = [{"id": r["id"], "messages": r["messages"], "response": r["response"]} for r in rows]
    random.Random(14).shuffle(blind)
    with open(HERE / "replies_blind.jsonl", "w") as fh:
        for r in blind:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(rows)} replies, {len(prompts)} prompts")


if __name__ == "__main__":
    main(sys.argv[1:])
