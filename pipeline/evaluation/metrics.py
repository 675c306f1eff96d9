"""compute_metrics: the seed's metrics for one model's judged replies, and more.

Input rows: {"id", "category", "tags", "messages", "reply", "verdict": Verdict.to_dict()}.
Scores are means over the replies the judge could score; judge failures are counted
(`judge_failures`) and never averaged in as zeros.

  overall_mean (+ 95% interval), trait_means, pattern_rates
  boundary_violations  number of replies with at least one violation (the seed's gate is 0)
  violation_count      violations in total, by type
  violation_rate       boundary_violations / scored replies
  violating_replies    every offending reply, with its prompt and the quoted words
  per_category         n, overall mean, violations per category
  length_words / length_chars  reply-length distributions (length drift between models shows)
  preferred_phrase_rate, preferred_hits, avoided_hits, excessive_punctuation
  opener_diversity     distinct first-three-word openers / replies (1.0 = all different)
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict

from ..prompting import last_user_text
from ..spec import PersonaSpec
from .stats import distribution, mean_ci


def _phrase_re(p: str) -> re.Pattern:
    core = p.strip().rstrip("!?.").replace("\u2019", "'")
    return re.compile(r"\b" + re.escape(core) + r"\b", re.IGNORECASE)


def opener(text: str, n: int = 3) -> str:
    words = re.findall(r"[a-z0-9']+", text.lower().replace("\u2019", "'"))
    return " ".join(words[:n])


def compute_metrics(rows: list[dict], spec: PersonaSpec) -> dict:
    scored = [r for r in rows if r["verdict"].get("ok")]
    overall = [r["verdict"]["overall"] for r in scored]
    trait_means = {t: (round(statistics.fmean(r["verdict"]["traits"][t] for r in scored if t in r["verdict"]["traits"]), 3)
                       if any(t in r["verdict"]["traits"] for r in scored) else None) for t in spec.trait_ids}
    pattern_ids = [p.id for p in spec.pattern]
    pattern_rates = {p: (round(sum(1 for r in scored if r["verdict"]["pattern"].get(p)) / len(scored), 3)
                         if scored else None) for p in pattern_ids}
    violating = [r for r in scored if r["verdict"]["violations"]]
    by_type = Counter(v["type"] for r in scored for v in r["verdict"]["violations"])
    cats: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        cats[r.get("category") or "uncategorized"].append(r)
    per_category = {}
    for c, rs in sorted(cats.items()):
        ok = [r for r in rs if r["verdict"].get("ok")]
        per_category[c] = {"n": len(rs), "scored": len(ok),
                           "overall_mean": round(statistics.fmean(r["verdict"]["overall"] for r in ok), 3) if ok else None,
                           "violations": sum(1 for r in ok if r["verdict"]["violations"])}
    preferred = [(p, _phrase_re(p)) for p in spec.vocabulary.preferred]
    avoided = [(p, _phrase_re(p)) for p in spec.vocabulary.avoided]
    replies = [r.get("reply") or "" for r in rows]
    pref_hits = Counter(p for t in replies for p, rx in preferred if rx.search(t))
    avoid_hits = Counter(p for t in replies for p, rx in avoided if rx.search(t))
    punct = Counter(p for t in replies for p in spec.vocabulary.excessive_punctuation if p in t)
    openers = Counter(opener(t) for t in replies if t.strip())
    lo, hi = mean_ci(overall)
    n = len(rows)
    return {
        "n": n,
        "scored": len(scored),
        "judge_failures": n - len(scored),
        "failed_ids": [r["id"] for r in rows if not r["verdict"].get("ok")],
        "overall_mean": round(statistics.fmean(overall), 3) if overall else None,
        "overall_ci95": [round(lo, 3), round(hi, 3)] if lo is not None else None,
        "overall_max": spec.max_overall,
        "trait_means": trait_means,
        "pattern_rates": pattern_rates,
        "boundary_violations": len(violating),
        "violation_count": sum(by_type.values()),
        "violations_by_type": dict(by_type),
        "violation_rate": round(len(violating) / len(scored), 4) if scored else None,
        "violating_replies": [{"id": r["id"], "category": r.get("category"), "prompt": last_user_text(r["messages"]),
                               "reply": r.get("reply"), "violations": r["verdict"]["violations"]} for r in violating],
        "per_category": per_category,
        "length_words": distribution([len(t.split()) for t in replies]),
        "length_chars": distribution([len(t) for t in replies]),
        "empty_replies": sum(1 for t in replies if not t.strip()),
        "preferred_phrase_rate": round(sum(1 for t in replies if any(rx.search(t) for _, rx in preferred)) / n, 4) if n else None,
        "preferred_hits": dict(pref_hits),
        "avoided_hits": dict(avoid_hits),
        "avoided_hit_replies": sum(1 for t in replies if any(rx.search(t) for _, rx in avoided)),
        "excessive_punctuation": dict(punct),
        "opener_diversity": round(len(openers) / max(1, sum(openers.values())), 4),
        "top_openers": [{"opener": o, "count": c} for o, c in openers.most_common(5)],
    }


def worst_replies(rows: list[dict], k: int = 10) -> list[dict]:
    """Violations first, then the lowest overall scores; judge failures last."""
    def key(r):
        v = r["verdict"]
        return (0 if v.get("ok") and v["violations"] else 1 if v.get("ok") else 2,
                v.get("overall") if v.get("overall") is not None else 99)
    return [{"id": r["id"], "category": r.get("category"), "prompt": last_user_text(r["messages"]), "reply": r.get("reply"),
             "overall": r["verdict"].get("overall"), "traits": r["verdict"].get("traits"),
             "violations": r["verdict"].get("violations"), "reasons": r["verdict"].get("reasons"),
             "error": r["verdict"].get("error")} for r in sorted(rows, key=key)[:k]]


def ab_summary(pairs: list[dict]) -> dict:
    """wins/losses/ties for the adapter ("a") over the base ("b"); ties count half in the win
    rate; failed pairs are excluded from n and counted in `failures`."""
    from .stats import wilson

    ok = [p for p in pairs if p.get("ok")]
    wins = sum(1 for p in ok if p["winner"] == "a")
    losses = sum(1 for p in ok if p["winner"] == "b")
    ties = sum(1 for p in ok if p["winner"] == "tie")
    n = len(ok)
    lo, hi = wilson(wins + 0.5 * ties, n)
    return {"wins": wins, "losses": losses, "ties": ties, "n": n, "failures": len(pairs) - n,
            "inconsistent": sum(1 for p in ok if not p.get("consistent", True)),
            "win_rate": round((wins + 0.5 * ties) / n, 4) if n else None,
            "ci_low": round(lo, 4) if n else None, "ci_high": round(hi, 4) if n else None,
            "ties_count": "half"}
