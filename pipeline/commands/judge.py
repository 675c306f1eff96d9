"""`python -m pipeline judge calibrate|score`"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..judges import JUDGE_KINDS, get_judge
from ..judges.base import JudgeItem
from ..jsonl import write_json
from ..spec import load_persona


def register(sub) -> None:
    p = sub.add_parser("judge", help="measure a judge on labelled cases, or score one reply")
    s = p.add_subparsers(dest="judge_cmd", metavar="<action>")
    s.required = True
    c = s.add_parser("calibrate", help="agreement with people on labelled replies (Spearman, pairwise, violation P/R/F1)")
    c.add_argument("--judge", choices=JUDGE_KINDS, default="rubric")
    c.add_argument("--cases", help="labelled cases JSONL in the old per-case format (judge_calibration.jsonl): "
                                   "violation P/R/F1 and filter accuracy only")
    c.add_argument("--labelled", help="labelled replies JSONL: {id, messages, response, overall 1-10, violations, "
                                      "coherence?, invented_task_data?, prompt_id?} per line")
    c.add_argument("--bench", nargs="?", const="", default=None,
                   help="the judge benchmark folder (default with no value: <persona>/judge_bench); the default "
                        "when neither --cases nor --labelled is given")
    c.add_argument("--split", choices=("test", "dev", "all"), default="test",
                   help="benchmark split to measure on (default: test, the one no judge was fitted on)")
    c.add_argument("--persona", help="persona folder (default: the studio's persona)")
    c.add_argument("--pairwise", action="store_true",
                   help="also run the judge's pairwise (A/B, both orders) judge on same-prompt pairs: accuracy and "
                        "order consistency")
    c.add_argument("--record", action="store_true",
                   help="with --bench --split test: store the figures as the judge's measured agreement "
                        "(pipeline/judges/weights/<kind>_<version>.agreement.json), which every verdict then carries")
    c.add_argument("--max-pairs", type=int, help="at most this many pairs for --pairwise (LLM cost)")
    c.add_argument("--min-score", type=float, default=6, help="the filter's score bar (default 6, the seed's)")
    c.add_argument("--mistakes", action="store_true", help="list every disagreement")
    c.add_argument("--out", help="also write the full report (JSON) here")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=_calibrate)
    sc = s.add_parser("score", help="judge one reply (--user/--response) or a whole file (--file)")
    sc.add_argument("--judge", choices=JUDGE_KINDS, default="reader")
    sc.add_argument("--persona")
    sc.add_argument("--user")
    sc.add_argument("--response")
    sc.add_argument("--file", help='JSONL, one {"id", "messages", "response"} per line ("user" instead of messages '
                                   'also works); prints one verdict per line')
    sc.add_argument("--json", action="store_true", help="verdicts as JSON (always JSON lines with --file)")
    sc.set_defaults(handler=_score)
    f = s.add_parser("fit", help="fit the reader judge's heads on the benchmark's dev split; measure on test")
    f.add_argument("--persona")
    f.add_argument("--bench", help="benchmark folder (default: <persona>/judge_bench)")
    f.add_argument("--out", help="weights file (default: the shipped pipeline/judges/weights/reader_v3.json)")
    f.add_argument("--cv", action="store_true",
                   help="only the whole judge's figures under cross-validation by prompt on dev (never reads test, "
                        "writes nothing): the figures to choose changes by")
    f.add_argument("--json", action="store_true")
    f.set_defaults(handler=_fit)


def _persona(args, settings):
    return load_persona(Path(args.persona) if args.persona else settings.persona_dir())


def _calibrate(args, settings) -> int:
    from ..judges.calibrate import calibrate, load_cases, render

    persona = _persona(args, settings)
    if not args.cases:
        return _calibrate_labelled(args, settings, persona)
    cases = load_cases(Path(args.cases) if args.cases else persona.folder / "judge_calibration.jsonl", persona.spec)
    judge = get_judge(args.judge, persona, settings)
    report = calibrate(judge, cases, persona.spec, args.min_score)
    report["cases"] = str(args.cases or persona.folder / "judge_calibration.jsonl")
    if _emit(report, args, render):
        return 0
    if args.mistakes:
        for m in report["mistakes"]:
            print(f"- {m['id']}: labelled {m['gold'] or 'none'} good={m['good']}; judged {m['pred'] or 'none'} "
                  f"passes={m['passes']} overall={m['overall']} {m['quotes']}")
    return 0


def _calibrate_labelled(args, settings, persona) -> int:
    from ..judges.agreement import measure, render
    from ..judges.bench import bench_dir, load_bench_rows, load_labelled_file

    if args.labelled:
        rows, where = load_labelled_file(Path(args.labelled), persona.spec), args.labelled
        split = None
    else:
        folder = Path(args.bench) if args.bench else bench_dir(persona.folder)
        rows = load_bench_rows(folder, None if args.split == "all" else args.split)
        where, split = str(folder), args.split
    judge = get_judge(args.judge, persona, settings)
    report = measure(judge, rows, persona.spec)
    report["labelled"], report["split"] = where, split
    if args.record:
        if args.labelled or args.split != "test":
            raise UserError("--record stores test-split figures only: use it with --bench --split test")
        from ..judges.agreement import summary

        kind = getattr(judge, "kind", args.judge)
        version = getattr(judge, "prompt_version", None) or judge.name.rsplit(":", 1)[-1]
        rec = Path(__file__).resolve().parents[1] / "judges" / "weights" / f"{kind}_{version}.agreement.json"
        rec.parent.mkdir(parents=True, exist_ok=True)
        rec.write_text(json.dumps(summary(report, "test", f"python -m pipeline judge calibrate --judge {kind} --bench "
                                                          "--split test --record"), indent=2) + "\n", encoding="utf-8")
    if args.pairwise:
        from ..judges import get_pairwise
        from ..judges.agreement import measure_pairwise

        pw = get_pairwise(args.judge, persona, settings, judge=judge if args.judge != "llm" else None)
        report["pairwise_judge"] = measure_pairwise(pw, rows, args.max_pairs)
    if _emit(report, args, render):
        return 0
    if report.get("pairwise_judge"):
        p = report["pairwise_judge"]
        print(f"  pairwise judge {p['judge']}: accuracy {p['accuracy']} on {p['pairs']} pairs, "
              f"order consistency {p['order_consistency']} (failures {p['failures']})")
    if args.mistakes:
        for m in report["mistakes"]:
            print(f"- {m['id']}: people {m['gold']}; judge {m['pred']}: {m['response'][:120]!r}")
    return 0


def _emit(report: dict, args, render) -> bool:
    """Write `--out`, then print the report as JSON (True: nothing more to print) or as a table."""
    if args.out:
        write_json(args.out, report)
    if args.json:
        print(json.dumps(report if args.mistakes else {k: v for k, v in report.items() if k != "mistakes"}, indent=2))
        return True
    print(render(report))
    return False


def _items_from_file(path: Path) -> list[JudgeItem]:
    from ..jsonl import read_jsonl

    if not path.is_file():
        raise UserError(f"--file: {path} not found; pass a JSONL file of {{id, messages, response}}")
    try:
        rows = read_jsonl(path)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    items, problems = [], []
    for i, r in enumerate(rows, 1):
        msgs = r.get("messages") or ([{"role": "user", "content": r["user"]}] if r.get("user") else None)
        if not msgs or "response" not in r:
            problems.append(f"{path}: line {i}: needs `messages` (or `user`) and `response`")
            continue
        items.append(JudgeItem(str(r.get("id", i)), msgs, r.get("response") or "", r.get("category")))
    if problems:
        raise UserError("judge score --file:\n  " + "\n  ".join(problems[:20]))
    return items


def _score(args, settings) -> int:
    persona = _persona(args, settings)
    if args.file:
        items = _items_from_file(Path(args.file))
    elif args.user is not None and args.response is not None:
        items = [JudgeItem("cli", [{"role": "user", "content": args.user}], args.response)]
    else:
        raise UserError("judge score: pass --file FILE.jsonl, or --user TEXT and --response TEXT")
    judge = get_judge(args.judge, persona, settings)
    verdicts = judge.judge_batch(items)
    if args.file:
        for v in verdicts:  # one verdict per line, failures included (ok: false, error)
            print(json.dumps(v.to_dict(), ensure_ascii=False))
        return 0
    v = verdicts[0]
    if not v.ok:
        raise UserError(f"the judge could not score this reply: {v.error}")
    print(json.dumps(v.to_dict(), indent=2))
    return 0


def _fit(args, settings) -> int:
    from ..judges.bench import bench_dir
    from ..judges.train_probe import cv_reader, fit_reader

    persona = _persona(args, settings)
    folder = Path(args.bench) if args.bench else bench_dir(persona.folder)
    if args.cv:
        report = cv_reader(folder, persona.spec, echo=print if not args.json else None)
        if args.json:
            print(json.dumps({k: v for k, v in report.items() if k != "mistakes"}, indent=2))
        return 0
    report = fit_reader(folder, persona.spec, out=Path(args.out) if args.out else None, echo=print if not args.json else None)
    if args.json:
        print(json.dumps(report, indent=2))
    return 0
