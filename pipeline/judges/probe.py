"""Linear heads on the embedded model's features (features.py), fitted on the benchmark's DEV split.

Heads (all linear, standardised inputs; the file is a few hundred kB of JSON):
  overall     ridge regression onto the people's 1-10 overall score
  coherence   ridge onto coherence 0-2
  <type>      logistic regression per violation type, `invented` and `dishonest`
  <trait>     ridge onto each trait 0-2

`fit(X, targets)` -> Probe; `Probe.save(path)` / `Probe.load(path)`; `Probe.predict(x)` -> dict.
Ridge is solved in closed form; logistic by Newton steps with an L2 penalty (no sklearn:
torch alone is already a dependency). Class weights balance rare violations, so a type with
a handful of dev examples still gets a usable decision boundary; each head's threshold is
chosen on dev by leave-prompt-out cross-validation (see pipeline/judges/train_probe.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path


def _t(x):
    import torch

    return torch.as_tensor(x, dtype=torch.float64)


def ridge(X, y, lam: float):
    import torch

    X, y = _t(X), _t(y)
    n, d = X.shape
    Xb = torch.cat([X, torch.ones(n, 1, dtype=X.dtype)], 1)
    reg = lam * torch.eye(d + 1, dtype=X.dtype)
    reg[-1, -1] = 0.0
    w = torch.linalg.solve(Xb.T @ Xb + reg, Xb.T @ y)
    return w[:-1].tolist(), float(w[-1])


def logistic(X, y, lam: float, steps: int = 30):
    import torch

    X, y = _t(X), _t(y)
    n, d = X.shape
    Xb = torch.cat([X, torch.ones(n, 1, dtype=X.dtype)], 1)
    pos = float(y.sum())
    if pos == 0 or pos == n:
        return [0.0] * d, (10.0 if pos else -10.0)
    sw = torch.where(y > 0, n / (2 * pos), n / (2 * (n - pos)))  # balanced class weights
    w = torch.zeros(d + 1, dtype=X.dtype)
    reg = lam * torch.eye(d + 1, dtype=X.dtype)
    reg[-1, -1] = 1e-6
    for _ in range(steps):
        p = torch.sigmoid(Xb @ w)
        g = Xb.T @ (sw * (p - y)) + reg @ w
        H = (Xb * (sw * p * (1 - p)).unsqueeze(1)).T @ Xb + reg
        step = torch.linalg.solve(H, g)
        w = w - step
        if step.abs().max() < 1e-6:
            break
    return w[:-1].tolist(), float(w[-1])


def quantile_map(x: list[float], y: list[float], knots: int = 16) -> list[list[float]]:
    """Monotone map sending the distribution of x onto the distribution of y (the k-th smallest
    prediction to the k-th smallest label), as at most `knots` points for piecewise-linear
    interpolation. Fitted on cross-validated predictions on dev: unlike isotonic regression of
    y on x, which averages labels where the head cannot tell replies apart (so a reply people
    gave 9 read ~6-7), it spreads the head's top predictions over the labels' top, without
    changing the ranking (dev CV: 9-10 replies 5.2 -> 6.2 on 0-10, Spearman 0.491 -> 0.488)."""
    pts: list[list[float]] = []
    for a, b in zip(sorted(x), sorted(y)):
        if pts and a <= pts[-1][0]:  # tied predictions: one point, the larger label (y is sorted)
            pts[-1][1] = b
            continue
        pts.append([a, b])
    if len(pts) > knots:  # keep the ends, thin the middle
        step = (len(pts) - 1) / (knots - 1)
        pts = [pts[round(i * step)] for i in range(knots)]
    return [[round(a, 4), round(b, 4)] for a, b in pts]


def interpolate(curve: list[list[float]], v: float) -> float:
    if v <= curve[0][0]:
        return curve[0][1]
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if v <= x1:
            return y0 + (y1 - y0) * (v - x0) / (x1 - x0) if x1 > x0 else y1
    return curve[-1][1]


@dataclass
class Head:
    kind: str  # "ridge" | "logistic"
    w: list[float]
    b: float
    threshold: float = 0.5  # logistic heads: P(yes) at or above it is a yes
    calib: list[list[float]] | None = None  # ridge heads: monotone map of the raw value (quantile_map)
    precision: float | None = None  # logistic heads: cross-validated precision at `threshold` on dev

    def raw(self, z: list[float]) -> float:
        s = self.b + sum(a * b for a, b in zip(self.w, z))
        if self.kind == "logistic":
            return 1 / (1 + math.exp(-max(-30.0, min(30.0, s))))
        return interpolate(self.calib, s) if self.calib else s


@dataclass
class Probe:
    """x = hidden-state block (first `n_hidden` numbers) + the rest. The hidden block is
    projected onto its top principal components (fitted on dev): 576 correlated numbers from
    ~150 labelled replies would let every head memorise; ~32 components keep what varies."""

    version: str
    mean: list[float]
    scale: list[float]
    heads: dict[str, Head] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    n_hidden: int = 0
    proj_mean: list[float] = field(default_factory=list)
    proj: list[list[float]] = field(default_factory=list)  # k rows of n_hidden

    def reduce(self, x: list[float]) -> list[float]:
        if not self.n_hidden:
            return list(x)
        h = [a - m for a, m in zip(x[:self.n_hidden], self.proj_mean)]
        return [sum(a * b for a, b in zip(row, h)) for row in self.proj] + list(x[self.n_hidden:])

    def standardise(self, x: list[float]) -> list[float]:
        return [(a - m) / s for a, m, s in zip(self.reduce(x), self.mean, self.scale)]

    def predict(self, x: list[float]) -> dict[str, float]:
        z = self.standardise(x)
        return {name: h.raw(z) for name, h in self.heads.items()}

    def save(self, path: str | Path) -> None:
        d = {"version": self.version, "n_hidden": self.n_hidden, "proj_mean": [round(v, 6) for v in self.proj_mean],
             "proj": [[round(v, 6) for v in row] for row in self.proj], "mean": [round(v, 6) for v in self.mean],
             "scale": [round(v, 6) for v in self.scale], "meta": self.meta,
             "heads": {k: {"kind": h.kind, "w": [round(v, 6) for v in h.w], "b": round(h.b, 6),
                           "threshold": round(h.threshold, 4), **({"calib": h.calib} if h.calib else {}),
                           **({"precision": h.precision} if h.precision is not None else {})}
                       for k, h in self.heads.items()}}
        Path(path).write_text(json.dumps(d, separators=(",", ":")), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Probe":
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(version=d["version"], mean=d["mean"], scale=d["scale"], meta=d.get("meta", {}),
                   n_hidden=d.get("n_hidden", 0), proj_mean=d.get("proj_mean", []), proj=d.get("proj", []),
                   heads={k: Head(**h) for k, h in d["heads"].items()})


def standardiser(X: list[list[float]]) -> tuple[list[float], list[float]]:
    import torch

    T = _t(X)
    mean = T.mean(0)
    scale = T.std(0).clamp_min(1e-6)
    return mean.tolist(), scale.tolist()


def pca(X: list[list[float]], k: int) -> tuple[list[float], list[list[float]]]:
    """(mean, top-k principal directions as rows) of X."""
    import torch

    T = _t(X)
    mean = T.mean(0)
    _, _, V = torch.linalg.svd(T - mean, full_matrices=False)
    return mean.tolist(), V[:k].tolist()
