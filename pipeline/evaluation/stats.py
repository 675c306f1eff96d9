"""Small statistics for evaluation: the Wilson score interval and summary numbers.

Why Wilson and not "p ± 1.96·sqrt(p(1-p)/n)": the normal interval collapses to zero width at
p = 0 or 1 and overshoots [0, 1] for small n; an adapter that wins 10 of 10 pairs has a
Wald interval of [1, 1] but a Wilson interval of [0.72, 1]. Gating on the lower bound is
what keeps "70% win rate" from passing on a tiny sample.
"""

from __future__ import annotations

import math
import statistics

Z95 = 1.959964  # two-sided 95%


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion; `successes` may be fractional (ties count 0.5)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, round(centre - half, 12)), min(1.0, round(centre + half, 12))


def mean_ci(values: list[float], z: float = Z95) -> tuple[float | None, float | None]:
    """Normal-approximation 95% interval of a mean (shown beside overall scores, not gated)."""
    n = len(values)
    if n < 2:
        return None, None
    m = statistics.fmean(values)
    half = z * statistics.stdev(values) / math.sqrt(n)
    return m - half, m + half


def distribution(values: list[float]) -> dict:
    """n, mean, median, p10, p90, min, max (None-safe for an empty list)."""
    if not values:
        return {"n": 0, "mean": None, "median": None, "p10": None, "p90": None, "min": None, "max": None}
    v = sorted(values)

    def q(f: float) -> float:
        k = (len(v) - 1) * f
        lo, hi = math.floor(k), math.ceil(k)
        return v[lo] + (v[hi] - v[lo]) * (k - lo)

    return {"n": len(v), "mean": round(statistics.fmean(v), 2), "median": round(q(0.5), 2), "p10": round(q(0.1), 2),
            "p90": round(q(0.9), 2), "min": v[0], "max": v[-1]}
