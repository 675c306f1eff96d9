"""What the votes say: adapter-vs-base win rate with a Wilson 95% interval, ties and both-bad,
voters, per-category rates, Bradley-Terry ratings with bootstrap intervals, and agreement
between human votes and the LLM judge on the same prompts.

Win rate = (wins + ties / 2) / votes, with "both bad" counted as a tie (neither preferred, as
FastChat's arena does): the same definition as the evaluation stage's judge A/B
(`pipeline.evaluation.metrics.ab_summary`), so the human and the judge rates can be put side by
side and held to the same seed gate (">= 70% vs base"). The decisive-only rate,
wins / (wins + losses), is reported beside it. The Wilson interval (the evaluation stage's own
`wilson`, not a second copy) stays inside [0, 1] and is honest with the 20-100 votes a
stakeholder round produces.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from statistics import median

BASE_ID = "base"
Z95 = 1.959964


# One rule for every number the Arena shows (win rates and Bradley-Terry alike), stated beside them.
RULE = ("A tie and \"both bad\" each count as half a win for each side, in the win rates and in the "
        "Bradley-Terry ratings alike.")


def rate_with_interval(k: float, n: int, z: float = Z95) -> tuple[float | None, float | None, float | None]:
    """(rate, low, high) of k successes (ties may count 0.5) in n trials; all None when n == 0."""
    from ..evaluation.stats import wilson  # one Wilson for the whole studio

    if n <= 0:
        return None, None, None
    lo, hi = wilson(k, n, z)
    return k / n, lo, hi


def _tally(votes: list[dict], model: str, other: str) -> dict:
    """wins/losses/ties/both_bad of `model` against `other` over the given votes."""
    c = Counter()
    for v in votes:
        pair = {v["model_left"], v["model_right"]}
        if pair != {model, other}:
            continue
        if v["vote"] in ("tie", "both_bad"):
            c[v["vote"]] += 1
        elif v["winner"] == model:
            c["wins"] += 1
        else:
            c["losses"] += 1
    decisive = c["wins"] + c["losses"]
    n = decisive + c["tie"] + c["both_bad"]
    rate, lo, hi = rate_with_interval(c["wins"] + 0.5 * (c["tie"] + c["both_bad"]), n)
    return {"model": model, "opponent": other, "votes": n,
            "wins": c["wins"], "losses": c["losses"], "ties": c["tie"], "both_bad": c["both_bad"],
            "win_rate": rate, "ci_low": lo, "ci_high": hi,
            "decisive_win_rate": (c["wins"] / decisive) if decisive else None}


def vs_base(votes: list[dict], base: str = BASE_ID) -> list[dict]:
    """One row per adapter that met the base: its win rate against the base."""
    others = sorted({m for v in votes for m in (v["model_left"], v["model_right"])} - {base})
    rows = [_tally(votes, m, base) for m in others]
    return [r for r in rows if r["votes"]]


def per_category(votes: list[dict], base: str = BASE_ID) -> list[dict]:
    """Adapter-vs-base rates per eval-set category (battles whose prompt came from the eval set)."""
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for v in votes:
        if v.get("category"):
            by_cat[v["category"]].append(v)
    rows = []
    for cat in sorted(by_cat):
        for r in vs_base(by_cat[cat], base):
            rows.append({"category": cat, **r})
    return rows


def voters(votes: list[dict]) -> dict:
    per = Counter(v["voter_id"] for v in votes)
    counts = sorted(per.values())
    addresses = {v.get("address_id") for v in votes if v.get("address_id")}
    return {"voters": len(per), "votes": len(votes), "addresses": len(addresses),
            "votes_without_address": sum(1 for v in votes if not v.get("address_id")),
            "votes_per_voter_mean": (len(votes) / len(per)) if per else None,
            "votes_per_voter_median": median(counts) if counts else None,
            "votes_per_voter_max": counts[-1] if counts else None}


def voters_line(v: dict) -> str:
    """'12 votes from 5 voters from 3 distinct addresses': how concentrated the ballot is."""
    line = (f"{v['votes']} vote{'s' if v['votes'] != 1 else ''} from {v['voters']} "
            f"voter{'s' if v['voters'] != 1 else ''} from {v.get('addresses', 0)} distinct address"
            f"{'es' if v.get('addresses', 0) != 1 else ''}")
    if v.get("votes_without_address"):
        line += f" ({v['votes_without_address']} older votes without an address)"
    return line


def outcome_counts(votes: list[dict]) -> dict:
    c = Counter(v["vote"] for v in votes)
    return {k: c.get(k, 0) for k in ("left", "right", "tie", "both_bad")}


# ---- Bradley-Terry ----------------------------------------------------------------------------

def _bt_strengths(models: list[str], games: list[tuple[str, str, float]], iters: int = 200) -> dict[str, float]:
    """Maximum-likelihood Bradley-Terry strengths by the MM algorithm (Hunter 2004).

    games: (a, b, score of a) with score 1, 0 or 0.5 (a tie counts half a win each way).
    A tiny prior (one virtual tie of each model against a mean-strength opponent) keeps a
    model that never lost finite."""
    p = {m: 1.0 for m in models}
    wins = Counter()
    pairs: Counter = Counter()
    for a, b, s in games:
        wins[a] += s
        wins[b] += 1 - s
        pairs[frozenset((a, b))] += 1
    for _ in range(iters):
        new = {}
        for m in models:
            denom = 1.0 / (p[m] + 1.0)  # the prior's virtual game against strength 1
            for pair, n in pairs.items():
                if m in pair and len(pair) == 2:
                    (o,) = pair - {m}
                    denom += n / (p[m] + p[o])
            new[m] = (wins[m] + 0.5) / denom
        # normalise (geometric mean 1) so the scale does not drift
        g = math.exp(sum(math.log(x) for x in new.values()) / len(new))
        p = {m: x / g for m, x in new.items()}
    return p


def _games(votes: list[dict]) -> list[tuple[str, str, float]]:
    games = []
    for v in votes:
        a, b = v["model_left"], v["model_right"]
        if v["vote"] == "left":
            games.append((a, b, 1.0))
        elif v["vote"] == "right":
            games.append((a, b, 0.0))
        elif v["vote"] in ("tie", "both_bad"):
            # The same rule as the win rate (RULE): a tie and "both bad" are half a win each.
            games.append((a, b, 0.5))
    return games


def bradley_terry(votes: list[dict], *, anchor: str = BASE_ID, rounds: int = 200, seed: int = 0) -> list[dict]:
    """Elo-scale ratings (400 * log10 strength, `anchor` at 1000) with 95% bootstrap intervals
    (votes resampled with replacement `rounds` times; 2.5th and 97.5th percentiles)."""
    games = _games(votes)
    models = sorted({m for g in games for m in g[:2]})
    if len(models) < 2:
        return []

    def ratings(gs):
        s = _bt_strengths(models, gs)
        ref = s.get(anchor, 1.0)
        return {m: 1000 + 400 * math.log10(s[m] / ref) for m in models}

    point = ratings(games)
    rng = random.Random(seed)
    samples: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        r = ratings([games[rng.randrange(len(games))] for _ in games])
        for m in models:
            samples[m].append(r[m])
    out = []
    for m in models:
        xs = sorted(samples[m])
        lo = xs[int(0.025 * (len(xs) - 1))]
        hi = xs[int(math.ceil(0.975 * (len(xs) - 1)))]
        out.append({"model": m, "rating": point[m], "ci_low": lo, "ci_high": hi,
                    "games": sum(1 for g in games if m in g[:2])})
    return sorted(out, key=lambda r: -r["rating"])


# ---- human vs judge ---------------------------------------------------------------------------

def human_judge_agreement(votes: list[dict], judge: list[dict]) -> dict:
    """How often the human's preferred model equals the judge's on the same prompt and pair.

    judge: records {prompt_id, model_a, model_b, winner} (winner: a model id, "tie" or None),
    e.g. a pairwise judge's verdicts from the evaluation stage. Only battles whose first prompt
    came from the eval set can be matched. Counted on pairs where both were decisive."""
    index: dict[tuple, list[str]] = defaultdict(list)
    for j in judge:
        if j.get("prompt_id") and j.get("model_a") and j.get("model_b"):
            index[(j["prompt_id"], frozenset((j["model_a"], j["model_b"])))].append(j.get("winner") or "tie")
    matched = agree = decisive = 0
    for v in votes:
        key = (v.get("prompt_id"), frozenset((v["model_left"], v["model_right"])))
        if not v.get("prompt_id") or key not in index:
            continue
        for jw in index[key]:
            matched += 1
            if v["winner"] and jw not in ("tie", None):
                decisive += 1
                agree += int(jw == v["winner"])
    rate, lo, hi = rate_with_interval(agree, decisive)
    return {"matched": matched, "decisive_both": decisive, "agree": agree, "agreement": rate,
            "ci_low": lo, "ci_high": hi}


def judge_verdicts(runs_dir, base: str = BASE_ID) -> list[dict]:
    """The evaluation stage's pairwise judge verdicts (each run's results `ab.pairs`: "a" is the
    run's adapter, "b" the base) in the form human_judge_agreement takes."""
    from ..errors import UserError
    from ..runs import list_runs

    out = []
    for run in sorted(list_runs(runs_dir, where=lambda r: r.has_results()), key=lambda r: r.id):
        try:
            pairs = run.results().ab.model_dump().get("pairs") or []
        except (UserError, ValueError):  # unreadable or another schema: no verdicts from it
            continue
        for p in pairs:
            if p.get("ok", True) and p.get("winner") in ("a", "b", "tie"):
                winner = {"a": run.id, "b": base, "tie": "tie"}[p["winner"]]
                out.append({"prompt_id": p.get("id"), "model_a": run.id, "model_b": base, "winner": winner})
    return out


def summarize(votes: list[dict], judge: list[dict] | None = None, base: str = BASE_ID) -> dict:
    """Everything the results view and `python -m pipeline arena results` show."""
    models = sorted({m for v in votes for m in (v["model_left"], v["model_right"])})
    out = {"votes": len(votes), "outcomes": outcome_counts(votes), "voters": voters(votes),
           "vs_base": vs_base(votes, base), "per_category": per_category(votes, base),
           "models": models}
    out["bradley_terry"] = bradley_terry(votes, anchor=base) if len(models) > 2 else []
    out["judge_agreement"] = human_judge_agreement(votes, judge) if judge else None
    return out
