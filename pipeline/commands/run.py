"""`python -m pipeline run --preset cpu-demo --out runs/ID`: the whole pipeline headless.

train -> evaluate -> package -> validate on the shipped data, with the embedded model and the
offline rubric judge by default; prints each stage's wall time and the quality-gate table.
Exit status: 0 all stages done, 1 a stage failed, 2 a usage mistake, 3 a stage is missing
from this build. Re-running the same command continues where it stopped (pipeline/run_all.py).
"""

from __future__ import annotations

from pathlib import Path

from ..runs import new_run


def register(sub) -> None:
    from ..run_all import PRESETS, STAGES

    p = sub.add_parser("run", help="the whole pipeline headless: train, evaluate, package, validate",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cpu-demo", choices=list(PRESETS),
                   help="; ".join(f"{k}: {v.description}" for k, v in PRESETS.items()))
    p.add_argument("--out", help="run folder (default: runs/<time>-<preset>); rerun with the same --out to continue")
    p.add_argument("--persona", help="persona name (default: the studio's)")
    p.add_argument("--base", help="base model: registry name or local folder (default: the studio's)")
    p.add_argument("--stages", default=",".join(STAGES),
                   help=f"comma list of stages to run, in pipeline order (default: {','.join(STAGES)})")
    p.add_argument("--quiet", action="store_true", help="only the gate table and the stage summary")
    p.set_defaults(handler=_run)


def _run(args, settings) -> int:
    from ..run_all import gate_table, run_all, summary_table

    out = Path(args.out) if args.out else new_run(settings, args.preset).path
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    report = run_all(args.preset, out, settings, persona=args.persona, base_model=args.base, stages=stages,
                     echo=not args.quiet)
    if args.quiet:
        print(gate_table(report.gates, report.approved))
        print(summary_table(report))
    return report.exit_code
