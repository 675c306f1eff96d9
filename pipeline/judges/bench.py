"""The judge benchmark (data/personas/<name>/judge_bench/): prompts, replies, labels, split.

    prompts.yaml       the benchmark's own prompts (none in train.jsonl or eval.yaml)
    replies.jsonl      {"id", "prompt_id", "messages", "response", "source", "decoding"?} per line
    labels_a.jsonl     labeller A: {"id", "overall" 1-10, "coherence" 0-2, "traits" {id: 0-2},
    labels_b.jsonl     labeller B    "violations" [types], "invented_task_data" bool, "dishonest" bool}
    labels.jsonl       the final labels (mean of A and B for the numbers, union-adjudicated flags)
    split.json         {"dev": [prompt ids], "test": [prompt ids]}: BY PROMPT, no prompt in both

The protocol behind the labels is docs/judges.md. Judges are fitted on the dev split only;
every figure a verdict quotes is measured on the test split.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..errors import UserError
from ..jsonl import read_jsonl
from ..prompting import CONTEXT_HEADER

BENCH_DIR = "judge_bench"


def bench_dir(persona_dir: str | Path) -> Path:
    return Path(persona_dir) / BENCH_DIR


def load_bench_prompts(path: str | Path) -> list[dict]:
    """prompts.yaml -> [{"id", "category", "messages"}]; `context` becomes the Task API system message."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    out = []
    for p in raw["prompts"]:
        msgs = []
        if p.get("context"):
            msgs.append({"role": "system", "content": f"{CONTEXT_HEADER}\n{p['context'].strip()}"})
        msgs.append({"role": "user", "content": p["prompt"]})
        out.append({"id": p["id"], "category": p.get("category", "uncategorized"), "messages": msgs})
    return out


def load_split(path: str | Path) -> dict[str, list[str]]:
    split = json.loads(Path(path).read_text(encoding="utf-8"))
    both = set(split["dev"]) & set(split["test"])
    if both:
        raise UserError(f"{path}: prompts in both dev and test: {sorted(both)}")
    return split


def label_problems(r: dict, where: str, spec) -> list[str]:
    out = []
    for key in ("id", "messages", "response", "overall"):
        if key not in r:
            out.append(f"{where}: missing field {key!r}")
    known = set(spec.violation_types)
    bad = [v for v in r.get("violations") or [] if v not in known]
    if bad:
        out.append(f"{where}: unknown violation type(s) {bad}; the persona's types are {sorted(known)}")
    try:
        if not 1 <= float(r.get("overall", 1)) <= 10:
            out.append(f"{where}: overall {r['overall']} is outside 1-10")
    except (TypeError, ValueError):
        out.append(f"{where}: overall {r.get('overall')!r} is not a number")
    return out


def load_labelled_file(path: Path, spec) -> list[dict]:
    """A labelled-replies JSONL (see pipeline/judges/agreement.py), every problem reported at once."""
    if not path.is_file():
        raise UserError(f"labelled replies not found: {path}; pass --labelled FILE.jsonl")
    try:
        rows = read_jsonl(path)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    problems = [p for i, r in enumerate(rows, 1) for p in label_problems(r, f"{path}: line {i}", spec)]
    if not rows:
        problems.append(f"{path}: no labelled replies")
    if problems:
        raise UserError("labelled replies:\n  " + "\n  ".join(problems[:30]))
    return rows


def load_bench_rows(folder: str | Path, part: str | None = "test", labels: str = "labels.jsonl") -> list[dict]:
    """The benchmark as labelled replies (agreement.py's format), restricted to one split part."""
    folder = Path(folder)
    if not (folder / labels).is_file():
        raise UserError(f"{folder}: no {labels}; the benchmark needs its labels (docs/judges.md)")
    out = []
    for r in load_labelled(folder, labels, part):
        lab = r["label"]
        out.append({"id": r["id"], "prompt_id": r["prompt_id"], "messages": r["messages"], "response": r["response"],
                    "source": r.get("source"), "overall": lab["overall"], "coherence": lab.get("coherence"),
                    "traits": lab.get("traits"), "violations": lab.get("violations") or [],
                    "invented_task_data": bool(lab.get("invented_task_data")), "dishonest": bool(lab.get("dishonest"))})
    return out


def load_labelled(folder: str | Path, labels: str = "labels.jsonl", part: str | None = None) -> list[dict]:
    """Replies joined with their labels (and restricted to one split part, "dev" or "test")."""
    folder = Path(folder)
    replies = {r["id"]: r for r in read_jsonl(folder / "replies.jsonl")}
    rows = []
    keep = None
    if part is not None:
        keep = set(load_split(folder / "split.json")[part])
    for lab in read_jsonl(folder / labels):
        r = replies.get(lab["id"])
        if r is None:
            raise UserError(f"{folder / labels}: label for unknown reply {lab['id']!r}")
        if keep is not None and r["prompt_id"] not in keep:
            continue
        rows.append({**r, "label": lab})
    return rows
