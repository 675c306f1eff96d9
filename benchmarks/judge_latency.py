"""Judge latency: ms per reply of the rubric and reader judges, one reply at a time (the online
path: the Evaluate tab, `judge score`) and in batches of 16 (eval, `judge score --file`).

    .venv/bin/python -m benchmarks judge_latency

Replies: the judge benchmark's first 64. The model load is excluded (once per process).
"""

from __future__ import annotations

import os
import statistics
import time

from pipeline.jsonl import read_jsonl
from pipeline.judges import get_judge
from pipeline.judges.base import JudgeItem
from pipeline.settings import REPO_ROOT
from pipeline.spec import load_persona

BENCH = REPO_ROOT / "data" / "personas" / "taskmaster" / "judge_bench" / "replies.jsonl"


def main(argv=None) -> int:
    persona = load_persona(REPO_ROOT / "data" / "personas" / "taskmaster")
    items = [JudgeItem(r["id"], r["messages"], r["response"]) for r in read_jsonl(BENCH)[:64]]
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"| judge | one at a time, median ms | one at a time, p90 ms | batch of 16, ms/reply |")
    print("|---|---|---|---|")
    for kind in ("rubric", "reader"):
        judge = get_judge(kind, persona)
        judge.judge_batch(items[:2])  # load the model, warm the caches
        single = []
        for it in items[:32]:
            t0 = time.perf_counter()
            judge.judge_batch([it])
            single.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        for i in range(0, len(items), 16):
            judge.judge_batch(items[i:i + 16])
        batch = (time.perf_counter() - t0) * 1000 / len(items)
        single.sort()
        print(f"| {judge.name} | {statistics.median(single):.1f} | {single[int(0.9 * len(single)) - 1]:.1f} | {batch:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
