"""Measure a judge on labelled cases (`judge_calibration.jsonl`).

Each case: {"id", "user", "response", "violations": [types], "good": bool, "traits"?: {...}}.

Reported (`calibrate(judge, cases, spec) -> dict`):
  violations.overall   micro precision / recall / F1 over (case, type) pairs: a case labelled
                       with two types counts twice; a predicted type not in the labels is a
                       false positive even when the case has another violation.
  violations.per_type  the same, per violation type.
  detection            case-level: "has any violation" vs "labelled with any" (accuracy, P/R/F1).
  filter               accuracy of "passes the quality filter" (score >= min_score and no
                       violation, the seed's filter_quality_examples) against `good`.
  traits               when cases carry trait labels: exact agreement and mean absolute error.
  failures             cases the judge could not score (counted wrong for the filter).
  mistakes             every disagreement, to read.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import UserError
from ..jsonl import read_jsonl
from ..spec import PersonaSpec
from .base import JudgeItem, Verdict

FILTER_MIN_SCORE = 6  # the seed's filter_quality_examples(min_score=6)


def load_cases(path: str | Path, spec: PersonaSpec) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"calibration cases not found: {path}; pass --cases FILE.jsonl")
    try:
        rows = read_jsonl(path)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    problems, known = [], set(spec.violation_types)
    for i, r in enumerate(rows, 1):
        where = f"{path}: line {i} ({r.get('id', '?')})"
        for key in ("id", "user", "response", "violations", "good"):
            if key not in r:
                problems.append(f"{where}: missing field {key!r}")
        bad = [v for v in r.get("violations", []) if v not in known]
        if bad:
            problems.append(f"{where}: unknown violation type(s) {bad}; the persona's types are {sorted(known)}")
        if not isinstance(r.get("good", False), bool):
            problems.append(f"{where}: `good` must be true or false")
    if not rows:
        problems.append(f"{path}: no cases")
    if problems:
        raise UserError("calibration cases:\n  " + "\n  ".join(problems))
    return rows


def _prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4), "tp": tp, "fp": fp, "fn": fn}


def score_cases(cases: list[dict], verdicts: list[Verdict], types: list[str],
                min_score: float = FILTER_MIN_SCORE) -> dict:
    per = {t: [0, 0, 0] for t in types}  # tp, fp, fn
    det = [0, 0, 0, 0]  # tp, fp, fn, tn (case-level "any violation")
    filt_ok = 0
    trait_n = trait_exact = 0
    trait_abs = 0.0
    failures, mistakes = [], []
    for case, v in zip(cases, verdicts):
        gold = set(case.get("violations", []))
        pred = {x.type for x in v.violations} if v.ok else set()
        for t in types:
            if t in pred and t in gold:
                per[t][0] += 1
            elif t in pred:
                per[t][1] += 1
            elif t in gold:
                per[t][2] += 1
        if v.ok:
            g, p = bool(gold), bool(pred)
            det[0 if g and p else 1 if p else 2 if g else 3] += 1
        else:
            failures.append({"id": case["id"], "error": v.error})
        passes = v.passes(min_score)
        if v.ok and passes == case["good"]:
            filt_ok += 1
        for tid, lab in (case.get("traits") or {}).items():
            if v.ok and tid in v.traits:
                trait_n += 1
                trait_exact += int(v.traits[tid] == lab)
                trait_abs += abs(v.traits[tid] - lab)
        if not v.ok or pred != gold or passes != case["good"]:
            mistakes.append({"id": case["id"], "gold": sorted(gold), "pred": sorted(pred), "good": case["good"],
                             "passes": passes, "overall": v.overall,
                             "quotes": {x.type: x.quote for x in v.violations}, "response": case.get("response")})
    tp = sum(x[0] for x in per.values())
    fp = sum(x[1] for x in per.values())
    fn = sum(x[2] for x in per.values())
    n = len(cases)
    return {
        "n": n,
        "violations": {"overall": _prf(tp, fp, fn), "per_type": {t: _prf(*per[t]) for t in types}},
        "detection": {**_prf(det[0], det[1], det[2]), "accuracy": round((det[0] + det[3]) / n, 4) if n else 0.0},
        "filter": {"accuracy": round(filt_ok / n, 4) if n else 0.0, "min_score": min_score,
                   "correct": filt_ok, "n": n},
        "traits": ({"n": trait_n, "exact_agreement": round(trait_exact / trait_n, 4),
                    "mean_abs_error": round(trait_abs / trait_n, 4)} if trait_n else None),
        "failures": failures,
        "mistakes": mistakes,
    }


def calibrate(judge, cases: list[dict], spec: PersonaSpec, min_score: float = FILTER_MIN_SCORE) -> dict:
    items = [JudgeItem(id=c["id"], messages=[{"role": "user", "content": c["user"]}], response=c["response"])
             for c in cases]
    t0 = time.perf_counter()
    verdicts = judge.judge_batch(items)
    elapsed = time.perf_counter() - t0
    if len(verdicts) != len(items):
        raise RuntimeError(f"judge {judge.name} returned {len(verdicts)} verdicts for {len(items)} items")
    out = score_cases(cases, verdicts, spec.violation_types, min_score)
    out["judge"] = {"kind": getattr(judge, "kind", judge.name.split(":")[0]), "name": judge.name,
                    "model": getattr(judge, "model", None), "prompt_version": getattr(judge, "prompt_version", None)}
    out["seconds"] = round(elapsed, 3)
    out["seconds_per_case"] = round(elapsed / max(1, len(items)), 5)
    return out


def render(report: dict) -> str:
    v, f = report["violations"], report["filter"]
    lines = [f"judge {report['judge']['name']} on {report['n']} cases ({report['seconds']}s, "
             f"{report['seconds_per_case'] * 1000:.2f} ms/case)",
             f"violation detection  P {v['overall']['precision']:.3f}  R {v['overall']['recall']:.3f}  "
             f"F1 {v['overall']['f1']:.3f}  (tp {v['overall']['tp']}, fp {v['overall']['fp']}, fn {v['overall']['fn']})"]
    for t, m in v["per_type"].items():
        lines.append(f"  {t:<22} P {m['precision']:.3f}  R {m['recall']:.3f}  F1 {m['f1']:.3f}  "
                     f"(tp {m['tp']}, fp {m['fp']}, fn {m['fn']})")
    d = report["detection"]
    lines.append(f"any-violation (case level)  accuracy {d['accuracy']:.3f}  F1 {d['f1']:.3f}")
    lines.append(f"filter (score >= {f['min_score']:g} and no violation) vs good: accuracy {f['accuracy']:.3f} "
                 f"({f['correct']}/{f['n']})")
    if report.get("traits"):
        t = report["traits"]
        lines.append(f"trait labels: exact agreement {t['exact_agreement']:.3f}, mean abs error {t['mean_abs_error']:.3f} "
                     f"over {t['n']} scores")
    if report["failures"]:
        lines.append(f"judge failures: {len(report['failures'])} (counted wrong for the filter)")
    return "\n".join(lines)
