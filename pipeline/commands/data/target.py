"""`python -m pipeline data target RESULTS`: targeted examples for the weakest traits (Phase 4).

    python -m pipeline data target runs/<id>/eval/<the results file>    # pipeline.evaluation.results
    python -m pipeline data target plan.json          # {"weak_traits": [...], "failing": [...]}
Generates examples that strongly show each weak trait, keeps those that pass the filter with
a 2 on that trait, and writes them as a new dataset version (base + kept) under exports/.
"""

from __future__ import annotations

from ...data import stages
from ...data.filter import DEFAULT_MIN_SCORE, JUDGE_KINDS
from ...data.target import TargetConfig
from ...evaluation.results import RESULTS_FILE


def register(sub) -> None:
    p = sub.add_parser("target", help="generate examples for the weakest traits of an evaluation")
    p.add_argument("results", help=f"{RESULTS_FILE} or a plan JSON with weak_traits / failing")
    p.add_argument("--persona")
    p.add_argument("--traits", nargs="+", help="target these traits instead of the weak ones")
    p.add_argument("--per-trait", type=int, default=30, help="examples requested per trait (default 30)")
    p.add_argument("--base", help="dataset to extend (default: the latest exported version)")
    p.add_argument("--judge", choices=JUDGE_KINDS, default="rubric")
    p.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE)
    p.add_argument("--json", action="store_true")
    stages.add_generate_args(p, per_scenario_default=1)
    stages.add_limit_args(p)
    p.set_defaults(handler=_run)


def _run(args, settings) -> int:
    cfg = TargetConfig(examples_per_trait=args.per_trait, min_score=args.min_score, judge=args.judge,
                       generate=stages.generate_config_from(args))
    r = stages.run_target(settings, args.results, cfg, stages.limits_from(args), persona=args.persona,
                          traits=args.traits, base=args.base, echo=True)
    stages.print_result(r, args.json)
    return 0
