"""Pairwise (A/B) judges: which of two replies to the same conversation is better.

    judge.judge_pairs(items: list[PairItem]) -> list[PairVerdict]     # same length, same order

Every pair is judged in BOTH orders (A shown first, then B shown first), because LLM judges
prefer a position (MT-Bench, Zheng et al. 2023). The two answers are mapped back to A/B and
combined by `combine_orders`: a verdict counts only when both orders agree; an
order-dependent verdict counts as a tie. If either order failed, the pair is a failure
(`winner=None`, `ok=False`): excluded from the win rate and counted separately.

Two implementations:
  ScorePairwise  offline: prefers the reply with no violation, then the higher overall score
                 of any per-reply Judge (the rubric judge by default). Position-blind by
                 construction, but it still goes through both orders, so the logic is one.
  LLMPairwise    the pairwise prompt (pipeline/prompts/pairwise_*.txt) on the project's client.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..llm_client import ClientFailure, LLMClient
from ..spec import PersonaSpec
from .base import JudgeItem
from .prompts import load_pair, render_conversation, spec_fields

FIRST, SECOND, TIE = "1", "2", "tie"


@dataclass(frozen=True)
class PairItem:
    id: str
    messages: list[dict]
    a: str  # e.g. the adapter's reply
    b: str  # e.g. the base model's reply
    category: str | None = None


@dataclass
class PairVerdict:
    id: str
    judge: str
    winner: str | None  # "a" | "b" | "tie"; None when the judge failed
    orders: list[str | None] = field(default_factory=list)  # per order, in a/b terms: [a-first, b-first]
    consistent: bool = True
    ok: bool = True
    error: str | None = None
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def to_ab(pick: str | None, a_first: bool) -> str | None:
    """Map a positional pick ("1", "2", "tie") to "a"/"b"/"tie"."""
    if pick is None:
        return None
    if pick == TIE:
        return "tie"
    return ("a" if pick == FIRST else "b") if a_first else ("b" if pick == FIRST else "a")


def combine_orders(a_first_pick: str | None, b_first_pick: str | None) -> tuple[str | None, bool]:
    """(winner, consistent) from the positional picks of the two orders (MT-Bench practice)."""
    x, y = to_ab(a_first_pick, True), to_ab(b_first_pick, False)
    if x is None or y is None:
        return None, False
    if x == y:
        return x, True
    return "tie", False


class _BothOrders:
    name = "pairwise"

    def _prefer(self, requests: list[tuple[list[dict], str, str]]) -> list[tuple[str | None, str]]:
        """Positional picks ("1" | "2" | "tie", or None on failure) with a reason, per request."""
        raise NotImplementedError

    def judge_pairs(self, items: list[PairItem]) -> list[PairVerdict]:
        reqs = []
        for it in items:
            reqs.append((it.messages, it.a, it.b))  # A shown first
            reqs.append((it.messages, it.b, it.a))  # B shown first
        picks = self._prefer(reqs)
        out = []
        for k, it in enumerate(items):
            (p1, r1), (p2, r2) = picks[2 * k], picks[2 * k + 1]
            winner, consistent = combine_orders(p1, p2)
            failed = p1 is None or p2 is None
            out.append(PairVerdict(id=it.id, judge=self.name, winner=winner, orders=[to_ab(p1, True), to_ab(p2, False)],
                                   consistent=consistent, ok=not failed,
                                   error="; ".join(r for p, r in ((p1, r1), (p2, r2)) if p is None) or None,
                                   reasons=[r1, r2]))
        return out


class ScorePairwise(_BothOrders):
    def __init__(self, judge):
        self.judge = judge
        self.name = f"pairwise-score:{judge.name}"
        self.model = getattr(judge, "model", None)
        self.prompt_version = getattr(judge, "prompt_version", None)

    @staticmethod
    def key(v) -> tuple:
        return (0 if v.violations else 1, v.overall, sum(v.pattern.values()))

    def _prefer(self, requests):
        texts: dict[tuple, object] = {}
        items = []
        for msgs, first, second in requests:
            for text in (first, second):
                k = (repr(msgs), text)
                if k not in texts:
                    texts[k] = len(items)
                    items.append(JudgeItem(id=str(len(items)), messages=msgs, response=text))
        verdicts = self.judge.judge_batch(items)
        out = []
        for msgs, first, second in requests:
            v1, v2 = verdicts[texts[(repr(msgs), first)]], verdicts[texts[(repr(msgs), second)]]
            if not v1.ok or not v2.ok:
                out.append((None, "per-reply judge failed: " + (v1.error or v2.error or "")))
                continue
            k1, k2 = self.key(v1), self.key(v2)
            pick = FIRST if k1 > k2 else SECOND if k2 > k1 else TIE
            out.append((pick, f"score {v1.overall} vs {v2.overall}, violations {len(v1.violations)} vs {len(v2.violations)}"))
        return out


def pairwise_schema() -> dict:
    return {"type": "object", "required": ["winner"],
            "properties": {"winner": {"type": "string", "enum": [FIRST, SECOND, TIE]}}}


class LLMPairwise(_BothOrders):
    def __init__(self, spec: PersonaSpec, client: LLMClient):
        self.spec = spec
        self.client = client
        self.system_t, self.user_t, self.prompt_version = load_pair("pairwise")
        self.model = client.model
        self.name = f"pairwise-llm:{client.model}:{self.prompt_version}"
        self._system = self.system_t.format(**spec_fields(spec))

    def _prefer(self, requests):
        schema = pairwise_schema()
        reqs = [{"messages": [{"role": "system", "content": self._system},
                              {"role": "user", "content": self.user_t.format(
                                  conversation=render_conversation(m), first=f, second=s)}],
                 "temperature": 0.0, "json_schema": schema} for m, f, s in requests]
        results = self.client.chat_many(reqs)
        out = []
        for r in results:
            if isinstance(r, ClientFailure):
                out.append((None, f"judge failed: {r.reason}"))
            else:
                out.append((r.data["winner"], r.text[:500]))
        return out
