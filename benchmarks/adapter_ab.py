"""Head to head: two evaluated runs' adapters (or a run against its base), judged blind in both orders.

    python -m benchmarks.adapter_ab RUN_A RUN_B [RUN_C RUN_D ...]     # pairs of run folders
    python -m benchmarks.adapter_ab --judge rubric RUN_A base
    AB_RUNS="runs/x:runs/y,runs/x:base" python -m benchmarks adapter_ab

Each run must have been evaluated (`python -m pipeline eval --run RUN`) with the same eval set
and the same sampling: the replies in RUN/eval/responses_adapter.jsonl are reused, nothing is
generated. "base" as RUN_B means RUN_A's own base replies (responses_base.jsonl). The judge is
the offline pairwise form of `--judge` (default `reader`, eval's default; `rubric` for the
heuristic): both orders, an order-dependent verdict counts as a tie, as in `pipeline eval`'s A/B.
Prints one row per pair:

    A | B | n | wins | losses | ties | win rate [Wilson 95%] | mean overall A / B | violations per 64 A / B
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _rows(run: Path, label: str) -> list[dict]:
    from pipeline.jsonl import read_jsonl

    path = run / "eval" / f"responses_{label}.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} not found: evaluate the run first (python -m pipeline eval --run {run})")
    return read_jsonl(path)


def head_to_head(run_a: str, run_b: str, judge: str = "reader") -> dict:
    from pipeline.evaluation.metrics import ab_summary
    from pipeline.judges import get_pairwise
    from pipeline.judges.pairwise import PairItem
    from pipeline.spec import load_persona

    a_dir = Path(run_a)
    a = {r["id"]: r for r in _rows(a_dir, "adapter")}
    b = {r["id"]: r for r in (_rows(a_dir, "base") if run_b == "base" else _rows(Path(run_b), "adapter"))}
    ids = [i for i in a if i in b]
    sa, sb = a[ids[0]]["sampling"], b[ids[0]]["sampling"]
    if sa != sb:
        raise SystemExit(f"{run_a} and {run_b} were decoded differently ({sa} vs {sb}): evaluate both with the "
                         f"same sampling for a fair A/B")
    persona = load_persona(Path(__file__).resolve().parent.parent / "data" / "personas" / "taskmaster")
    judge = get_pairwise(judge, persona)
    pairs = judge.judge_pairs([PairItem(i, a[i]["messages"], a[i]["reply"], b[i]["reply"], a[i].get("category"))
                               for i in ids])
    ab = ab_summary([p.to_dict() for p in pairs])

    def stats(rows):
        v = [r.get("verdict") or {} for r in rows]
        ok = [x for x in v if x.get("ok")]
        overall = [sum(x["traits"].values()) for x in ok]
        bad = sum(1 for x in ok if x.get("violations"))
        return (round(sum(overall) / len(overall), 2) if overall else None,
                round(64 * bad / len(ok), 1) if ok else None)

    (oa, va), (ob, vb) = stats([a[i] for i in ids]), stats([b[i] for i in ids])
    return {"a": run_a, "b": run_b, **ab, "overall_a": oa, "overall_b": ob, "violations_per_64_a": va,
            "violations_per_64_b": vb, "sampling": sa, "judge": judge.name}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv and os.environ.get("AB_RUNS"):
        argv = [x for pair in os.environ["AB_RUNS"].split(",") for x in pair.split(":")]
    judge = "reader"
    if argv[:1] == ["--judge"] and len(argv) > 1:
        judge, argv = argv[1], argv[2:]
    if not argv:
        print("adapter_ab: nothing to compare (pass RUN_A RUN_B, or AB_RUNS=a:b,...)")
        return 0
    if len(argv) % 2:
        print("adapter_ab: pass run folders in pairs: RUN_A RUN_B [RUN_C RUN_D ...]", file=sys.stderr)
        return 2
    print(f"{'A':<28} {'B':<28} {'n':>3} {'W':>3} {'L':>3} {'T':>3}  {'win rate [95%]':<22} "
          f"{'overall A/B':<13} {'viol/64 A/B'}")
    for a, b in zip(argv[::2], argv[1::2]):
        r = head_to_head(a, b, judge)
        rate = f"{r['win_rate']:.0%} [{r['ci_low']:.0%}, {r['ci_high']:.0%}]" if r["n"] else "n/a"
        print(f"{a[-28:]:<28} {b[-28:]:<28} {r['n']:>3} {r['wins']:>3} {r['losses']:>3} {r['ties']:>3}  {rate:<22} "
              f"{r['overall_a']}/{r['overall_b']:<8} {r['violations_per_64_a']}/{r['violations_per_64_b']}")
    print(f"judge: pairwise {r['judge'] if argv else judge} (both orders), sampling as recorded in the reply files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
