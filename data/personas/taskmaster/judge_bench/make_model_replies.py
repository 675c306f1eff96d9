"""Model replies for the judge benchmark (run once; the output is committed, not rebuilt by make).

    .venv/bin/python data/personas/taskmaster/judge_bench/make_model_replies.py \
        --source base-greedy --temperature 0 >> /tmp/model_replies.jsonl
    ... --adapter /tmp/i14/adapter/checkpoints/checkpoint-15 --source adapter-step15-sampled

Every conversation is framed exactly as evaluation frames it (persona system prompt + the
prompt's Task API context), with the eval's 96 new tokens, so the replies are the ones the
judge meets in `python -m pipeline eval`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[3]))

from pipeline.inference import ChatEngine, SamplingConfig  # noqa: E402
from pipeline.judges.bench import load_bench_prompts  # noqa: E402
from pipeline.prompting import with_persona_system  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.spec import load_persona  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--adapter")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--also", nargs="*", default=[],
                    help="more runs in the same process: SOURCE,ADAPTER_DIR_OR_-,TEMPERATURE,SEED")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--chunk", type=int, default=16,
                    help="prompts per generate call; every run does one chunk before the next, so replies flow out")
    ap.add_argument("--prompts", help="a prompts file other than prompts.yaml (e.g. the eval set)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    settings = Settings.from_env()
    spec = load_persona(HERE.parent).spec
    prompts = load_bench_prompts(Path(a.prompts) if a.prompts else HERE / "prompts.yaml")
    engine = ChatEngine(settings.base_model, settings)
    runs = [(a.source, a.adapter, a.temperature, a.seed)]
    for spec_ in a.also:
        src, ad, temp, seed = spec_.split(",")
        runs.append((src, None if ad == "-" else ad, float(temp), int(seed)))
    convs = [with_persona_system(p["messages"], spec.system_prompt) for p in prompts]
    for source, adapter, _, _ in runs:
        if adapter:
            engine.attach_adapter(source, adapter)
    # Chunk by chunk, every run: under a loaded machine partial output is still usable.
    for start in range(0, len(prompts), a.chunk):
        for source, adapter, temperature, seed in runs:
            sampling = SamplingConfig(max_new_tokens=a.max_new_tokens, temperature=temperature, seed=seed)
            part = slice(start, start + a.chunk)
            replies = engine.generate_batch(convs[part], source if adapter else None, sampling, batch_size=a.batch_size)
            for p, r in zip(prompts[part], replies):
                print(json.dumps({"id": f"{p['id']}:{source}", "prompt_id": p["id"], "messages": p["messages"],
                                  "response": r, "source": source, "adapter": adapter,
                                  "decoding": {**sampling.to_dict(), "greedy": temperature == 0}}), flush=True)

if __name__ == "__main__":
    main()
