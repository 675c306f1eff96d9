"""`python -m pipeline data filter`: judge every example; keep score >= min_score with no violation.

    python -m pipeline data filter                         # generated.jsonl, else the shipped train.jsonl
    python -m pipeline data filter --judge llm --min-score 7
Writes filtered.jsonl (scores and reasons on each record) and rejected.filter.jsonl (each
with `rejection.reasons`). The rubric judge runs offline; the LLM judge needs an endpoint.
"""

from __future__ import annotations

from ...data import stages
from ...data.filter import DEFAULT_MIN_SCORE, JUDGE_KINDS, FilterConfig


def register(sub) -> None:
    p = sub.add_parser("filter", help="judge examples and keep those at or above --min-score with no violation")
    p.add_argument("--persona")
    p.add_argument("--input", help="JSONL to judge (default generated.jsonl, else the shipped train.jsonl)")
    p.add_argument("--output", help="kept examples (default state/data/<persona>/filtered.jsonl)")
    p.add_argument("--judge", choices=JUDGE_KINDS, default="rubric", help="rubric (offline, default) or llm")
    p.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE, help="0-10 (default 6, as in the seed)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_run)


def _run(args, settings) -> int:
    r = stages.run_filter(settings, FilterConfig(min_score=args.min_score, judge=args.judge),
                          persona=args.persona, input=args.input, output=args.output, echo=False)
    stages.print_result(r, args.json)
    return 0
