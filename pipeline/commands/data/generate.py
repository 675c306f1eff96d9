"""`python -m pipeline data generate`: new examples from the persona spec and the scenario matrix.

    python -m pipeline data generate --examples-per-scenario 3 --max-concurrency 16 --max-cost-usd 1
Needs an endpoint (OPENAI_API_KEY / OPENAI_BASE_URL, TASKMASTER_GENERATOR_MODEL). Writes
state/data/<persona>/generated.jsonl (merged with what is there) and generated.failed.jsonl.
Replies are cached: a rerun makes zero requests, a killed run resumes where it stopped.
"""

from __future__ import annotations

from ...data import stages


def register(sub) -> None:
    p = sub.add_parser("generate", help="generate examples per scenario with an OpenAI-compatible model")
    p.add_argument("--persona", help="persona name (default: the studio's)")
    p.add_argument("--scenario", action="append", dest="scenarios", help="only this scenario (repeatable)")
    p.add_argument("--limit", type=int, default=None, help="stop after this many examples (e.g. 228)")
    p.add_argument("--output", help="JSONL to write (default state/data/<persona>/generated.jsonl)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    stages.add_generate_args(p)
    stages.add_limit_args(p)
    p.set_defaults(handler=_run)


def _run(args, settings) -> int:
    cfg = stages.generate_config_from(args, scenarios=args.scenarios, limit=args.limit)
    r = stages.run_generate(settings, cfg, stages.limits_from(args), persona=args.persona, output=args.output, echo=True)
    stages.print_result(r, args.json)
    return 0
