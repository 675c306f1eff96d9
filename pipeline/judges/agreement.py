"""Agreement of a judge with people, on labelled replies (the judge benchmark, or any file like it).

A labelled reply: {"id", "messages", "response", "overall": 1-10, "prompt_id"?, "coherence"? 0-2,
"violations": [types], "invented_task_data"? bool}. `prompt_id` groups replies to the same
request for pairwise accuracy (default: the last user turn).

Reported by `agreement(labelled, verdicts, types)`:
  spearman, kendall     rank correlation of the judge's 0-10 overall with the 1-10 labels
                        (average ranks for ties; Kendall tau-b)
  pairwise              for every pair of replies to the same prompt whose labels differ by
                        at least PAIR_MIN_GAP: does the judge rank them the same way (a tie of
                        the judge counts half)
  mae_linear            mean absolute error after the least-squares line label ~ a*judge + b
  violations            micro and per-type precision / recall / F1 over (reply, type) pairs
  invented              precision / recall of "invented task data"
  incoherent_mean       the judge's mean overall on replies labelled coherence 0
  top_mean              the judge's mean overall on replies labelled 9-10
Pure Python: the figures in tests are checked by hand.
"""

from __future__ import annotations

import math
import time
from itertools import combinations

from ..prompting import last_user_text
from .calibrate import _prf

PAIR_MIN_GAP = 1.0  # label points: closer pairs are ties to a reader, not preferences


def ranks(xs: list[float]) -> list[float]:
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def pearson(x: list[float], y: list[float]) -> float:
    n = len(x)
    if n < 2:
        return 0.0
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else 0.0


def spearman(x: list[float], y: list[float]) -> float:
    return pearson(ranks(x), ranks(y))


def kendall(x: list[float], y: list[float]) -> float:
    """Kendall tau-b."""
    c = d = tx = ty = 0
    for i, j in combinations(range(len(x)), 2):
        dx, dy = x[i] - x[j], y[i] - y[j]
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            tx += 1
        elif dy == 0:
            ty += 1
        elif (dx > 0) == (dy > 0):
            c += 1
        else:
            d += 1
    denom = math.sqrt((c + d + tx) * (c + d + ty))
    return (c - d) / denom if denom else 0.0


def linear_fit_mae(pred: list[float], gold: list[float]) -> tuple[float, float, float]:
    """(mae, a, b) for gold ~ a * pred + b by least squares."""
    n = len(pred)
    mp, mg = sum(pred) / n, sum(gold) / n
    spp = sum((p - mp) ** 2 for p in pred)
    a = sum((p - mp) * (g - mg) for p, g in zip(pred, gold)) / spp if spp else 0.0
    b = mg - a * mp
    return sum(abs(a * p + b - g) for p, g in zip(pred, gold)) / n, a, b


def pairwise_accuracy(groups: list[str], pred: list[float], gold: list[float], min_gap: float = PAIR_MIN_GAP) -> tuple[float, int]:
    right = 0.0
    n = 0
    for i, j in combinations(range(len(pred)), 2):
        if groups[i] != groups[j] or abs(gold[i] - gold[j]) < min_gap:
            continue
        n += 1
        if pred[i] == pred[j]:
            right += 0.5
        elif (pred[i] > pred[j]) == (gold[i] > gold[j]):
            right += 1
    return (right / n if n else 0.0), n


def agreement(labelled: list[dict], verdicts: list, types: list[str]) -> dict:
    rows = [(r, v) for r, v in zip(labelled, verdicts) if v.ok]
    failures = len(labelled) - len(rows)
    pred = [float(v.overall) for _, v in rows]
    gold = [float(r["overall"]) for r, _ in rows]
    groups = [r.get("prompt_id") or last_user_text(r["messages"]) for r, _ in rows]
    mae, a, b = linear_fit_mae(pred, gold) if rows else (0.0, 0.0, 0.0)
    pacc, npairs = pairwise_accuracy(groups, pred, gold)
    per = {t: [0, 0, 0] for t in types}
    for r, v in rows:
        g = set(r.get("violations") or [])
        p = {x.type for x in v.violations}
        for t in types:
            per[t][0 if t in g and t in p else 1 if t in p else 2 if t in g else 0] += int(t in g or t in p)
    tp, fp, fn = (sum(x[k] for x in per.values()) for k in range(3))
    inv = [0, 0, 0]
    inv_n = 0
    for r, v in rows:
        if "invented_task_data" not in r:
            continue
        inv_n += 1
        g, p = bool(r["invented_task_data"]), bool(v.extra.get("invented_task_data"))
        if g and p:
            inv[0] += 1
        elif p:
            inv[1] += 1
        elif g:
            inv[2] += 1
    incoh = [float(v.overall) for r, v in rows if r.get("coherence") is not None and float(r["coherence"]) <= 0.5]
    top = [float(v.overall) for r, v in rows if float(r["overall"]) >= 9]
    return {
        "n": len(labelled), "failures": failures,
        "spearman": round(spearman(pred, gold), 4), "kendall": round(kendall(pred, gold), 4),
        "pairwise": {"accuracy": round(pacc, 4), "pairs": npairs, "min_gap": PAIR_MIN_GAP},
        "mae_linear": {"mae": round(mae, 4), "a": round(a, 4), "b": round(b, 4)},
        "violations": {"overall": _prf(tp, fp, fn), "per_type": {t: _prf(*per[t]) for t in types}},
        "invented": {**_prf(*inv), "n": inv_n},
        "incoherent_mean": {"mean": round(sum(incoh) / len(incoh), 3) if incoh else None, "n": len(incoh)},
        "top_mean": {"mean": round(sum(top) / len(top), 3) if top else None, "n": len(top)},
    }


