"""`balance`: the seed's `fill_gaps(filtered, target_per_scenario=10)`.

Count the examples per scenario after filtering; for each scenario under its target,
generate more (the deficit times `overgenerate`, since some will be filtered out), judge
them, drop near-duplicates and eval leaks, and add the survivors; repeat for up to
`max_rounds` rounds or until the generator's budget (max_requests / max_cost_usd) runs
out. The report says, per scenario, how many there are, the target and what is still
short, and why the loop stopped. Without an endpoint (the offline path) it only reports.

Targets: `target_per_scenario` when given (the seed used 10); otherwise each category's
`target_count` from scenarios.yaml spread over its scenarios, rounded up
(task_creation: 30 over 7 scenarios -> 5 each).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from ..errors import UserError
from ..llm_client import LLMClient
from ..spec import Persona
from .dedupe import DedupeConfig, dedupe
from .filter import DEFAULT_MIN_SCORE, filter_examples
from .generate import GenerateConfig, Slot, agenerate
from .records import Example
from .workspace import Progress

BALANCE_VARIANT_BASE = 1000  # balance's variants never collide with generate's (0..999): distinct requests


@dataclass
class BalanceConfig:
    target_per_scenario: int | None = None
    max_rounds: int = 3
    overgenerate: float = 1.5  # ask for deficit x 1.5: the seed's filter kept 195/228 (86%), plus dedupe losses
    min_score: float = DEFAULT_MIN_SCORE
    judge: str = "rubric"
    generate: GenerateConfig = field(default_factory=GenerateConfig)

    def problems(self) -> list[str]:
        p = []
        if self.target_per_scenario is not None and self.target_per_scenario < 1:
            p.append(f"target_per_scenario: {self.target_per_scenario}; must be at least 1 (or unset to use scenarios.yaml)")
        if self.max_rounds < 0:
            p.append(f"max_rounds: {self.max_rounds}; must be 0 or more")
        if self.overgenerate < 1:
            p.append(f"overgenerate: {self.overgenerate}; must be at least 1.0")
        return p + self.generate.problems()

    def check(self) -> None:
        p = self.problems()
        if p:
            raise UserError("balance settings:\n  " + "\n  ".join(p))


def scenario_targets(persona: Persona, target_per_scenario: int | None = None) -> dict[str, int]:
    out = {}
    for cat, c in persona.scenarios.categories.items():
        per = target_per_scenario if target_per_scenario is not None else math.ceil(c.target_count / len(c.scenarios))
        for s in c.scenarios:
            out[s] = per
    return out


def coverage(examples: list[Example], persona: Persona, targets: dict[str, int]) -> list[dict]:
    """One row per scenario: category, scenario, count, target, short."""
    counts = Counter(e.scenario for e in examples)
    return [{"category": cat, "scenario": s, "count": counts.get(s, 0), "target": targets[s],
             "short": max(0, targets[s] - counts.get(s, 0))} for cat, s in persona.scenarios.all_scenarios()]


@dataclass
class BalanceResult:
    examples: list[Example]
    added: list[Example] = field(default_factory=list)
    rejected: list[Example] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    report: dict = field(default_factory=dict)


def balance(persona: Persona, examples: list[Example], cfg: BalanceConfig, *, client: LLMClient | None = None,
            judge=None, evals: list[tuple[str, str]] = (), approved: list[Example] = (),
            progress_path=None, echo: bool = False) -> BalanceResult:
    """Fill scenarios up to their targets (needs `client` and `judge`); always report what is short."""
    cfg.check()
    targets = scenario_targets(persona, cfg.target_per_scenario)
    res = BalanceResult(examples=list(examples))
    rounds, stopped = 0, "every scenario reached its target"
    generated = 0
    while True:
        short = {r["scenario"]: (r["category"], r["short"]) for r in coverage(res.examples, persona, targets) if r["short"]}
        if not short:
            break
        if client is None or judge is None:
            stopped = "no generator endpoint configured (offline): gaps reported, nothing generated"
            break
        if rounds >= cfg.max_rounds:
            stopped = f"max_rounds={cfg.max_rounds} reached"
            break
        slots = [Slot(cat, s, BALANCE_VARIANT_BASE + rounds * 100 + k)
                 for s, (cat, n) in short.items() for k in range(math.ceil(n * cfg.overgenerate))]
        progress = Progress(progress_path, f"balance round {rounds + 1}", len(slots), echo=echo)
        gen = client.run(agenerate(persona, client, slots, cfg.generate, approved=approved, progress=progress))
        progress.finish()
        rounds += 1
        generated += len(slots)
        res.failed += gen.failed
        filt = filter_examples(gen.examples, judge, cfg.min_score, stage="balance")
        dd = dedupe(filt.kept, evals, DedupeConfig(), against=res.examples)
        res.rejected += filt.rejected + dd.removed
        # Add no more than each scenario still needs: extras beyond the target would unbalance it again.
        need = {s: n for s, (_, n) in short.items()}
        for ex in dd.kept:
            if need.get(ex.scenario, 0) > 0:
                res.examples.append(ex)
                res.added.append(ex)
                need[ex.scenario] -= 1
        if any("budget exhausted" in f["reason"] for f in gen.failed):
            still = [r for r in coverage(res.examples, persona, targets) if r["short"]]
            if still:
                stopped = "budget exhausted (raise --max-requests / --max-cost-usd to continue; done calls are cached)"
                break
    rows = coverage(res.examples, persona, targets)
    res.report = {
        "targets": "target_per_scenario" if cfg.target_per_scenario else "scenarios.yaml target_count / scenarios",
        "rounds": rounds, "requested": generated, "added": len(res.added), "rejected": len(res.rejected),
        "failed": len(res.failed), "stopped": stopped, "total": len(res.examples),
        "short_scenarios": [r for r in rows if r["short"]], "coverage": rows,
        "still_short": sum(r["short"] for r in rows),
        "client": client.stats if client is not None else None,
    }
    return res


def summary(report: dict) -> str:
    lines = [f"balance: {report['total']} examples after {report['rounds']} round(s); added {report['added']}, "
             f"rejected {report['rejected']}, failed calls {report['failed']}", f"stopped: {report['stopped']}"]
    short = report["short_scenarios"]
    if short:
        lines.append(f"still short ({report['still_short']} examples in {len(short)} scenarios):")
        lines += [f"  {r['category']:<22} {r['scenario']:<40} {r['count']:>3}/{r['target']:<3} short {r['short']}"
                  for r in short]
    else:
        lines.append("every scenario is at or above its target")
    return "\n".join(lines)
