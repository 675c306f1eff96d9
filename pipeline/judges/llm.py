"""The LLM judge: any OpenAI-compatible endpoint through the project's one client
(pipeline/llm_client.py), scoring each reply against the persona's rubric.

The judge is asked to reason first and give its verdict last, as one JSON object; the client
extracts the last {...} block and validates it against `verdict_schema(spec)` (trait scores
0/1/2 for exactly the spec's traits, violation types from the spec, pattern booleans).
Temperature 0. A reply that still fails validation after the client's own retries is asked
once more with a reminder of the format (a different request, so no cached answer is
reused); if that fails too, the item becomes `Verdict.failure(...)`: counted as a judge
failure, never as a score. Transport failures (HTTP errors, budget) are failures as well.
"""

from __future__ import annotations

from ..llm_client import ClientFailure, LLMClient
from ..prompting import CONTEXT_HEADER
from ..spec import PersonaSpec
from .base import JudgeItem, Verdict, Violation
from .prompts import load_pair, render_conversation, spec_fields

FORMAT_REMINDER = ("Your previous answer did not end with a valid JSON verdict. Answer again: a few "
                   "sentences under REASONING, then exactly one JSON object in the format given, nothing after it.")


def verdict_schema(spec: PersonaSpec) -> dict:
    return {
        "type": "object",
        "required": ["traits", "violations", "pattern"],
        "properties": {
            "traits": {"type": "object", "required": spec.trait_ids, "additionalProperties": False,
                       "properties": {t: {"type": "integer", "minimum": 0, "maximum": 2} for t in spec.trait_ids}},
            "violations": {"type": "array", "items": {
                "type": "object", "required": ["type", "quote"],
                "properties": {"type": {"type": "string", "enum": spec.violation_types},
                               "quote": {"type": "string"}, "reason": {"type": "string"}}}},
            "pattern": {"type": "object", "required": [p.id for p in spec.pattern],
                        "properties": {p.id: {"type": "boolean"} for p in spec.pattern}},
        },
    }


def _reasoning(text: str) -> str:
    """The judge's reasoning: the reply text before its JSON verdict."""
    cut = text.rfind("{")
    body = text[:cut] if cut > 0 else text
    return body.replace("REASONING", "").strip(" :\n")[:2000]


class LLMJudge:
    kind = "llm"

    def __init__(self, spec: PersonaSpec, client: LLMClient, *, stem: str = "judge"):
        self.spec = spec
        self.client = client
        self.system_t, self.user_t, self.prompt_version = load_pair(stem)
        self.model = client.model
        self.name = f"llm:{client.model}:{self.prompt_version}"
        self.schema = verdict_schema(spec)
        self._system = self.system_t.format(**spec_fields(spec))

    def messages(self, item: JudgeItem) -> list[dict]:
        user = self.user_t.format(conversation=render_conversation(item.messages), response=item.response)
        return [{"role": "system", "content": self._system}, {"role": "user", "content": user}]

    def judge_batch(self, items: list[JudgeItem]) -> list[Verdict]:
        reqs = [{"messages": self.messages(it), "temperature": 0.0, "json_schema": self.schema} for it in items]
        results = self.client.chat_many(reqs)
        again = [i for i, r in enumerate(results) if isinstance(r, ClientFailure) and r.reason.startswith("invalid JSON")]
        if again:  # one more try per unparseable item, with the format spelled out again
            retry = [{"messages": reqs[i]["messages"] + [{"role": "user", "content": FORMAT_REMINDER}],
                      "temperature": 0.0, "json_schema": self.schema} for i in again]
            for i, r in zip(again, self.client.chat_many(retry)):
                results[i] = r
        return [self._verdict(it, r) for it, r in zip(items, results)]

    def _verdict(self, item: JudgeItem, r) -> Verdict:
        if isinstance(r, ClientFailure):
            return Verdict.failure(item.id, self.name, f"judge failed: {r.reason}")
        data = r.data or {}
        violations, unverified = [], []
        for v in data.get("violations", []):
            quote = str(v.get("quote", "")).strip()
            if quote and quote.lower() not in item.response.lower():
                unverified.append(quote)  # paraphrased evidence: kept, but flagged
            violations.append(Violation(type=v["type"], quote=quote, reason=str(v.get("reason", ""))))
        grounded = any(m.get("role") == "system" and CONTEXT_HEADER in (m.get("content") or "") for m in item.messages)
        return Verdict(id=item.id, judge=self.name, traits={t: int(data["traits"][t]) for t in self.spec.trait_ids},
                       violations=violations, pattern={k: bool(v) for k, v in data.get("pattern", {}).items()},
                       reasons=_reasoning(r.text),
                       extra={"cached": r.cached, "attempts": r.attempts, "unverified_quotes": unverified,
                              "grounded": grounded})