def render(rep: dict) -> str:
    v = rep["violations"]
    # cross-validated reports (judge fit --cv) time nothing: no ms/reply rather than a made-up 0.0
    timing = f"; {rep['seconds_per_case'] * 1000:.1f} ms/reply" if rep.get("seconds_per_case") is not None else ""
    lines = [f"judge {rep['judge']['name']} on {rep['n']} labelled replies ({rep.get('split') or 'all'}{timing})",
             f"  Spearman {rep['spearman']:.3f}   Kendall {rep['kendall']:.3f}   pairwise accuracy "
             f"{rep['pairwise']['accuracy']:.3f} ({rep['pairwise']['pairs']} same-prompt pairs)   "
             f"MAE after linear fit {rep['mae_linear']['mae']:.3f}",
             f"  violations  P {v['overall']['precision']:.3f}  R {v['overall']['recall']:.3f}  F1 {v['overall']['f1']:.3f}"]
    for t, m in v["per_type"].items():
        lines.append(f"    {t:<22} P {m['precision']:.3f}  R {m['recall']:.3f}  F1 {m['f1']:.3f}  "
                     f"(tp {m['tp']}, fp {m['fp']}, fn {m['fn']})")
    i = rep["invented"]
    lines.append(f"  invented task data  P {i['precision']:.3f}  R {i['recall']:.3f}  (tp {i['tp']}, fp {i['fp']}, fn {i['fn']})")
    ic, tp = rep["incoherent_mean"], rep["top_mean"]
    lines.append(f"  mean overall: coherence-0 replies {ic['mean']} (n {ic['n']}); replies labelled 9-10 {tp['mean']} (n {tp['n']})")
    if rep["failures"]:
        lines.append(f"  judge failures: {rep['failures']}")
    return "\n".join(lines)


def measure(judge, rows: list[dict], spec) -> dict:
    """Run `judge` over labelled replies and report its agreement (plus timing and mistakes)."""
    from .base import JudgeItem

    items = [JudgeItem(r["id"], r["messages"], r["response"]) for r in rows]
    t0 = time.perf_counter()
    verdicts = judge.judge_batch(items)
    elapsed = time.perf_counter() - t0
    rep = agreement(rows, verdicts, spec.violation_types)
    rep["judge"] = {"kind": getattr(judge, "kind", judge.name.split(":")[0]), "name": judge.name,
                    "model": getattr(judge, "model", None), "prompt_version": getattr(judge, "prompt_version", None)}
    rep["seconds"] = round(elapsed, 3)
    rep["seconds_per_case"] = round(elapsed / max(1, len(items)), 5)
    mistakes = []
    for r, v in zip(rows, verdicts):
        g = {"overall": r["overall"], "violations": sorted(r.get("violations") or []),
             "invented": r.get("invented_task_data")}
        p = {"overall": v.overall, "violations": sorted(x.type for x in v.violations) if v.ok else None,
             "invented": v.extra.get("invented_task_data") if v.ok else None}
        if not v.ok or g["violations"] != p["violations"] or abs(float(r["overall"]) - float(v.overall or 0)) >= 3 \
                or (g["invented"] is not None and bool(g["invented"]) != bool(p["invented"])):
            mistakes.append({"id": r["id"], "gold": g, "pred": p, "response": r["response"],
                             "reasons": v.reasons if v.ok else v.error})
    rep["mistakes"] = mistakes
    return rep


