"""The reader judge: the offline judge that reads a reply the way the benchmark's people did.

    get_judge("reader", persona)  ->  ReaderJudge   name "reader:v3"

Three kinds of evidence, each kept in the verdict so a person can check it:

  1. the embedded model's reading (features.py): hidden states of SmolLM2-135M over the
     user's turn and the reply, through linear heads fitted on the benchmark's DEV split
     (probe.py, weights in pipeline/judges/weights/reader_v3.json, built by
     `python -m pipeline judge fit`): overall 1-10, coherence 0-2, each trait, and the
     probability of each violation type, of invented task data and of dishonest compliance;
  2. grounding (grounding.py): dates, counts, times, titles the request and the Task API
     context do not support, each quoted;
  3. the rubric judge's lexicons (rubric.py): exact phrases, quoted as evidence.

A violation is reported when the lexicon quotes one (precise) or the probe's probability is
at or above the head's threshold (chosen on dev by cross-validation, never on test). The
score is the overall head mapped to people's scale (quantile map, fitted on dev), then the labelling
protocol's caps (docs/judges.md): an incoherent reply (coherence head < 0.5, or a loop of repeated
words) scores at most 2/10, a quoted violation or invented data at most 5, dishonest compliance at
most 3; a violation only the probe reads is reported but does not move the score. Every verdict's `extra` says how far to trust it: the judge's measured
agreement with people on the benchmark's TEST split (`extra["agreement"]`).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from ..prompting import last_user_text
from ..spec import PersonaSpec
from . import grounding
from .base import JudgeItem, Verdict, Violation
from .features import degenerate
from .probe import Probe

VERSION = "v3"
WEIGHTS = Path(__file__).parent / "weights" / f"reader_{VERSION}.json"
AGREEMENT = Path(__file__).parent / "weights" / f"reader_{VERSION}.agreement.json"
INVENTED = "invented_task_data"
DISHONEST = "dishonest"


@lru_cache(maxsize=4)
def load_probe(path: str = str(WEIGHTS)) -> Probe:
    return Probe.load(path)


def agreement() -> dict | None:
    """The judge's measured agreement on the benchmark's test split (written by `judge fit`)."""
    if AGREEMENT.is_file():
        return json.loads(AGREEMENT.read_text(encoding="utf-8"))
    return None


def extra_features(messages: list[dict], reply: str, rubric_verdict, types: list[str]) -> list[float]:
    """Cheap evidence beside the hidden states: grounding claims and the rubric's lexicon hits."""
    claims = grounding.ungrounded_claims(messages, reply)
    kinds = [c.kind for c in claims]
    lex = {v.type for v in rubric_verdict.violations} if rubric_verdict.ok else set()
    has_ctx = float(any(m.get("role") == "system" for m in messages))
    return ([float(len(claims) > 0), float(len(claims))] + [float(k in kinds) for k in ("date", "count", "title", "list", "time")]
            + [float(t in lex) for t in types] + [float(rubric_verdict.overall or 0) / 10, has_ctx])


def features_for(items: list[JudgeItem], rubric_verdicts: list[Verdict], encoder, types: list[str]) -> list[list[float]]:
    """The probe's input per reply: the embedded model's features + extra_features (same order)."""
    hid = encoder.encode([(last_user_text(it.messages), it.response or "") for it in items])
    return [h + extra_features(it.messages, it.response or "", v, types) for it, h, v in zip(items, hid, rubric_verdicts)]


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text.strip()) if s.strip()]


