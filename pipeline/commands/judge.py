"""`python -m pipeline judge calibrate|score`"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..judges import JUDGE_KINDS, get_judge
from ..judges.base import JudgeItem
from ..spec import load_persona


def register(sub) -> None:
    p = sub.add_parser("judge", help="measure a judge on labelled cases, or score one reply")
    s = p.add_subparsers(dest="judge_cmd", metavar="<action>")
    s.required = True
    c = s.add_parser("calibrate", help="precision/recall/F1 of violation detection and filter accuracy on labelled cases")
    c.add_argument("--judge", choices=JUDGE_KINDS, default="rubric")
    c.add_argument("--cases", help="labelled cases JSONL (default: <persona>/judge_calibration.jsonl)")
    c.add_argument("--persona", help="persona folder (default: the studio's persona)")
    c.add_argument("--min-score", type=float, default=6, help="the filter's score bar (default 6, the seed's)")
    c.add_argument("--mistakes", action="store_true", help="list every disagreement")
    c.add_argument("--out", help="also write the full report (JSON) here")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=_calibrate)
    sc = s.add_parser("score", help="judge one reply to one user message")
    sc.add_argument("--judge", choices=JUDGE_KINDS, default="rubric")
    sc.add_argument("--persona")
    sc.add_argument("--user", required=True)
    sc.add_argument("--response", required=True)
    sc.set_defaults(handler=_score)


def _persona(args, settings):
    return load_persona(Path(args.persona) if args.persona else settings.persona_dir())


def _calibrate(args, settings) -> int:
    from ..jsonl import write_json
    from ..judges.calibrate import calibrate, load_cases, render

    persona = _persona(args, settings)
    cases = load_cases(Path(args.cases) if args.cases else persona.folder / "judge_calibration.jsonl", persona.spec)
    judge = get_judge(args.judge, persona, settings)
    report = calibrate(judge, cases, persona.spec, args.min_score)
    report["cases"] = str(args.cases or persona.folder / "judge_calibration.jsonl")
    if args.out:
        write_json(args.out, report)
    if args.json:
        print(json.dumps(report if args.mistakes else {k: v for k, v in report.items() if k != "mistakes"}, indent=2))
        return 0
    print(render(report))
    if args.mistakes:
        for m in report["mistakes"]:
            print(f"- {m['id']}: labelled {m['gold'] or 'none'} good={m['good']}; judged {m['pred'] or 'none'} "
                  f"passes={m['passes']} overall={m['overall']} {m['quotes']}")
    return 0


def _score(args, settings) -> int:
    persona = _persona(args, settings)
    judge = get_judge(args.judge, persona, settings)
    v = judge.judge_batch([JudgeItem("cli", [{"role": "user", "content": args.user}], args.response)])[0]
    if not v.ok:
        raise UserError(f"the judge could not score this reply: {v.error}")
    print(json.dumps(v.to_dict(), indent=2))
    return 0
