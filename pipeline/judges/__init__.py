"""Judges: one contract (a batch in, a list out, a documented failure value). See base.py.

    get_judge("rubric" | "llm", persona, settings) -> Judge            (per-reply scores)
    get_pairwise("rubric" | "llm", persona, settings) -> pairwise judge (A/B, both orders)

rubric   offline, deterministic, spec-driven heuristic (rubric.py); the default.
llm      the project's OpenAI-compatible client (settings.judge endpoint), prompts in
         pipeline/prompts/judge_*.txt and pairwise_*.txt, temperature 0.
"""

from __future__ import annotations

from ..errors import UserError
from ..spec import Persona, PersonaSpec
from .base import Judge, JudgeItem, Verdict, Violation

JUDGE_KINDS = ("rubric", "llm")


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
    if kind == "llm":
        from .pairwise import LLMPairwise

        return LLMPairwise(spec, _client(settings, client, **kw))
    raise UserError(f"unknown judge {kind!r}; choose one of {', '.join(JUDGE_KINDS)}")


__all__ = ["JUDGE_KINDS", "Judge", "JudgeItem", "Verdict", "Violation", "get_judge", "get_pairwise"]
