"""Dataset statistics against the persona's targets (`python -m pipeline data stats`).

`dataset_stats(examples, persona)` returns one plain dict (JSON-ready); `render_stats(d)`
prints it as text tables. Both the CLI's table and its `--json` come from the same dict.

What is measured, and the targets (defaults in `Targets`, all reported when unmet):
  total             examples in the file                        >= 212 (the seed's final count)
  per category      examples per scenarios.yaml category        >= its target_count
  per scenario      examples per scenario of the matrix          >= 5
  unknown           records whose category/scenario is not in the matrix (or disagree)  == 0
  multi-turn share  examples with two or more user turns         >= 15%
  top opener share  the most common opening phrase of assistant turns  <= 10%
                    opening phrase = first 3 words of the turn, lower-cased, punctuation
                    stripped (apostrophes dropped, other marks split words):
                    "Nice work! I've marked..." -> "nice work ive"; "high-priority" -> "high priority"
  length            words per assistant turn (whitespace split): min, p10, median, p90, max,
                    and the share inside 20..120 words          >= 80% ("most replies")
  avoided phrases   hits per phrase on assistant turns, case-insensitive, from persona.yaml
                    vocabulary.avoided + generic_ai_phrases + excessive_punctuation  == 0
  grounded share    examples whose first message is a "Task API context" system message
                    (reported, no target: it depends on the scenario mix)
  review            examples whose review.status is not "approved" (reported)
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Iterable

from ..prompting import CONTEXT_HEADER
from ..spec import Persona
from .records import Example

OPENER_WORDS = 3
_APOSTROPHES = re.compile(r"['\u2019]")
_PUNCT = re.compile(r"[^\w\s]+")


@dataclass(frozen=True)
class Targets:
    min_total: int = 212
    min_per_scenario: int = 5
    min_multi_turn_share: float = 0.15
    max_top_opener_share: float = 0.10
    min_words: int = 20
    max_words: int = 120
    min_in_range_share: float = 0.80
    max_avoided_hits: int = 0


def opener(text: str, n: int = OPENER_WORDS) -> str:
    """The opening phrase: first n words, lower-cased, punctuation stripped."""
    words = _PUNCT.sub(" ", _APOSTROPHES.sub("", text.lower())).split()
    return " ".join(words[:n])


def word_count(text: str) -> int:
    return len(text.split())


def _percentile(sorted_vals: list[int], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    if not sorted_vals:
        return 0.0
    pos = (len(sorted_vals) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return float(sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo))


def avoided_phrases(persona: Persona) -> list[str]:
    v = persona.spec.vocabulary
    return list(dict.fromkeys([*v.avoided, *v.generic_ai_phrases, *v.excessive_punctuation]))


def phrase_pattern(phrase: str) -> re.Pattern:
    """Case-insensitive; word boundaries where the phrase starts/ends with a letter, so
    "As an AI" does not fire on "as an aide" while "!!" still matches inside "!!!"."""
    start = r"\b" if phrase[:1].isalnum() else ""
    end = r"\b" if phrase[-1:].isalnum() else ""
    return re.compile(start + re.escape(phrase) + end, re.IGNORECASE)


def dataset_stats(examples: Iterable[Example], persona: Persona, targets: Targets = Targets()) -> dict:
    examples = list(examples)
    matrix = persona.scenarios
    n = len(examples)
    unmet: list[str] = []

    # ---- coverage ------------------------------------------------------------------
    cat_counts = Counter(e.category for e in examples)
    scen_counts = Counter((e.category, e.scenario) for e in examples)
    categories = {}
    for cat, c in matrix.categories.items():
        count = cat_counts.get(cat, 0)
        categories[cat] = {"count": count, "target": c.target_count, "met": count >= c.target_count}
        if count < c.target_count:
            unmet.append(f"category {cat}: {count} < target {c.target_count}")
    scenarios = []
    for cat, scen in matrix.all_scenarios():
        count = scen_counts.get((cat, scen), 0)
        ok = count >= targets.min_per_scenario
        scenarios.append({"category": cat, "scenario": scen, "count": count, "met": ok})
        if not ok:
            unmet.append(f"scenario {scen!r} ({cat}): {count} < {targets.min_per_scenario}")
    known = set(matrix.all_scenarios())
    unknown = sorted({e.id for e in examples if (e.category, e.scenario) not in known})
    if unknown:
        unmet.append(f"{len(unknown)} example(s) with a category/scenario not in the matrix: {', '.join(unknown[:10])}")
    if n < targets.min_total:
        unmet.append(f"total: {n} < {targets.min_total}")

    # ---- turns, openers, lengths ---------------------------------------------------
    multi = sum(1 for e in examples if len(e.user_turns) >= 2)
    multi_share = multi / n if n else 0.0
    if multi_share < targets.min_multi_turn_share:
        unmet.append(f"multi-turn share: {multi_share:.1%} < {targets.min_multi_turn_share:.0%}")

    turns = [t for e in examples for t in e.assistant_turns]
    openers = Counter(opener(t) for t in turns)
    top = [{"opener": o, "count": c, "share": round(c / len(turns), 4)} for o, c in openers.most_common(10)]
    top_share = top[0]["share"] if top else 0.0
    if top_share > targets.max_top_opener_share:
        unmet.append(f"top opener {top[0]['opener']!r}: {top_share:.1%} of assistant turns > {targets.max_top_opener_share:.0%}")

    lengths = sorted(word_count(t) for t in turns)
    in_range = sum(1 for w in lengths if targets.min_words <= w <= targets.max_words)
    in_range_share = in_range / len(lengths) if lengths else 0.0
    if in_range_share < targets.min_in_range_share:
        unmet.append(f"replies of {targets.min_words}-{targets.max_words} words: {in_range_share:.1%} < {targets.min_in_range_share:.0%}")
    length = {
        "min": lengths[0] if lengths else 0,
        "p10": _percentile(lengths, 10),
        "median": _percentile(lengths, 50),
        "p90": _percentile(lengths, 90),
        "max": lengths[-1] if lengths else 0,
        "in_range": [targets.min_words, targets.max_words],
        "in_range_share": round(in_range_share, 4),
    }

    # ---- vocabulary ----------------------------------------------------------------
    hits = {}
    hit_ids: dict[str, list[str]] = {}
    for phrase in avoided_phrases(persona):
        pat = phrase_pattern(phrase)
        ids = [e.id for e in examples for t in e.assistant_turns if pat.search(t)]
        hits[phrase] = len(ids)
        if ids:
            hit_ids[phrase] = sorted(set(ids))
    total_hits = sum(hits.values())
    if total_hits > targets.max_avoided_hits:
        worst = ", ".join(f"{p!r} x{c} ({', '.join(hit_ids[p][:5])})" for p, c in hits.items() if c)
        unmet.append(f"avoided phrases in assistant turns: {total_hits} hit(s): {worst}")

    grounded = sum(1 for e in examples if (e.context or "").startswith(CONTEXT_HEADER))
    not_approved = sorted(e.id for e in examples if e.review.status != "approved")

    return {
        "total": n,
        "targets": asdict(targets),
        "categories": categories,
        "scenarios": scenarios,
        "unknown_scenario_ids": unknown,
        "multi_turn": {"count": multi, "share": round(multi_share, 4)},
        "assistant_turns": len(turns),
        "openers": {"distinct": len(openers), "top_share": top_share, "top": top},
        "length_words": length,
        "avoided_phrases": {"total": total_hits, "per_phrase": hits, "examples": hit_ids},
        "grounded": {"count": grounded, "share": round(grounded / n, 4) if n else 0.0},
        "sources": dict(Counter(e.source for e in examples)),
        "not_approved": not_approved,
        "targets_met": not unmet,
        "unmet": unmet,
    }


def render_stats(d: dict) -> str:
    """Plain-text tables of a `dataset_stats` result."""
    t = d["targets"]
    out = [f"examples: {d['total']} (target >= {t['min_total']})", "", "category                 count  target  ok"]
    for cat, c in d["categories"].items():
        out.append(f"{cat:<24} {c['count']:>5}  {c['target']:>6}  {'yes' if c['met'] else 'NO'}")
    out += ["", f"scenario (each >= {t['min_per_scenario']})                       count  ok"]
    for s in d["scenarios"]:
        label = f"{s['category']}/{s['scenario']}"
        out.append(f"{label[:52]:<52} {s['count']:>5}  {'yes' if s['met'] else 'NO'}")
    mt, op, ln = d["multi_turn"], d["openers"], d["length_words"]
    out += [
        "",
        f"multi-turn: {mt['count']} ({mt['share']:.1%}, target >= {t['min_multi_turn_share']:.0%})",
        f"grounded (Task API context): {d['grounded']['count']} ({d['grounded']['share']:.1%})",
        f"assistant turns: {d['assistant_turns']}; distinct openers (first {OPENER_WORDS} words): {op['distinct']}",
        f"top openers (max share {t['max_top_opener_share']:.0%}):",
    ]
    for o in op["top"][:8]:
        out.append(f"  {o['share']:6.1%}  {o['count']:>3}  {o['opener']}")
    out += [
        f"reply length (words): min {ln['min']}, p10 {ln['p10']:.0f}, median {ln['median']:.0f}, "
        f"p90 {ln['p90']:.0f}, max {ln['max']}; in {ln['in_range'][0]}-{ln['in_range'][1]}: "
        f"{ln['in_range_share']:.1%} (target >= {t['min_in_range_share']:.0%})",
        f"avoided-phrase hits: {d['avoided_phrases']['total']}",
    ]
    for p, c in d["avoided_phrases"]["per_phrase"].items():
        if c:
            out.append(f"  {c:>3}  {p!r}: {', '.join(d['avoided_phrases']['examples'][p][:8])}")
    if d["not_approved"]:
        out.append(f"not approved: {len(d['not_approved'])}")
    if d["unknown_scenario_ids"]:
        out.append(f"unknown category/scenario: {', '.join(d['unknown_scenario_ids'][:10])}")
    out.append("")
    if d["targets_met"]:
        out.append("targets met: yes")
    else:
        out.append("targets met: NO")
        out += [f"  - {u}" for u in d["unmet"]]
    return "\n".join(out)
