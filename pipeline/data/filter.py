"""`filter`: judge every example, keep those at or above `min_score` with no violation.

The seed's `filter_quality_examples(examples, min_score=6)`. The judge is any object with
the contract of pipeline/judges/base.py (`judge_batch(items) -> verdicts`): the offline
rubric judge by default, the LLM judge when an endpoint is configured. The verdict stays on
every record (`quality`: judge, overall, per-trait scores, violations, reasons), and the
rejected ones are kept aside in rejected.jsonl with `rejection.reasons`, never dropped:

    "score 5 < min_score 6"                       overall below the bar
    "violation condescending: \"obviously\""        any boundary or generic-AI violation
    "judge failed: <error>"                        the judge could not score it (not a 0)

Multi-turn examples are judged on their last assistant turn, with the turns before it as
the conversation it answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UserError
from ..judges.base import JudgeItem, Verdict
from ..prompting import prompt_messages
from ..settings import Settings
from ..spec import Persona
from .records import Example
from .workspace import Progress, now_iso

DEFAULT_MIN_SCORE = 6  # the seed's filter_quality_examples(min_score=6), on the 0-10 scale
JUDGE_KINDS = ("rubric", "llm")


@dataclass
class FilterConfig:
    min_score: float = DEFAULT_MIN_SCORE
    judge: str = "rubric"
    batch_size: int = 32  # items per judge_batch call (progress is reported per batch)

    def problems(self, persona: Persona | None = None) -> list[str]:
        p = []
        top = persona.spec.max_overall if persona else 10
        if not 0 <= self.min_score <= top:
            p.append(f"min_score: {self.min_score}; must be between 0 and {top} (the sum of the trait scores)")
        if self.judge not in JUDGE_KINDS:
            p.append(f"judge: {self.judge!r}; choose one of {', '.join(JUDGE_KINDS)}")
        if self.batch_size < 1:
            p.append(f"batch_size: {self.batch_size}; must be at least 1")
        return p

    def check(self, persona: Persona | None = None) -> None:
        problems = self.problems(persona)
        if problems:
            raise UserError("filter settings:\n  " + "\n  ".join(problems))


@dataclass
class FilterResult:
    kept: list[Example] = field(default_factory=list)
    rejected: list[Example] = field(default_factory=list)

    @property
    def counts(self) -> dict:
        reasons: dict[str, int] = {}
        for ex in self.rejected:
            for r in ex.model_extra.get("rejection", {}).get("reasons", []):
                kind = r.split(":")[0].split(" <")[0]
                kind = "score below min_score" if kind.startswith("score") else kind
                reasons[kind] = reasons.get(kind, 0) + 1
        return {"total": len(self.kept) + len(self.rejected), "kept": len(self.kept),
                "rejected": len(self.rejected), "rejection_reasons": reasons}


def get_judge(kind: str, persona: Persona, settings: Settings):
    """The project's judge factory (pipeline.judges.get_judge)."""
    from ..judges import get_judge as factory

    return factory(kind, persona, settings)


def judge_item(ex: Example) -> JudgeItem:
    chat = ex.chat()
    return JudgeItem(id=ex.id, messages=prompt_messages(chat), response=chat[-1]["content"], category=ex.category)


def quality_of(v: Verdict, min_score: float) -> dict:
    d = v.to_dict()
    q = {"judge": v.judge, "ok": v.ok, "overall": v.overall, "total_score": v.overall, "traits": d["traits"],
         "violations": d["violations"], "pattern": d["pattern"], "reasons": v.reasons, "min_score": min_score,
         "passed": v.passes(min_score), "judged_at": now_iso()}
    if v.error:
        q["error"] = v.error
    return q


def rejection_reasons(v: Verdict, min_score: float) -> list[str]:
    if not v.ok:
        return [f"judge failed: {v.error or 'no verdict'}"]
    out = []
    if v.overall is not None and v.overall < min_score:
        out.append(f"score {v.overall} < min_score {min_score:g}")
    out += [f"violation {x.type}: \"{x.quote}\"" for x in v.violations]
    return out


def judge_examples(examples: list[Example], judge, batch_size: int = 32,
                   progress: Progress | None = None) -> list[Verdict]:
    verdicts: list[Verdict] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        got = judge.judge_batch([judge_item(e) for e in chunk])
        if len(got) != len(chunk):  # a contract breach is a bug in the judge, not the user's problem
            raise RuntimeError(f"judge {getattr(judge, 'name', judge)!r} returned {len(got)} verdicts for {len(chunk)} items")
        verdicts += got
        if progress is not None:
            for v in got:
                progress.step(ok=v.ok)
    return verdicts


def filter_examples(examples: list[Example], judge, min_score: float = DEFAULT_MIN_SCORE, *,
                    batch_size: int = 32, progress: Progress | None = None, stage: str = "filter") -> FilterResult:
    """Judge every example; split into kept and rejected (with reasons). Inputs are not modified."""
    verdicts = judge_examples(examples, judge, batch_size, progress)
    out = FilterResult()
    for ex, v in zip(examples, verdicts):
        rec = ex.model_copy(deep=True)
        rec.quality = quality_of(v, min_score)
        reasons = rejection_reasons(v, min_score)
        if reasons:
            extra = rec.model_dump()
            extra["rejection"] = {"stage": stage, "reasons": reasons, "time": now_iso()}
            out.rejected.append(Example.model_validate(extra))
        else:
            out.kept.append(rec)
    return out


def summary(result: FilterResult, min_score: float) -> str:
    c = result.counts
    lines = [f"Quality filter: {c['kept']}/{c['total']} passed (min_score {min_score:g}, no violation)"]
    lines += [f"  rejected: {n} x {r}" for r, n in sorted(c["rejection_reasons"].items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)
