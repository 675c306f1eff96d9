"""`python -m pipeline next --run runs/<id> [--json]`: the seed's Phase 4 from a run's evaluation.

Reads the run's evaluation results (`RunFolder.results()`), its loss curve and the Arena's vote count, and
proposes the next step (more epochs, targeted curated data, a preference round, or ship), the weak
traits it targets and the commands to run (pipeline/evaluation/next_step.py).
"""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("next", help="propose the next step from a run's evaluation (Phase 4: epochs, data, DPO)")
    p.add_argument("--run", required=True, help="an evaluated training run folder (runs/<id>)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_next)


def _next(args, settings) -> int:
    from ..evaluation.next_step import propose_for_run

    step = propose_for_run(args.run, settings)
    print(json.dumps(step.to_dict(), indent=2) if args.json else step.markdown())
    return 0
