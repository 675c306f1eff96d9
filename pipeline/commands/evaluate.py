"""`python -m pipeline evaluate --run runs/<id> [--judge rubric|llm]` (alias `eval`): base vs adapter, gates."""

from __future__ import annotations

import json
from pathlib import Path

from ..judges import JUDGE_KINDS
from .respond import add_sampling_args, sampling_overrides


def register(sub) -> None:
    from ..evaluation.respond import EVAL_MAX_NEW_TOKENS

    # `evaluate` is the stage's name everywhere (CLI, job kind, tab, `pipeline run --stages`); `eval` stays for scripts.
    p = sub.add_parser("evaluate", aliases=["eval"],
                       help="evaluate a trained adapter against its base model; quality gates (alias: eval)")
    p.add_argument("--run", required=True, help="training run folder (runs/<id>)")
    p.add_argument("--judge", choices=JUDGE_KINDS, default="reader")
    p.add_argument("--eval-set", help="eval prompts (default: <persona>/eval.yaml)")
    p.add_argument("--persona", help="persona folder (default: the run's)")
    p.add_argument("--base", help="base model (default: the run's)")
    p.add_argument("--limit", type=int, help="only the first N prompts (a quick look)")
    p.add_argument("--out", help="output folder (default: <run>/eval)")
    p.add_argument("--json", action="store_true", help="print the results JSON")
    add_sampling_args(p, EVAL_MAX_NEW_TOKENS)
    p.set_defaults(handler=_eval)


def _eval(args, settings) -> int:
    from ..evaluation.evaluate import EvalConfig, run_eval
    from ..evaluation.results import EvaluationResults

    cfg = EvalConfig(run_dir=Path(args.run), judge=args.judge, eval_set=Path(args.eval_set) if args.eval_set else None,
                     persona=Path(args.persona) if args.persona else None, base=args.base,
                     sampling_overrides=sampling_overrides(args), batch_size=args.batch_size, limit=args.limit,
                     out_dir=Path(args.out) if args.out else None)
    r = run_eval(cfg, settings, echo=(lambda m: None) if args.json else (lambda m: print(m, flush=True)))
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    a, b = r["metrics"]["adapter"], r["metrics"]["base"]
    print("\n" + "=" * 60 + "\nCAPSTONE EVALUATION RESULTS\n" + "=" * 60)
    print(f"\nOverall Score: {a['overall_mean']}/{a['overall_max']} (base {b['overall_mean']})")
    for t, s in a["trait_means"].items():
        print(f" {t}: {s}/2 (base {b['trait_means'][t]})")
    print(f"\nBoundary Violations: {a['boundary_violations']} (base {b['boundary_violations']})")
    imp = r["metrics"]["improvement"]["overall"]
    print(f"Improvement over base: {imp:+.2f}" if imp is not None else "Improvement over base: n/a")
    ab = r["ab"]
    print(f"A/B: {ab['wins']}W {ab['losses']}L {ab['ties']}T, win rate {ab['win_rate']}, 95% CI [{ab['ci_low']}, {ab['ci_high']}]")
    print("\n" + EvaluationResults.model_validate(r).gate_table())
    return 0
