"""check_quality_gates: the seed's three gates plus the capstone checklist's, each with numbers.

  overall_score     adapter overall mean >= success_criteria.overall_min (7.5 of 10)
  all_traits        every trait mean >= trait_min (1.5 of 2)
  no_violations     replies with a boundary violation <= max_boundary_violations (0)
  ab_win_rate       the Wilson 95% LOWER bound of the adapter's win rate over the base >=
                    ab_win_rate_min (70%); the point estimate is shown too. On the lower bound
                    so that a handful of lucky pairs cannot pass: 7 wins of 10 is 70% but its
                    lower bound is 40%.
  final_train_loss  train_summary.json final_loss < max_final_train_loss (0.4)
  adapter_size      adapter_size_bytes <= deployment.max_adapter_mb (MB = 10^6 bytes)
  judge_coverage    the judge scored at least 95% of the adapter's replies (a mean over a few
                    survivors is not a score of the eval set)

A gate whose input is missing FAILS, and its detail names what is missing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..spec import PersonaSpec

APPROVED = "APPROVED FOR DEPLOYMENT"
ITERATE = "REQUIRES ITERATION"
MIN_JUDGE_COVERAGE = 0.95


@dataclass
class Gate:
    name: str
    passed: bool
    value: object
    threshold: object
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)


def check_quality_gates(metrics: dict, spec: PersonaSpec, *, ab: dict | None = None,
                        train: dict | None = None, adapter_size_bytes: int | None = None) -> tuple[bool, list[Gate]]:
    c = spec.success_criteria
    g: list[Gate] = []
    om = metrics.get("overall_mean")
    g.append(Gate("overall_score", om is not None and om >= c.overall_min, om, f">= {c.overall_min}",
                  f"overall {om:.2f}/{spec.max_overall} (target >= {c.overall_min})" if om is not None
                  else "no scored replies: the judge scored nothing"))
    tm = metrics.get("trait_means") or {}
    low = {t: m for t, m in tm.items() if m is None or m < c.trait_min}
    g.append(Gate("all_traits", bool(tm) and not low, tm, f">= {c.trait_min} each",
                  ("all traits >= %s" % c.trait_min) if tm and not low else
                  "below target: " + ", ".join(f"{t} {m:.2f}" if m is not None else f"{t} unscored" for t, m in low.items())
                  if low else "no trait scores"))
    bv = metrics.get("boundary_violations")
    g.append(Gate("no_violations", bv is not None and bv <= c.max_boundary_violations, bv,
                  f"<= {c.max_boundary_violations}",
                  f"{bv} replies with a boundary violation" + (
                      " (" + ", ".join(f"{k} {v}" for k, v in sorted((metrics.get('violations_by_type') or {}).items())) + ")"
                      if bv else "")))
    if ab and ab.get("n"):
        lo, wr = ab["ci_low"], ab["win_rate"]
        g.append(Gate("ab_win_rate", lo >= c.ab_win_rate_min, {"ci_low": lo, "win_rate": wr, "ci_high": ab["ci_high"]},
                      f"lower bound >= {c.ab_win_rate_min:.0%}",
                      f"win rate {wr:.0%} (95% CI {lo:.0%}-{ab['ci_high']:.0%}) over {ab['n']} pairs: "
                      f"{ab['wins']} wins, {ab['losses']} losses, {ab['ties']} ties; gated on the lower bound"))
    else:
        g.append(Gate("ab_win_rate", False, None, f"lower bound >= {c.ab_win_rate_min:.0%}",
                      "no A/B pairs were judged (A/B missing or every pair failed)"))
    loss = (train or {}).get("final_loss")
    if loss is None:
        g.append(Gate("final_train_loss", False, None, f"< {c.max_final_train_loss}",
                      "cannot compute: train_summary.json is missing or has no final_loss"))
    else:
        g.append(Gate("final_train_loss", loss < c.max_final_train_loss, loss, f"< {c.max_final_train_loss}",
                      f"final training loss {loss:.4f}"))
    max_b = spec.deployment.max_adapter_mb * 1e6
    if adapter_size_bytes is None:
        g.append(Gate("adapter_size", False, None, f"<= {spec.deployment.max_adapter_mb:g} MB",
                      "cannot compute: no adapter_size_bytes in train_summary.json and no adapter files found"))
    else:
        g.append(Gate("adapter_size", adapter_size_bytes <= max_b, adapter_size_bytes,
                      f"<= {spec.deployment.max_adapter_mb:g} MB", f"adapter {adapter_size_bytes / 1e6:.2f} MB"))
    n, scored = metrics.get("n", 0), metrics.get("scored", 0)
    cov = scored / n if n else 0.0
    g.append(Gate("judge_coverage", cov >= MIN_JUDGE_COVERAGE, round(cov, 4), f">= {MIN_JUDGE_COVERAGE:.0%}",
                  f"judge scored {scored}/{n} replies" + (f"; {n - scored} judge failures" if n - scored else "")))
    return all(x.passed for x in g), g


def decision(passed: bool) -> str:
    return APPROVED if passed else ITERATE


def render_gates(gates: list, passed: bool) -> str:
    """The seed's QUALITY GATE STATUS table: the one console rendering of the gates (`pipeline
    eval`, `pipeline run`). Takes `Gate`s or the results file's `GateRecord`s (same fields)."""
    lines = ["=" * 60, "QUALITY GATE STATUS", "=" * 60]
    w = max((len(x.name) for x in gates), default=0)
    for x in gates:
        lines.append(f"  {x.name.ljust(w)}  {'✓ PASS' if x.passed else '✗ FAIL'}  {x.detail}")
    if not gates:
        lines.append("  (no gates recorded)")
    lines.append(f"\nFinal Status: {decision(passed)}")
    return "\n".join(lines)