def cohen_kappa(a: list, b: list) -> float:
    """Cohen's kappa of two labellings of the same items (any hashable labels)."""
    n = len(a)
    if n == 0:
        return 0.0
    cats = sorted(set(a) | set(b), key=str)
    po = sum(1 for x, y in zip(a, b) if x == y) / n
    pe = sum((a.count(c) / n) * (b.count(c) / n) for c in cats)
    return (po - pe) / (1 - pe) if pe < 1 else 1.0


def interlabeller(a: dict[str, dict], b: dict[str, dict], types: list[str]) -> dict:
    """Agreement of two labellings (id -> label) on the ids both labelled."""
    ids = sorted(set(a) & set(b))
    oa = [float(a[i]["overall"]) for i in ids]
    ob = [float(b[i]["overall"]) for i in ids]
    out = {"n": len(ids), "only_a": len(set(a) - set(b)), "only_b": len(set(b) - set(a)),
           "overall": {"spearman": round(spearman(oa, ob), 4), "kendall": round(kendall(oa, ob), 4),
                       "mean_abs_diff": round(sum(abs(x - y) for x, y in zip(oa, ob)) / max(1, len(ids)), 3),
                       "within_1": round(sum(abs(x - y) <= 1 for x, y in zip(oa, ob)) / max(1, len(ids)), 3)},
           "coherence_kappa": round(cohen_kappa([int(a[i]["coherence"]) for i in ids],
                                                [int(b[i]["coherence"]) for i in ids]), 4),
           "any_violation_kappa": round(cohen_kappa([bool(a[i].get("violations")) for i in ids],
                                                    [bool(b[i].get("violations")) for i in ids]), 4),
           "violation_kappa": {}, "invented_kappa": round(cohen_kappa(
               [bool(a[i].get("invented_task_data")) for i in ids], [bool(b[i].get("invented_task_data")) for i in ids]), 4)}
    for t in types:
        xa = [t in (a[i].get("violations") or []) for i in ids]
        xb = [t in (b[i].get("violations") or []) for i in ids]
        out["violation_kappa"][t] = {"kappa": round(cohen_kappa(xa, xb), 4), "a": sum(xa), "b": sum(xb)}
    return out


def measure_pairwise(pairwise, rows: list[dict], max_pairs: int | None = None, min_gap: float = PAIR_MIN_GAP) -> dict:
    """A pairwise judge on same-prompt pairs whose labels differ by >= min_gap: accuracy against
    the people's preference, and ORDER CONSISTENCY (both presentation orders agree), the figure
    that exposes an LLM judge's position bias."""
    from .pairwise import PairItem

    pairs = []
    for i, j in combinations(range(len(rows)), 2):
        a, b = rows[i], rows[j]
        ga, gb = a.get("prompt_id") or last_user_text(a["messages"]), b.get("prompt_id") or last_user_text(b["messages"])
        if ga == gb and abs(float(a["overall"]) - float(b["overall"])) >= min_gap:
            pairs.append((a, b))
    if max_pairs is not None:
        pairs = pairs[:max_pairs]
    items = [PairItem(f"{a['id']}|{b['id']}", a["messages"], a["response"], b["response"]) for a, b in pairs]
    verdicts = pairwise.judge_pairs(items) if items else []
    ok = [(p, v) for p, v in zip(pairs, verdicts) if v.ok]
    right = sum(1.0 if v.winner == ("a" if float(a["overall"]) > float(b["overall"]) else "b")
                else 0.5 if v.winner == "tie" else 0.0 for (a, b), v in ok)
    return {"judge": pairwise.name, "pairs": len(items), "failures": len(items) - len(ok),
            "accuracy": round(right / len(ok), 4) if ok else None,
            "order_consistency": round(sum(v.consistent for _, v in ok) / len(ok), 4) if ok else None}


def summary(rep: dict, split: str | None, command: str) -> dict:
    """The short record a verdict carries (the evaluation results' judge.agreement, the model card)."""
    return {"judge": rep["judge"]["name"], "split": split or "all", "n": rep["n"], "spearman": rep["spearman"],
            "kendall": rep["kendall"], "pairwise_accuracy": rep["pairwise"]["accuracy"],
            "mae_linear": rep["mae_linear"]["mae"], "violation_f1": rep["violations"]["overall"]["f1"],
            "violation_per_type": {t: {k: m[k] for k in ("precision", "recall", "f1")}
                                   for t, m in rep["violations"]["per_type"].items()},
            "invented_precision": rep["invented"]["precision"], "invented_recall": rep["invented"]["recall"],
            "incoherent_mean": rep["incoherent_mean"]["mean"], "top_mean": rep["top_mean"]["mean"],
            "benchmark": "data/personas/taskmaster/judge_bench (labels.jsonl, split.json)", "command": command}
