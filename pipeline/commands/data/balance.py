"""`python -m pipeline data balance`: the seed's fill_gaps: generate for scenarios under target.

    python -m pipeline data balance --target-per-scenario 10 --max-cost-usd 0.5
    python -m pipeline data balance --offline            # report the gaps only (no endpoint needed)
Writes balanced.jsonl, rejected.balance.jsonl and balance_report.json (per-scenario counts,
targets, what is still short and why the loop stopped). Without an endpoint it reports only.
"""

from __future__ import annotations

from ...data import stages
from ...data.balance import BalanceConfig
from ...data.filter import DEFAULT_MIN_SCORE, JUDGE_KINDS


def register(sub) -> None:
    p = sub.add_parser("balance", help="fill scenarios up to their targets (fill_gaps); report what is short")
    p.add_argument("--persona")
    p.add_argument("--input", help="JSONL (default deduped.jsonl, else filtered.jsonl, else the shipped set)")
    p.add_argument("--output", help="default state/data/<persona>/balanced.jsonl")
    p.add_argument("--target-per-scenario", type=int, default=None,
                   help="examples per scenario (default: each category's target_count spread over its scenarios)")
    p.add_argument("--max-rounds", type=int, default=3)
    p.add_argument("--judge", choices=JUDGE_KINDS, default="rubric")
    p.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE)
    p.add_argument("--offline", action="store_true", help="only report the gaps, generate nothing")
    p.add_argument("--with-curated", action="store_true",
                   help="count and keep the shipped curated examples with a generated input (fill what the whole set lacks)")
    p.add_argument("--json", action="store_true")
    stages.add_generate_args(p)
    stages.add_limit_args(p)
    p.set_defaults(handler=_run)


def _run(args, settings) -> int:
    cfg = BalanceConfig(target_per_scenario=args.target_per_scenario, max_rounds=args.max_rounds,
                        min_score=args.min_score, judge=args.judge, generate=stages.generate_config_from(args))
    r = stages.run_balance(settings, cfg, stages.limits_from(args), persona=args.persona, input=args.input,
                           output=args.output, offline=args.offline,
                           with_curated=args.with_curated, echo=True)
    stages.print_result(r, args.json)
    return 0
