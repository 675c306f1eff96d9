"""The judge contract shared by every judge (rubric, LLM) and every caller (filter, eval).

    judge.judge_batch(items: list[JudgeItem]) -> list[Verdict]     # same length, same order

A judge never raises for one bad reply: a reply it could not score comes back as a
`Verdict` with `ok=False` and `error` set (the documented failure value). Such a verdict has
no scores; callers count it as a judge failure, never as a score of 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class JudgeItem:
    id: str
    messages: list[dict]  # the conversation the reply answers (optional context system msg, user/assistant turns)
    response: str  # the reply being judged
    category: str | None = None


@dataclass(frozen=True)
class Violation:
    type: str  # one of PersonaSpec.violation_types (boundary ids + "generic_ai")
    quote: str  # the offending words, verbatim from the reply
    reason: str = ""


@dataclass
class Verdict:
    id: str
    judge: str  # e.g. "rubric:v1", "llm:gpt-4o-mini:judge_v1"
    ok: bool = True
    traits: dict[str, int] = field(default_factory=dict)  # trait id -> 0, 1 or 2
    violations: list[Violation] = field(default_factory=list)
    pattern: dict[str, bool] = field(default_factory=dict)  # acknowledge / deliver / propel
    reasons: str = ""
    error: str | None = None
    extra: dict = field(default_factory=dict)
    # A judge that scores the reply as a whole (the reader judge: a head fitted to people's
    # 1-10 scores, mapped to 0..max) sets it; otherwise overall is the sum of the traits.
    score: float | None = None

    @property
    def overall(self) -> float | None:
        """0..10 (five traits): `score` when the judge gives one, else the sum of the trait
        scores (0..2 per trait); None for a failure."""
        if not self.ok:
            return None
        return self.score if self.score is not None else sum(self.traits.values())

    def passes(self, min_score: float = 6) -> bool:
        """The seed's quality filter: score at least `min_score` and no violation."""
        return self.ok and self.overall is not None and self.overall >= min_score and not self.violations

    def to_dict(self) -> dict:
        d = asdict(self)
        d["overall"] = self.overall
        return d

    @classmethod
    def failure(cls, id: str, judge: str, error: str) -> "Verdict":
        return cls(id=id, judge=judge, ok=False, error=error)


class Judge(Protocol):
    name: str  # recorded in results, e.g. "rubric:v1"

    def judge_batch(self, items: list[JudgeItem]) -> list[Verdict]: ...
