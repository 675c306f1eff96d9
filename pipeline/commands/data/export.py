"""`python -m pipeline data export`: the approved set as a new dataset version (+ Hub push).

    python -m pipeline data export --note "first reviewed set"
    python -m pipeline data export --include-pending --push me/taskmaster-sft   # needs HF_TOKEN
Writes exports/<persona>/v<N>/ (train.jsonl in TRL's messages format, README.md data card,
manifest.json); never overwrites an earlier version.
"""

from __future__ import annotations

from ...data import stages


def register(sub) -> None:
    p = sub.add_parser("export", help="write the approved set as a versioned dataset; optionally push it to the Hub")
    p.add_argument("--persona")
    p.add_argument("--input", help="candidate JSONL (default: the latest stage output, else the shipped set)")
    p.add_argument("--include-pending", action="store_true",
                   help="also export examples nobody rejected (the sample-review workflow)")
    p.add_argument("--note", default="", help="a line for the data card")
    p.add_argument("--push", metavar="REPO_ID", help="also push to this Hub dataset repo (needs HF_TOKEN)")
    p.add_argument("--public", action="store_true", help="create the Hub repo public (default private)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_run)


def _run(args, settings) -> int:
    r = stages.run_export(settings, persona=args.persona, input=args.input, include_pending=args.include_pending,
                          note=args.note, push_to=args.push, private=not args.public)
    stages.print_result(r, args.json)
    return 0
