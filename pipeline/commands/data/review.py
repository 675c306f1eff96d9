"""`python -m pipeline data review`: the review queue from the command line.

    python -m pipeline data review                          # progress and the next pending example
    python -m pipeline data review --mode sample            # the seed's 10% random sample
    python -m pipeline data review --approve tc-001 tc-002 --reject gen-abc --note "too pushy"
Decisions go to state/data/<persona>/review.sqlite the moment they are made (the Data tab
uses the same file).
"""

from __future__ import annotations

import json

from ...data import stages
from ...data.review import MODES, SAMPLE_FRACTION, render_example


def register(sub) -> None:
    p = sub.add_parser("review", help="review queue: progress, next example, approve / reject")
    p.add_argument("--persona")
    p.add_argument("--input", help="candidate JSONL (default: the latest stage output, else the shipped set)")
    p.add_argument("--mode", choices=MODES, default="pending")
    p.add_argument("--fraction", type=float, default=SAMPLE_FRACTION, help="sample size for --mode sample (0.1 = 10%%)")
    p.add_argument("--seed", type=int, default=None, help="random seed for drawing the sample")
    p.add_argument("--approve", nargs="+", default=[], metavar="ID")
    p.add_argument("--reject", nargs="+", default=[], metavar="ID")
    p.add_argument("--note", default="")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_run)


def _run(args, settings) -> int:
    q = stages.review_queue(settings, persona=args.persona, input=args.input)
    for i in args.approve:
        q.decide(i, "approved", args.note)
    for i in args.reject:
        q.decide(i, "rejected", args.note)
    prog = q.progress(args.mode, args.fraction, args.seed)
    nxt = q.next_id(args.mode, fraction=args.fraction, seed=args.seed)
    if args.json:
        print(json.dumps({"progress": prog, "next": nxt}, indent=2))
        return 0
    print(f"{prog['mode']}: {prog['reviewed']}/{prog['total']} reviewed; approved {prog['approved']}, "
          f"rejected {prog['rejected']}, pending {prog['pending']}")
    if nxt:
        print("\nnext:\n" + render_example(q.get(nxt)))
    else:
        print("nothing left to review in this mode")
    return 0
