"""The rubric judge: the offline default. Deterministic, driven by the persona spec, fast.

It is a HEURISTIC (every verdict says so in `reasons` and `extra["heuristic"]`): it reads
words, not meaning. Measured against the labelled calibration set with
`python -m pipeline judge calibrate --judge rubric` (figures in the README), it is good
enough to filter generated data and to gate CI; an LLM judge (`--judge llm`) is the better
instrument when an endpoint is configured.

What it looks at, per reply (the conversation it answers gives the user's last turn):
  violations  boundary lexicons (pipeline/judges/lexicons.py) + every phrase the spec quotes in
              a boundary's description; the spec's generic-AI phrases; avoided vocabulary
              ("You should") as condescending lecturing; negativity matching = the user's
              turn is negative (VADER compound <= -0.05 or a negative-mood word) and the reply
              agrees with or amplifies it (lexicon), or is itself negative (VADER <= -0.35)
              with no way forward. Defensive patterns that need a trigger (e.g. "you didn't
              specify") fire only when the user criticised the assistant or the app.
  pattern     acknowledge (first sentence refers to the user's words or opens with an
              acknowledgement), deliver (confirms an action or carries >= 12 words of
              content), propel (ends with a question or offers a concrete next step).
  traits      each starts at 1 ("present but generic") and moves to 2 on specific evidence or
              to 0 on counter-evidence (the spec's 0 anchors): e.g. encouraging 2 needs
              recognition words, 0 for inflated/childlike praise or a condescending remark.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ..prompting import CONTEXT_HEADER, last_user_text
from ..spec import GENERIC_AI, PersonaSpec
from . import lexicons as L
from .base import JudgeItem, Verdict, Violation

VERSION = "v1"
HEURISTIC_NOTE = "heuristic rubric judge (lexicons + VADER sentiment); not a semantic judgement"
# VADER compound scores (-1..1). Thresholds: VADER's own convention puts "negative" at <= -0.05;
# a reply at or below -0.35 reads clearly negative (one strong negative word per sentence).
USER_NEGATIVE = -0.05
REPLY_NEGATIVE = -0.35
NEGATIVE_MOOD = [r"\b(?:awful|garbage|hate|worst|terrible|mess|behind|never|nothing|useless|idiot|slacking|unfair|"
                 r"failed|failing|stupid|annoying|shut up|overwhelmed|pointless|sucks|ugh|nightmare|disaster|horrible|"
                 r"miserable|exhausted|stressed|sick of|tired of|fed up|drowning|furious|angry|frustrat\w*|depressed|"
                 r"sad|hopeless|can't stand|rubbish|broken)\b"]


def _norm(text: str) -> str:
    return (text or "").replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')


def _compile(patterns: list[str]) -> list[re.Pattern]:
    return [re.compile(p, re.IGNORECASE | re.MULTILINE) for p in patterns]


def _phrase(p: str) -> str:
    """A literal phrase as a word-bounded, apostrophe-tolerant regex."""
    esc = re.escape(_norm(p).strip())
    left = r"\b" if re.match(r"\w", p.strip()) else ""
    right = r"\b" if re.search(r"\w$", p.strip()) else ""
    return left + esc + right


_QUOTED = re.compile(r"[\"\u201c]([^\"\u201d]{2,40})[\"\u201d]")


@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment(text: str) -> float:
    return _vader().polarity_scores(text)["compound"]


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+|\n+", text.strip())
    return [p.strip() for p in parts if p.strip()]


def _first(patterns: list[re.Pattern], text: str) -> re.Match | None:
    for p in patterns:
        m = p.search(text)
        if m:
            return m
    return None


def _count(patterns: list[re.Pattern], text: str) -> int:
    return sum(1 for p in patterns if p.search(text))


@dataclass
class _Compiled:
    boundaries: dict[str, list[re.Pattern]]
    generic_strong: list[re.Pattern]
    generic_weak: list[re.Pattern]
    avoided: list[tuple[str, re.Pattern]]
    preferred: list[re.Pattern]
    punctuation: list[str]


def compile_spec(spec: PersonaSpec) -> _Compiled:
    boundaries: dict[str, list[re.Pattern]] = {}
    for b in spec.boundaries:
        pats = list(L.BOUNDARY_LEXICONS.get(b.id, []))
        # Phrases the spec itself quotes ("obviously", "as I mentioned", "again") join the lexicon.
        for q in _QUOTED.findall(f"{b.rule} {b.description}"):
            if q.strip().lower() == "again":
                continue  # "again" alone is too common; the lexicon has the pointed uses of it
            pats.append(_phrase(q))
        boundaries[b.id] = _compile(pats)
    strong = _compile(L.GENERIC_AI_STRONG + [_phrase(p) for p in spec.vocabulary.generic_ai_phrases])
    return _Compiled(
        boundaries=boundaries,
        generic_strong=strong,
        generic_weak=_compile(L.GENERIC_AI_WEAK),
        avoided=[(p, re.compile(_phrase(p), re.IGNORECASE)) for p in spec.vocabulary.avoided],
        preferred=_compile([_phrase(p.rstrip("!?.")) for p in spec.vocabulary.preferred]),
        punctuation=list(spec.vocabulary.excessive_punctuation),
    )


_C = {name: _compile(getattr(L, name)) for name in (
    "CRITICISM", "RECOGNITION", "INFLATED_PRAISE", "DISMISSIVE_CHEER", "DIFFICULTY", "FORWARD", "ACTION_DONE",
    "NEXT_STEP", "ACK_MARKERS", "TASK_WORDS", "WARMTH", "UNGROUNDED_CLAIM")}
_NEG_MOOD = _compile(NEGATIVE_MOOD)
_NUMBERED = re.compile(L.NUMBERED_LIST)
# Patterns of a boundary lexicon that need a trigger in the user's turn (see module docstring).
_NEEDS_CRITICISM = {r"\byou didn't (?:specify|say|tell|mention|ask)\b", r"\bi'm (?:pretty |quite )?sure you said\b",
                    r"\bmuch more than\b", r"\bi'm actually\b|\bi am actually\b", r"\bdepends on your\b"}
_CONTENT = re.compile(r"[a-z']{4,}")
_STOP = set("that this with have from your what when just about there their they them will would could should been "
            "into than then want like some more also because these those over only really very".split())


class RubricJudge:
    """`judge_batch(items) -> verdicts`; never raises for one bad item (see base.py)."""

    kind = "rubric"

    def __init__(self, spec: PersonaSpec):
        self.spec = spec
        self.name = f"rubric:{VERSION}"
        self.model = None
        self.prompt_version = VERSION
        self._c = compile_spec(spec)

    def judge_batch(self, items: list[JudgeItem]) -> list[Verdict]:
        out = []
        for it in items:
            try:
                out.append(self.judge_one(it))
            except Exception as exc:  # a bug on one odd reply must not sink the batch
                out.append(Verdict.failure(it.id, self.name, f"rubric judge error: {type(exc).__name__}: {exc}"))
        return out

    # ---- one reply ---------------------------------------------------------------------
    def judge_one(self, item: JudgeItem) -> Verdict:
        reply = _norm(item.response).strip()
        user = _norm(last_user_text(item.messages))
        if not reply:
            return Verdict(id=item.id, judge=self.name, traits={t: 0 for t in self.spec.trait_ids},
                           pattern={p.id: False for p in self.spec.pattern},
                           reasons="empty reply; " + HEURISTIC_NOTE, extra={"heuristic": True})
        has_context = any(m.get("role") == "system" and CONTEXT_HEADER in (m.get("content") or "")
                          for m in item.messages)
        u_sent, r_sent = sentiment(user) if user else 0.0, sentiment(reply)
        user_negative = bool(user) and (u_sent <= USER_NEGATIVE or _first(_NEG_MOOD, user) is not None)
        criticised = bool(user) and _first(_C["CRITICISM"], user) is not None

        violations = self._violations(reply, user_negative, criticised, r_sent)
        pattern = self._pattern(reply, user)
        relevant = self._relevant(reply, item.messages)
        traits, notes = self._traits(reply, user, pattern, violations, has_context, r_sent, relevant)
        reasons = "; ".join(notes + [HEURISTIC_NOTE])
        extra = {"heuristic": True, "sentiment": {"user": round(u_sent, 3), "reply": round(r_sent, 3)},
                 "preferred_hits": [p.pattern for p in self._c.preferred if p.search(reply)],
                 "avoided_hits": [a for a, p in self._c.avoided if p.search(reply)],
                 "excessive_punctuation": [p for p in self._c.punctuation if p in reply]}
        return Verdict(id=item.id, judge=self.name, traits=traits, violations=violations, pattern=pattern,
                       reasons=reasons, extra=extra)

    def _violations(self, reply: str, user_negative: bool, criticised: bool, r_sent: float) -> list[Violation]:
        found: dict[str, Violation] = {}

        def add(vtype: str, m: re.Match | str, reason: str):
            if vtype in found:
                return
            quote = m.group(0).strip(" ,.") if isinstance(m, re.Match) else m
            found[vtype] = Violation(type=vtype, quote=quote or reply[:60], reason=reason)

        for bid, pats in self._c.boundaries.items():
            if bid == "negativity_matching" and not user_negative:
                continue  # matching needs something to match
            for p in pats:
                if p.pattern in _NEEDS_CRITICISM and not criticised:
                    continue
                if bid == "defensive" and p.pattern == r"\byou(?:'re| are) not exactly\b" and not criticised:
                    continue
                m = p.search(reply)
                if m:
                    add(bid, m, f"matches the {bid} lexicon")
                    break
        for a, p in self._c.avoided:
            # Lecturing is the avoided phrase opening a sentence or clause ("You need to stay
            # disciplined"); mid-sentence ("where you need to work") it is only counted.
            for m in p.finditer(reply):
                before = reply[:m.start()].rstrip()
                if (not before or before[-1] in ".!?,;:") and "condescending" in self._c.boundaries:
                    add("condescending", m, f"avoided vocabulary {a!r} (lecturing)")
                    break
        if user_negative and "negativity_matching" in self._c.boundaries and "negativity_matching" not in found:
            if r_sent <= REPLY_NEGATIVE and _first(_C["FORWARD"], reply) is None \
                    and re.search(r"\b(?:you|your|it|this|that)\b", reply, re.I):
                worst = min(_sentences(reply), key=sentiment)
                add("negativity_matching", worst, f"negative reply (VADER {r_sent:+.2f}) to a negative user, no way forward")
        m = _first(self._c.generic_strong, reply)
        if m:
            add(GENERIC_AI, m, "generic AI phrasing")
        else:
            weak = [p.search(reply) for p in self._c.generic_weak]
            weak = [w for w in weak if w]
            if len(weak) >= 2:
                add(GENERIC_AI, weak[0], f"{len(weak)} stock assistant phrases")
        return list(found.values())

    @staticmethod
    def _relevant(reply: str, messages: list[dict]) -> bool:
        """Does the reply share a content word (5-letter stem) with the conversation? A reply that
        shares none and does not acknowledge the user is off topic (productivity_focused 0)."""
        convo = " ".join(_norm(m.get("content", "")) for m in messages if m.get("role") in ("user", "system"))
        stems = {w[:5] for w in _CONTENT.findall(convo.lower()) if w not in _STOP}
        if stems & {w[:5] for w in _CONTENT.findall(reply.lower()) if w not in _STOP}:
            return True
        # "missed the deadline" / "it was due Monday": both about the user's tasks, no shared word
        return _first(_C["TASK_WORDS"], convo) is not None and _first(_C["TASK_WORDS"], reply) is not None

    def _pattern(self, reply: str, user: str) -> dict[str, bool]:
        sents = _sentences(reply)
        first = sents[0] if sents else reply
        user_words = {w for w in _CONTENT.findall(user.lower()) if w not in _STOP}
        first_words = set(_CONTENT.findall(first.lower()))
        ack = bool(user_words & first_words) or _first(_C["ACK_MARKERS"], first) is not None
        words = len(reply.split())
        deliver = _first(_C["ACTION_DONE"], reply) is not None or words >= 12
        last = sents[-1] if sents else reply
        propel = last.rstrip().endswith("?") or _first(_C["NEXT_STEP"], " ".join(sents[1:]) or reply) is not None
        out = {"acknowledge": ack, "deliver": deliver, "propel": propel}
        return {p.id: out.get(p.id, False) for p in self.spec.pattern} if self.spec.pattern else out

    def _traits(self, reply, user, pattern, violations, has_context, r_sent, relevant=True) -> tuple[dict[str, int], list[str]]:
        c = _C
        vtypes = {v.type for v in violations}
        notes: list[str] = []
        words = len(reply.split())
        recognition = _count(c["RECOGNITION"], reply) + _count(self._c.preferred, reply)
        inflated = _first(c["INFLATED_PRAISE"], reply)
        dismissive = _first(c["DISMISSIVE_CHEER"], reply)
        difficulty = _first(c["DIFFICULTY"], reply)
        forward = _first(c["FORWARD"], reply)
        next_step = _first(c["NEXT_STEP"], reply)
        task_talk = _count(c["TASK_WORDS"], reply)
        warmth = _count(c["WARMTH"], reply) + (1 if re.search(r"\b\w+'(?:s|ll|d|re|ve|m)\b", reply) else 0)
        numbered = len(_NUMBERED.findall(reply))
        excessive = [p for p in self._c.punctuation if p in reply]
        ungrounded = (not has_context) and _first(c["UNGROUNDED_CLAIM"], reply) is not None
        hostile = vtypes & {"condescending", "passive_aggressive", "defensive", "negativity_matching"}

        t: dict[str, int] = {}
        # encouraging: 2 = specific recognition; 0 = none in a flat reply, or inflated/childlike
        if inflated or "condescending" in vtypes:
            t["encouraging"] = 0
            notes.append("encouraging 0: inflated or patronising praise" if inflated else "encouraging 0: condescending")
        elif recognition:
            t["encouraging"] = 2 if not hostile else 1
        else:
            t["encouraging"] = 1 if (warmth or pattern.get("propel")) and not hostile else 0
        # productivity_focused: 2 = on the user's work, offering not insisting; 0 = off task or pushy lecture
        pushy = numbered >= 3 or bool([a for a, p in self._c.avoided if p.search(reply)])
        off_topic = not relevant and not pattern.get("acknowledge")
        if ungrounded:
            t["productivity_focused"] = 0
            notes.append("productivity_focused 0: states task data with no Task API context (invented)")
        elif off_topic:
            t["productivity_focused"] = 0
            notes.append("productivity_focused 0: off topic (no word in common with the user's message)")
        elif task_talk == 0 and not pattern.get("propel"):
            t["productivity_focused"] = 0
        elif pushy:
            t["productivity_focused"] = 1
            notes.append("productivity_focused 1: pushy (a list of demands or tips)")
        else:
            t["productivity_focused"] = 2 if (task_talk >= 1 and (next_step or pattern.get("propel"))) else 1
        # professional_friendly: 2 = clear and warm; 1 = flat or sloppy; 0 = rude, sarcastic, cold
        if hostile:
            t["professional_friendly"] = 0
        elif off_topic:
            t["professional_friendly"] = min(1, 2 if warmth >= 2 else 1)
        elif excessive or inflated or words < 4 or GENERIC_AI in vtypes:
            t["professional_friendly"] = 1
        else:
            t["professional_friendly"] = 2 if warmth >= 2 else 1
        # action_oriented: 2 = concrete next step; 1 = vague; 0 = none
        if pattern.get("propel") and next_step:
            t["action_oriented"] = 2 if "negativity_matching" not in vtypes else 1
        elif pattern.get("propel") or pattern.get("deliver") and _first(c["ACTION_DONE"], reply):
            t["action_oriented"] = 1
        else:
            t["action_oriented"] = 0
            notes.append("action_oriented 0: no next step")
        # optimistic: 2 = names difficulty + way forward (or plainly positive with a way forward)
        if "negativity_matching" in vtypes or (r_sent <= REPLY_NEGATIVE and not forward):
            t["optimistic"] = 0
        elif dismissive:
            t["optimistic"] = 1 if forward else 0
            notes.append("optimistic: cheerfully dismisses the difficulty")
        elif (difficulty and forward) or (r_sent >= 0.3 and forward and not hostile):
            t["optimistic"] = 2
        else:
            t["optimistic"] = 1
        if hostile:
            t["optimistic"] = min(t["optimistic"], 1)
        # Traits the spec defines that this heuristic has no evidence model for get the pattern's view.
        base = 1 + (1 if all(pattern.values()) else 0)
        traits = {tid: t.get(tid, base) for tid in self.spec.trait_ids}
        missing = [p for p, ok in pattern.items() if not ok]
        if missing:
            notes.append("pattern missing: " + ", ".join(missing))
        for v in violations:
            notes.append(f"{v.type}: \"{v.quote}\"")
        return traits, notes
