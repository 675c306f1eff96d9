"""Compare two evaluated runs: per-trait, overall and per-gate differences, with intervals.

Only results measured the same way are compared: the same eval set (sha256), the same judge
and the same sampling (`results.comparability`); anything else is refused with what differs,
because a difference in numbers would then mostly measure the change of ruler.

Intervals: both runs answered the same prompts, so each trait's difference is paired by prompt
id: delta = mean over prompts of (B - A), 95% normal interval of that mean (stats.mean_ci).
Prompts either judge failed on are left out of the pairing (n says how many remain).

    cmp = compare_runs("runs/a", "runs/b")   # raises UserError when not comparable
    cmp.traits / cmp.gates / cmp.markdown()
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..jsonl import read_jsonl
from .results import comparability, load_results
from .stats import mean_ci

ADAPTER_REPLIES = "responses_adapter.jsonl"


@dataclass
class Comparison:
    run_a: str
    run_b: str
    judge: str
    eval_set_n: int
    traits: list[dict] = field(default_factory=list)   # {trait, a, b, delta, ci_low, ci_high, n}
    gates: list[dict] = field(default_factory=list)    # {gate, a, b, delta, a_result, b_result}

    def markdown(self) -> str:
        a, b = Path(self.run_a).name, Path(self.run_b).name
        lines = [f"**{b}** compared with **{a}** (B - A), same eval set ({self.eval_set_n} prompts) and judge "
                 f"`{self.judge}`. Trait and overall differences are paired by prompt, with a 95% interval; "
                 f"an interval that contains 0 is no evidence of a change."]
        moved = [t for t in self.traits if t["ci_low"] is not None and (t["ci_low"] > 0 or t["ci_high"] < 0)]
        if moved:
            lines.append("Clear changes: " + ", ".join(f"{t['trait']} {t['delta']:+.2f}" for t in moved) + ".")
        flipped = [g for g in self.gates if g["a_result"] != g["b_result"]]
        if flipped:
            lines.append("Gates that changed: " + ", ".join(f"{g['gate']} {g['a_result']} → {g['b_result']}"
                                                           for g in flipped) + ".")
        return "  \n".join(lines)


def _scores(eval_dir: Path) -> dict[str, dict]:
    path = eval_dir / ADAPTER_REPLIES
    if not path.is_file():
        raise UserError(f"{path} is missing: re-run the evaluation of {eval_dir.parent.name}")
    out = {}
    for r in read_jsonl(path):
        v = r.get("verdict") or {}
        if v.get("ok"):
            out[r["id"]] = {**(v.get("traits") or {}), "overall": v.get("overall")}
    return out


def _paired(a: dict[str, dict], b: dict[str, dict], key: str) -> dict:
    diffs = [b[i][key] - a[i][key] for i in sorted(set(a) & set(b))
             if a[i].get(key) is not None and b[i].get(key) is not None]
    lo, hi = mean_ci(diffs)
    mean = lambda src: (round(statistics.fmean(src[i][key] for i in src if src[i].get(key) is not None), 3)  # noqa: E731
                        if any(src[i].get(key) is not None for i in src) else None)
    return {"a": mean(a), "b": mean(b), "delta": round(statistics.fmean(diffs), 3) if diffs else None,
            "ci_low": None if lo is None else round(lo, 3), "ci_high": None if hi is None else round(hi, 3),
            "n": len(diffs)}


def _number(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def compare_runs(run_a: str | Path, run_b: str | Path) -> Comparison:
    if not run_a or not run_b:
        raise UserError("choose two evaluated runs to compare")
    if Path(run_a).resolve() == Path(run_b).resolve():
        raise UserError("choose two different runs to compare")
    ra, rb = (load_results(Path(r) / "eval") for r in (run_a, run_b))
    problems = comparability(ra.model_dump(), rb.model_dump())
    if problems:
        raise UserError(f"{Path(run_a).name} and {Path(run_b).name} were not evaluated the same way: "
                        + "; ".join(problems) + ". Re-evaluate both with the same eval set, judge and sampling.")
    sa, sb = _scores(Path(run_a) / "eval"), _scores(Path(run_b) / "eval")
    trait_ids = list(ra.metrics["adapter"].get("trait_means") or {})
    cmp = Comparison(str(run_a), str(run_b), ra.judge.name, ra.eval_set.n)
    cmp.traits = [{"trait": t, **_paired(sa, sb, t)} for t in [*trait_ids, "overall"]]
    gates_b = {g.name: g for g in rb.gates}
    for g in ra.gates:
        other = gates_b.get(g.name)
        if other is None:
            continue
        va, vb = _number(g.value), _number(other.value)
        cmp.gates.append({"gate": g.name, "a": g.value, "b": other.value,
                          "delta": round(vb - va, 4) if va is not None and vb is not None else None,
                          "a_result": "PASS" if g.passed else "FAIL", "b_result": "PASS" if other.passed else "FAIL"})
    return cmp
