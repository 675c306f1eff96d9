"""Judges: one contract (a batch in, a list out, a documented failure value). See base.py.

    get_judge("rubric" | "llm", persona, settings) -> Judge            (per-reply scores)
    get_pairwise("rubric" | "llm", persona, settings) -> pairwise judge (A/B, both orders)

rubric   offline, deterministic, spec-driven heuristic (rubric.py): lexicons, < 1 ms a reply.
reader   offline: the embedded model's reading (hidden-state probe fitted on the judge
         benchmark's dev split) + grounding checks + the rubric's lexicon evidence (reader.py).
llm      the project's OpenAI-compatible client (settings.judge endpoint), prompts in
         pipeline/prompts/judge_*.txt and pairwise_*.txt, temperature 0.
"""

from __future__ import annotations

from ..errors import UserError
from ..spec import Persona, PersonaSpec
from .base import Judge, JudgeItem, Verdict, Violation

JUDGE_KINDS = ("rubric", "reader", "llm")


def _spec(persona) -> PersonaSpec:
    if isinstance(persona, Persona):
        return persona.spec
    if isinstance(persona, PersonaSpec):
        return persona
    raise TypeError(f"expected a Persona or PersonaSpec, got {type(persona).__name__}")


def _client(settings, client=None, **kw):
    if client is not None:
        return client
    from ..llm_client import LLMClient

    kw.setdefault("max_retries", 2)
    return LLMClient.from_settings(settings, role="judge", **kw)


def get_judge(kind: str, persona, settings=None, *, client=None, **kw) -> Judge:
    """A per-reply judge. `client` (an LLMClient) overrides the one built from settings;
    other keywords go to ClientConfig (max_concurrency, max_requests, max_cost_usd, ...)."""
    spec = _spec(persona)
    if kind == "rubric":
        from .rubric import RubricJudge

        return RubricJudge(spec)
    if kind == "reader":
        from .reader import ReaderJudge

        return ReaderJudge(spec)
    if kind == "llm":
        from .llm import LLMJudge

        return LLMJudge(spec, _client(settings, client, **kw))
    raise UserError(f"unknown judge {kind!r}; choose one of {', '.join(JUDGE_KINDS)}")


def get_pairwise(kind: str, persona, settings=None, *, client=None, judge=None, **kw):
    """The A/B judge matching `kind` (rubric: score comparison of `judge` or a rubric judge)."""
    spec = _spec(persona)
    if kind == "rubric":
        from .pairwise import ScorePairwise

        return ScorePairwise(judge or get_judge("rubric", spec))
    if kind == "reader":
        from .pairwise import ScorePairwise

        return ScorePairwise(judge or get_judge("reader", spec))
    if kind == "llm":
        from .pairwise import LLMPairwise

        return LLMPairwise(spec, _client(settings, client, **kw))
    raise UserError(f"unknown judge {kind!r}; choose one of {', '.join(JUDGE_KINDS)}")


def judge_agreement(judge) -> dict | None:
    """How far to trust `judge`: its measured agreement with people on the judge benchmark's
    TEST split (pipeline/judges/weights/<kind>_<version>.agreement.json, written by
    `python -m pipeline judge fit` / `judge calibrate --bench --record`), or a line saying it
    was not measured."""
    import json
    from pathlib import Path

    kind = getattr(judge, "kind", judge.name.split(":")[0])
    version = getattr(judge, "prompt_version", None) or judge.name.rsplit(":", 1)[-1]
    path = Path(__file__).parent / "weights" / f"{kind}_{version}.agreement.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"judge": judge.name, "measured": False,
            "note": f"not measured on the judge benchmark; run `python -m pipeline judge calibrate --judge {kind} --bench`"}


def describe_agreement(agreement: dict | None) -> str:
    """One line for summaries, the Evaluate tab and the model card: "reader:v3, Spearman 0.55 vs
    labelled replies (test split, n 348)"."""
    if not agreement:
        return "agreement with people not measured"
    if agreement.get("measured") is False:
        return f"{agreement.get('judge', 'judge')}: agreement with people not measured"
    parts = [f"Spearman {agreement['spearman']:.2f}"]
    if agreement.get("pairwise_accuracy") is not None:
        parts.append(f"pairwise accuracy {agreement['pairwise_accuracy']:.2f}")
    if agreement.get("violation_f1") is not None:
        parts.append(f"violation F1 {agreement['violation_f1']:.2f}")
    return (f"{agreement.get('judge')}, " + ", ".join(parts) +
            f" vs labelled replies ({agreement.get('split', 'test')} split, n {agreement.get('n')})")


__all__ = ["judge_agreement", "describe_agreement", "JUDGE_KINDS", "Judge", "JudgeItem", "Verdict", "Violation", "get_judge", "get_pairwise"]
