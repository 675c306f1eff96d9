"""`python -m pipeline arena results|export`: the Arena's votes from the command line.

    python -m pipeline arena results [--json] [--judge FILE]
    python -m pipeline arena export --format csv|jsonl --out FILE
    python -m pipeline arena export --format dpo|kto --out FILE    # preference data for `train --method dpo|kto`

Both read `<state_dir>/arena/votes.sqlite` (TASKMASTER_WORK_DIR decides where state lives).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError


def register(sub) -> None:
    p = sub.add_parser("arena", help="blind A/B votes: results (win rate, intervals) and export")
    s = p.add_subparsers(dest="arena_cmd", metavar="<action>")
    s.required = True
    r = s.add_parser("results", help="win rate vs base with Wilson 95%% CI, ties, voters, categories, ratings")
    r.add_argument("--json", action="store_true", help="print the whole summary as JSON")
    r.add_argument("--judge", type=Path, help="JSONL of pairwise judge verdicts {prompt_id, model_a, model_b, "
                                              "winner} (default: every run's evaluation results)")
    r.set_defaults(handler=_results)
    e = s.add_parser("export", help="write every vote (with both conversations) as CSV or JSONL, or as "
                                    "preference data (dpo pairs / kto labels) for `train --method dpo|kto --pairs FILE`")
    e.add_argument("--format", choices=("csv", "jsonl", "dpo", "kto"), default="jsonl")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--include-eval-prompts", action="store_true",
                   help="dpo/kto: also battles on held-out eval-set prompts (left out by default: training on "
                        "them leaks the evaluation set)")
    e.set_defaults(handler=_export)


def _store(settings):
    from ..arena.votes import VoteStore, votes_path

    path = votes_path(settings)
    if not path.is_file():
        raise UserError(f"no Arena votes yet at {path}: votes appear once someone votes in the studio's Arena tab "
                        f"(set TASKMASTER_WORK_DIR if the studio keeps its state elsewhere)")
    return VoteStore(path)


def _results(args, settings) -> int:
    from ..arena import stats
    from ..jsonl import read_jsonl

    judge = list(read_jsonl(args.judge)) if args.judge else stats.judge_verdicts(settings.runs_dir)
    r = stats.summarize(_store(settings).votes(), judge)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    v, o = r["voters"], r["outcomes"]
    print(f"{stats.voters_line(v)}; outcomes: left {o['left']}, right {o['right']}, "
          f"tie {o['tie']}, both bad {o['both_bad']}")
    for row in r["vs_base"]:
        rate = "n/a" if row["win_rate"] is None else (f"{row['win_rate']:.1%} "
                                                      f"[{row['ci_low']:.1%}, {row['ci_high']:.1%}] (Wilson 95%)")
        print(f"  {row['model']} vs base: win rate {rate}; {row['wins']}W {row['losses']}L "
              f"{row['ties']}T {row['both_bad']} both-bad")
    for row in r["per_category"]:
        rate = "n/a" if row["win_rate"] is None else f"{row['win_rate']:.0%} [{row['ci_low']:.0%}, {row['ci_high']:.0%}]"
        print(f"  [{row['category']}] {row['model']} vs base: {rate} ({row['votes']} votes)")
    for row in r["bradley_terry"]:
        print(f"  BT {row['model']}: {row['rating']:.0f} [{row['ci_low']:.0f}, {row['ci_high']:.0f}]")
    if r["judge_agreement"]:
        j = r["judge_agreement"]
        print(f"  human-judge agreement: {j['agreement']} on {j['decisive_both']} decisive pairs")
    return 0


def _export(args, settings) -> int:
    if args.format in ("dpo", "kto"):
        from ..arena.preference import export_preferences

        c = export_preferences(_store(settings).votes(), args.out, args.format, settings.persona_dir(),
                               include_eval_prompts=args.include_eval_prompts)
        print(f"wrote {c['rows']} {args.format} rows from {c['used']} of {c['votes']} votes to {args.out}"
              + (f"; {c['no_order']} ties / both-bad votes give no DPO pair (use --format kto)" if c["no_order"] else "")
              + (f"; {c['eval_prompt']} votes on held-out eval prompts left out (--include-eval-prompts)"
                 if c["eval_prompt"] else "")
              + (f"; {c['empty']} votes without both replies" if c["empty"] else ""))
        print(f"train on them: python -m pipeline train --method {args.format} --from-run runs/<sft-run> "
              f"--pairs {args.out}")
        return 0
    n = _store(settings).export(args.out, args.format)
    print(f"wrote {n} votes to {args.out}")
    return 0
