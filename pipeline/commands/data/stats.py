"""`python -m pipeline data stats PATH [--persona FOLDER] [--json]`

Counts per category and scenario against the targets, multi-turn share, opener and length
distributions, avoided-phrase hits (see pipeline/data/stats.py for every definition).
Exit status: 0 when every target is met, 1 when one is not (each listed), 2 for a bad file.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...data.records import load_examples
from ...data.stats import Targets, dataset_stats, render_stats
from ...errors import UserError
from ...spec import load_persona


def register(sub) -> None:
    p = sub.add_parser("stats", help="coverage, multi-turn share, openers, lengths, avoided phrases vs targets")
    p.add_argument("path", help="dataset JSONL (e.g. data/personas/taskmaster/train.jsonl)")
    p.add_argument("--persona", help="persona folder with scenarios.yaml (default: the folder holding PATH "
                   "when it has a persona.yaml, else the studio's persona)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON instead of tables")
    p.add_argument("--min-total", type=int, default=Targets.min_total,
                   help=f"minimum number of examples (default {Targets.min_total})")
    p.set_defaults(handler=_stats)


def _stats(args, settings) -> int:
    path = Path(args.path)
    if not path.is_file():
        raise UserError(f"dataset not found: {path}; pass the path of a JSONL file")
    persona = load_persona(_persona_folder(args, path, settings))
    try:
        examples = load_examples(path)
    except ValueError as exc:
        raise UserError(f"{exc}\nfix those records (see pipeline/data/records.py for the format)") from None
    d = dataset_stats(examples, persona, Targets(min_total=args.min_total))
    d["path"] = str(path)
    if args.json:
        print(json.dumps(d, indent=2, ensure_ascii=False))
    else:
        print(render_stats(d))
    return 0 if d["targets_met"] else 1


def _persona_folder(args, path: Path, settings) -> Path:
    # A dataset kept inside a persona folder (data/personas/<name>/train.jsonl) is measured
    # against that persona's matrix without having to repeat --persona.
    if args.persona:
        return Path(args.persona)
    if (path.parent / "persona.yaml").is_file():
        return path.parent
    return settings.persona_dir()
