"""`dedupe`: near-duplicate removal within the set, and against the eval set (no leaks).

Similarity is pipeline/data/similarity.py's Jaccard of normalised character 4-gram
shingles (exact pairs; MinHash LSH proposes candidates above 10^6 pairs). Two checks:

  within the set   text = every user and assistant turn of the example joined.
                   WITHIN_THRESHOLD = 0.6: two examples that share a request *and* most of the
                   reply wording are copies; a different reply to a similar request
                   ("add X" / "add Y") scores ~0.3-0.5 on the whole text and stays.
                   Of each duplicate pair the better one stays: higher judge score, then
                   curated/edited before generated, then the earlier one.
  against eval     text = each user turn alone vs each eval prompt's user turns.
                   EVAL_THRESHOLD = 0.5 (similarity.DEFAULT_THRESHOLD, the value the shipped
                   data's own leak test uses): a reworded eval request is a leak.
Removed examples go to rejected.jsonl with `rejection.reasons` naming the twin and the score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import UserError
from .records import Example
from .similarity import DEFAULT_THRESHOLD, find_near_duplicates
from .workspace import now_iso

WITHIN_THRESHOLD = 0.6
EVAL_THRESHOLD = DEFAULT_THRESHOLD
SOURCE_RANK = {"curated": 0, "edited": 1, "targeted": 2, "generated": 3}


@dataclass
class DedupeConfig:
    threshold: float = WITHIN_THRESHOLD
    eval_threshold: float = EVAL_THRESHOLD

    def check(self) -> None:
        p = [f"{name}: {v}; must be in (0, 1]" for name, v in
             (("threshold", self.threshold), ("eval_threshold", self.eval_threshold)) if not 0 < v <= 1]
        if p:
            raise UserError("dedupe settings:\n  " + "\n  ".join(p))


@dataclass
class DedupeResult:
    kept: list[Example] = field(default_factory=list)
    removed: list[Example] = field(default_factory=list)
    duplicate_pairs: int = 0
    eval_leaks: int = 0


def eval_prompts(path: Path) -> list[tuple[str, str]]:
    """(eval id, user text) for every user turn of every prompt in eval.yaml."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc}); fix it or pass --eval-set") from None
    out = []
    for p in raw.get("prompts", []) or []:
        if p.get("prompt"):
            out.append((str(p.get("id", "?")), str(p["prompt"])))
        for m in p.get("messages") or []:
            if m.get("role") == "user" and m.get("content"):
                out.append((str(p.get("id", "?")), str(m["content"])))
    return out


def _text(ex: Example) -> str:
    return "\n".join(m.content for m in ex.messages if m.role != "system")


def _rank(ex: Example) -> tuple:
    overall = (ex.quality or {}).get("overall")
    return (-(overall if isinstance(overall, (int, float)) else -1), SOURCE_RANK.get(ex.source, 9))


def _reject(ex: Example, reason: str) -> Example:
    d = ex.model_dump()
    prev = d.get("rejection") or {}
    d["rejection"] = {"stage": "dedupe", "reasons": list(prev.get("reasons", [])) + [reason], "time": now_iso()}
    return Example.model_validate(d)


def dedupe(examples: list[Example], evals: list[tuple[str, str]] = (), cfg: DedupeConfig | None = None,
           against: list[Example] = ()) -> DedupeResult:
    """Remove eval leaks, then near-duplicates (within `examples`, and against `against`, a
    set already kept that must not be duplicated, e.g. the set balance adds to)."""
    cfg = cfg or DedupeConfig()
    cfg.check()
    out = DedupeResult()
    gone: dict[int, str] = {}
    # 1. eval leaks: any user turn close to any eval prompt.
    if evals:
        users, owner = [], []
        for i, ex in enumerate(examples):
            for u in ex.user_turns:
                users.append(u)
                owner.append(i)
        for qi, ci, score in find_near_duplicates(users, [t for _, t in evals], cfg.eval_threshold):
            i = owner[qi]
            if i not in gone:
                gone[i] = f"eval leak: user turn matches eval prompt {evals[ci][0]} (similarity {score:.2f})"
                out.eval_leaks += 1
    # 2. duplicates of examples already kept elsewhere.
    texts = [_text(e) for e in examples]
    if against:
        for qi, ci, score in find_near_duplicates(texts, [_text(e) for e in against], cfg.threshold):
            if qi not in gone:
                gone[qi] = f"near-duplicate of {against[ci].id} (similarity {score:.2f})"
                out.duplicate_pairs += 1
    # 3. within the set: of each pair, the lower-ranked one goes (pairs come best-score first).
    for i, j, score in find_near_duplicates(texts, None, cfg.threshold):
        if i in gone or j in gone:
            continue
        loser, winner = (j, i) if _rank(examples[i]) <= _rank(examples[j]) else (i, j)
        gone[loser] = f"near-duplicate of {examples[winner].id} (similarity {score:.2f})"
        out.duplicate_pairs += 1
    for i, ex in enumerate(examples):
        (out.removed.append(_reject(ex, gone[i])) if i in gone else out.kept.append(ex))
    return out


def summary(r: DedupeResult, cfg: DedupeConfig) -> str:
    return (f"dedupe: kept {len(r.kept)}, removed {len(r.removed)} "
            f"({r.duplicate_pairs} near-duplicates at >= {cfg.threshold:g}, "
            f"{r.eval_leaks} eval leaks at >= {cfg.eval_threshold:g})")