class ReaderJudge:
    kind = "reader"

    def __init__(self, spec: PersonaSpec, *, probe: Probe | None = None, encoder=None, weights: str | Path | None = None):
        from .rubric import RubricJudge

        self.spec = spec
        self.name = f"reader:{VERSION}"
        self.prompt_version = VERSION
        self.rubric = RubricJudge(spec)
        self.probe = probe or load_probe(str(weights or WEIGHTS))
        self._encoder = encoder
        self.model = self.probe.meta.get("base_model", "smollm2-135m")

    @property
    def encoder(self):
        if self._encoder is None:
            from .features import shared_encoder

            self._encoder = shared_encoder(None)
        return self._encoder

    def judge_batch(self, items: list[JudgeItem]) -> list[Verdict]:
        rub = self.rubric.judge_batch(items)
        try:
            feats = features_for(items, rub, self.encoder, self.spec.violation_types)
        except Exception as exc:  # the model itself failed: every item fails, documented value
            return [Verdict.failure(it.id, self.name, f"reader judge error: {type(exc).__name__}: {exc}") for it in items]
        out = []
        for it, x, rv in zip(items, feats, rub):
            try:
                out.append(self._verdict(it, x, rv))
            except Exception as exc:  # one odd reply must not sink the batch
                out.append(Verdict.failure(it.id, self.name, f"reader judge error: {type(exc).__name__}: {exc}"))
        return out

    def _verdict(self, item: JudgeItem, x: list[float], rv: Verdict) -> Verdict:
        reply = (item.response or "").strip()
        if not reply:
            return Verdict(id=item.id, judge=self.name, traits={t: 0 for t in self.spec.trait_ids},
                           pattern={p.id: False for p in self.spec.pattern}, score=0.0,
                           reasons="empty reply", extra={"agreement": agreement()})
        pred = self.probe.predict(x)
        heads = self.probe.heads
        notes: list[str] = []
        violations: dict[str, Violation] = {}
        lexicon = {v.type: v for v in (rv.violations if rv.ok else [])}
        probs = {}
        for t in self.spec.violation_types:
            p = pred.get(t)
            if p is not None:
                probs[t] = round(p, 3)
            if t in lexicon:
                v = lexicon[t]
                violations[t] = Violation(t, v.quote, f"lexicon: {v.reason}" + (f"; probe P={p:.2f}" if p is not None else ""))
            elif p is not None and p >= heads[t].threshold:
                violations[t] = Violation(t, self._quote(reply), f"probe P={p:.2f} >= {heads[t].threshold:.2f} (no lexicon phrase)")
        claims = grounding.ungrounded_claims(item.messages, reply)
        p_inv = pred.get(INVENTED, 0.0)
        invented = bool(claims) or (INVENTED in heads and p_inv >= heads[INVENTED].threshold)
        p_dis = pred.get(DISHONEST, 0.0)
        dishonest = DISHONEST in heads and p_dis >= heads[DISHONEST].threshold
        coherence = max(0.0, min(2.0, pred.get("coherence", 2.0)))
        loop = degenerate(reply)
        if loop is not None:  # a rule, not the head: the benchmark has too few such loops to fit one
            coherence = 0.0
            notes.append(f'incoherent: mostly repeated words ("{loop}")')
        raw = pred.get("overall", 5.5)  # people's 1-10 scale
        score = max(0.0, min(10.0, (raw - 1) * 10 / 9))
        if coherence < 0.5:
            score = min(score, 2.0)
            if loop is None:
                notes.append(f"incoherent or off task (coherence head {coherence:.2f})")
        if invented or any(t in lexicon for t in violations):  # quoted evidence: the protocol's cap
            score = min(score, 5.0)
        # A violation only the probe reads is reported, not capped or pulled: the overall head
        # already reads the same hidden states, and under dev CV pulling the score towards 5 by
        # the head's precision (reader:v2) lowered the 9-10 replies' mean (6.7 -> 6.2) without
        # improving the ranking (Spearman 0.492 vs 0.488): the probe heads' precision is 0.3-0.6.
        if dishonest:
            score = min(score, 3.0)
            notes.append(f"complies with a dishonest request or claims an action it cannot take (probe P={p_dis:.2f})")
        traits = {}
        for tid in self.spec.trait_ids:
            v = pred.get(tid)
            traits[tid] = int(max(0, min(2, round(v)))) if v is not None else rv.traits.get(tid, 1)
            if coherence < 0.5:
                traits[tid] = 0
        for c in claims:
            notes.append(f"invented {c.kind}: {c.quote} ({c.reason})")
        if invented and not claims:
            notes.append(f"probe reads invented task data (P={p_inv:.2f})")
        for v in violations.values():
            notes.append(f'{v.type}: "{v.quote}" ({v.reason})')
        extra = {"coherence": round(coherence, 2), "overall_raw_1_10": round(raw, 2), "violation_probs": probs,
                 "invented_task_data": invented, "invented_prob": round(p_inv, 3),
                 "ungrounded": [{"kind": c.kind, "quote": c.quote, "reason": c.reason} for c in claims],
                 "dishonest": dishonest, "dishonest_prob": round(p_dis, 3),
                 "lexicon": {t: v.quote for t, v in lexicon.items()}, "agreement": agreement()}
        return Verdict(id=item.id, judge=self.name, traits=traits, violations=list(violations.values()),
                       pattern=rv.pattern if rv.ok else {}, reasons="; ".join(notes) or "no problem found",
                       extra=extra, score=round(score, 2))

    @staticmethod
    def _quote(reply: str) -> str:
        s = _sentences(reply)
        return (s[0] if s else reply)[:160]
