"""Fit the reader judge's heads on the benchmark's DEV split, then measure the judge on TEST.

    python -m pipeline judge fit            # writes pipeline/judges/weights/reader_v3.json
                                            # and reader_v3.agreement.json (test-split figures)

Training data:
  * the benchmark's dev replies with their final labels (labels.jsonl): every head;
  * the older hand-labelled calibration cases (<persona>/judge_calibration.jsonl, not in the
    benchmark at all): the violation heads only (they carry violation labels, no 1-10 score).
Nothing from the test split is read until the heads are fixed; the test figures are then
computed through the judge's real path (ReaderJudge.judge_batch), as `judge calibrate` does.

Hyper-parameters (the L2 penalty of every head, each logistic head's threshold) are chosen by
cross-validation on dev with folds BY PROMPT (the test split's own discipline), maximising
Spearman for the overall head and F1 with a recall floor for the yes/no heads.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ..jsonl import read_jsonl
from .agreement import spearman
from .probe import Head, Probe, logistic, pca, quantile_map, ridge, standardiser

LAMBDAS_RIDGE = [3.0, 10.0, 30.0, 100.0, 300.0]
LAMBDAS_LOGISTIC = [1.0, 3.0, 10.0, 30.0, 100.0]
COMPONENTS = 32  # principal components of the hidden states the heads see
FOLDS = 5
MIN_CV_F1 = 0.4  # a head worse than this in cross-validation is not shipped: the lexicon alone decides


class CachedEncoder:
    """The encoder with an on-disk memo of the model's part of the features (reply_mean + cos:
    fitting re-reads the same replies; verdicts never use it). The surface cues are recomputed
    every time, so changing them (features.surface) needs no new forward passes."""

    def __init__(self, encoder, path: Path):
        import torch

        from .features import HIDDEN

        self.encoder, self.path = encoder, path
        self.model_name = encoder.model_name
        self.keep = HIDDEN + 1
        self.memo = {k: v[:self.keep] for k, v in torch.load(path).items()} if path.is_file() else {}

    def encode(self, pairs):
        import hashlib

        import torch

        from .features import surface

        keys = [hashlib.sha1(f"{u}\0{r}".encode()).hexdigest() for u, r in pairs]
        todo = [(k, p) for k, p in zip(keys, pairs) if k not in self.memo]
        if todo:
            for k, v in zip([k for k, _ in todo], self.encoder.encode([p for _, p in todo])):
                self.memo[k] = v[:self.keep]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(self.memo, self.path)
        return [self.memo[k] + surface(u, r) for k, (u, r) in zip(keys, pairs)]


def featurise(rows: list[dict], spec, encoder) -> list[list[float]]:
    from .base import JudgeItem
    from .reader import features_for
    from .rubric import RubricJudge

    items = [JudgeItem(r["id"], r["messages"], r["response"]) for r in rows]
    return features_for(items, RubricJudge(spec).judge_batch(items), encoder, spec.violation_types)


def _folds(groups: list[str], k: int = FOLDS, seed: int = 14) -> list[set]:
    uniq = sorted(set(groups))
    random.Random(seed).shuffle(uniq)
    return [set(uniq[i::k]) for i in range(k)]


def _cv_predict(X, y, groups, fit, k=FOLDS):
    pred = [0.0] * len(y)
    for held in _folds(groups, k):
        tr = [i for i, g in enumerate(groups) if g not in held]
        te = [i for i, g in enumerate(groups) if g in held]
        if not te or not tr:
            continue
        w, b = fit([X[i] for i in tr], [y[i] for i in tr])
        for i in te:
            pred[i] = b + sum(a * c for a, c in zip(w, X[i]))
    return pred


def _f1_threshold(probs, y) -> tuple[float, float, float, float]:
    """(threshold, f1, recall, precision) maximising F1 over the CV probabilities (ties: the
    higher recall). F1 is the issue's measure; an earlier recall floor (0.8 on dev) chose
    thresholds so low that every good reply was flagged somewhere."""
    best = (0.5, 0.0, 0.0, 0.0)
    pos = sum(y)
    for t in sorted(set(round(p, 3) for p in probs)) + [0.5]:
        tp = sum(1 for p, g in zip(probs, y) if p >= t and g)
        fp = sum(1 for p, g in zip(probs, y) if p >= t and not g)
        r = tp / pos if pos else 0.0
        pr = tp / (tp + fp) if tp + fp else 0.0
        f = 2 * pr * r / (pr + r) if pr + r else 0.0
        if (f, r) > (best[1], best[2]):
            best = (t, f, r, pr)
    return best


def _sigmoid(s):
    import math

    return 1 / (1 + math.exp(-max(-30, min(30, s))))


def fit_heads(Z, rows, groups, spec, extra_Z=None, extra_rows=None, echo=None) -> tuple[dict, dict]:
    """Heads on standardised features Z (dev) [+ extra violation-labelled rows]."""
    heads, cv = {}, {}
    say = echo or (lambda *_: None)

    def ridge_head(name, y):
        best = None
        for lam in LAMBDAS_RIDGE:
            p = _cv_predict(Z, y, groups, lambda A, b: ridge(A, b, lam))
            s = spearman(p, y)
            if best is None or s > best[0]:
                best = (s, lam)
        w, b = ridge(Z, y, best[1])
        info = {"spearman_cv": round(best[0], 4), "lambda": best[1]}
        calib = None
        if name == "overall":
            # Ridge shrinks towards the mean, so a reply people gave 9 reads ~6 raw. Map the raw
            # value to the people's scale by matching the quantiles of its cross-validated
            # predictions on DEV to the labels' (monotone: ranks unchanged; see quantile_map).
            p = _cv_predict(Z, y, groups, lambda A, t: ridge(A, t, best[1]))
            calib = quantile_map(p, y)
            info["calibration"] = "quantile map of CV predictions onto the labels (dev)"
        heads[name] = Head("ridge", w, b, calib=calib)
        cv[name] = info
        say(f"  {name:<22} ridge  lambda {best[1]:<7g} CV Spearman {best[0]:.3f}")

    ridge_head("overall", [float(r["overall"]) for r in rows])
    ridge_head("coherence", [float(r["coherence"]) for r in rows])
    for t in spec.trait_ids:
        ridge_head(t, [float((r.get("traits") or {}).get(t, 1)) for r in rows])

    def logistic_head(name, y, extra_y=None):
        X, Y, G = list(Z), list(y), list(groups)
        if extra_y is not None:
            X += extra_Z
            Y += extra_y
            G += [f"extra-{i % FOLDS}" for i in range(len(extra_y))]
        if sum(Y) == 0:
            return
        best = None
        for lam in LAMBDAS_LOGISTIC:
            s = _cv_predict(X, Y, G, lambda A, b: logistic(A, b, lam))
            probs = [_sigmoid(v) for v in s[:len(y)]]  # thresholds judged on benchmark dev rows only
            th, f, r, pr = _f1_threshold(probs, y) if sum(y) else _f1_threshold([_sigmoid(v) for v in s], Y)
            if best is None or (f, r) > (best[3], best[4]):
                best = (pr, lam, th, f, r)
        shipped = best[3] >= MIN_CV_F1
        cv[name] = {"f1_cv": round(best[3], 4), "recall_cv": round(best[4], 4), "precision_cv": round(best[0], 4),
                    "lambda": best[1],
                    "threshold": round(best[2], 4), "positives_dev": int(sum(y)),
                    "positives_extra": int(sum(extra_y or [])), "shipped": shipped}
        say(f"  {name:<22} logit  lambda {best[1]:<7g} threshold {best[2]:.3f} CV F1 {best[3]:.3f} R {best[4]:.3f} "
            f"(dev positives {int(sum(y))}, extra {int(sum(extra_y or []))})" + ("" if shipped else "  NOT shipped"))
        if shipped:
            w, b = logistic(X, Y, best[1])
            heads[name] = Head("logistic", w, b, threshold=best[2], precision=round(best[0], 4))

    for t in spec.violation_types:
        ey = [float(t in (r.get("violations") or [])) for r in extra_rows] if extra_rows else None
        logistic_head(t, [float(t in (r.get("violations") or [])) for r in rows], ey)
    logistic_head("invented_task_data", [float(bool(r.get("invented_task_data"))) for r in rows])
    logistic_head("dishonest", [float(bool(r.get("dishonest"))) for r in rows])
    return heads, cv


def _calibration_rows(persona_dir: Path) -> list[dict]:
    p = persona_dir / "judge_calibration.jsonl"
    if not p.is_file():
        return []
    return [{"id": r["id"], "messages": [{"role": "user", "content": r["user"]}], "response": r["response"],
             "violations": r.get("violations", [])} for r in read_jsonl(p)]


def _probe(X, EX, dev, extra, spec, model_name, echo=None) -> Probe:
    """Projection, standardiser and every head, fitted on the rows given (dev, or a CV fold of it)."""
    from .features import HIDDEN, LAYERS
    from .reader import VERSION

    pmean, proj = pca([x[:HIDDEN] for x in X + EX], COMPONENTS)
    probe = Probe(version=VERSION, mean=[], scale=[], n_hidden=HIDDEN, proj_mean=pmean, proj=proj)
    probe.mean, probe.scale = standardiser([probe.reduce(x) for x in X + EX])
    Z = [probe.standardise(x) for x in X]
    EZ = [probe.standardise(x) for x in EX]
    probe.heads, cv = fit_heads(Z, dev, [r["prompt_id"] for r in dev], spec, EZ, extra, echo=echo)
    probe.meta = {"base_model": model_name, "layers": LAYERS, "components": COMPONENTS, "dev_replies": len(dev),
                  "calibration_cases": len(extra), "cv": cv}
    return probe


def _features(folder: Path, spec, encoder):
    from .bench import load_bench_rows

    if encoder is None:
        from ..settings import Settings
        from .features import LAYERS, shared_encoder

        encoder = CachedEncoder(shared_encoder(None), Settings.from_env().cache_dir / f"judge_features_L{LAYERS}.pt")
    dev = load_bench_rows(folder, "dev")
    extra = _calibration_rows(folder.parent)
    return encoder, dev, extra, featurise(dev, spec, encoder), (featurise(extra, spec, encoder) if extra else [])


def cv_reader(folder: Path, spec, echo=None, encoder=None) -> dict:
    """The whole judge (heads, caps, output map) under cross-validation BY PROMPT on dev: each
    fold's verdicts come from a probe fitted without that fold's prompts. These are the figures
    to choose changes by; the test split is never read here."""
    from .agreement import agreement
    from .base import JudgeItem
    from .reader import ReaderJudge
    from .rubric import RubricJudge

    encoder, dev, extra, X, EX = _features(folder, spec, encoder)
    groups = [r["prompt_id"] for r in dev]
    rub = RubricJudge(spec).judge_batch([JudgeItem(r["id"], r["messages"], r["response"]) for r in dev])
    verdicts = [None] * len(dev)
    for held in _folds(groups, seed=7):  # other folds than the heads' inner CV
        tr = [i for i, g in enumerate(groups) if g not in held]
        probe = _probe([X[i] for i in tr], EX, [dev[i] for i in tr], extra, spec, encoder.model_name)
        judge = ReaderJudge(spec, probe=probe, encoder=encoder)
        for i, g in enumerate(groups):
            if g in held:
                verdicts[i] = judge._verdict(JudgeItem(dev[i]["id"], dev[i]["messages"], dev[i]["response"]), X[i], rub[i])
    rep = agreement(dev, verdicts, spec.violation_types)
    rep["judge"] = {"name": f"{judge.name} (dev CV by prompt)"}
    rep["split"] = "dev, 5-fold CV by prompt"
    if echo:
        from .agreement import render

        echo(render(rep))
    return rep


def _shown_path(folder: Path) -> str:
    """The benchmark folder as the shipped weights record it: relative to the repo, never a local
    absolute path (the weights file ships in packages and Spaces)."""
    from ..settings import REPO_ROOT

    try:
        return str(folder.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return folder.name


def fit_reader(folder: Path, spec, out: Path | None = None, echo=None, encoder=None) -> dict:
    from .agreement import measure
    from .bench import load_bench_rows
    from .reader import AGREEMENT, VERSION, WEIGHTS, ReaderJudge

    say = echo or (lambda *_: None)
    encoder, dev, extra, X, EX = _features(folder, spec, encoder)
    say(f"fitting reader:{VERSION} on {len(dev)} dev replies (+{len(extra)} calibration cases for the violation heads)")
    probe = _probe(X, EX, dev, extra, spec, encoder.model_name, echo=say)
    probe.meta["benchmark"] = _shown_path(folder)
    out = out or WEIGHTS
    out.parent.mkdir(parents=True, exist_ok=True)
    probe.save(out)
    # Only now, with the heads fixed, the test split.
    test = load_bench_rows(folder, "test")
    judge = ReaderJudge(spec, probe=probe, encoder=encoder)
    rep = measure(judge, test, spec)
    from .agreement import summary as agreement_summary

    summary = agreement_summary(rep, "test", "python -m pipeline judge calibrate --judge reader --bench --split test")
    if out == WEIGHTS:
        AGREEMENT.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    say(f"test split: Spearman {rep['spearman']:.3f}, pairwise {rep['pairwise']['accuracy']:.3f}, "
        f"violation F1 {rep['violations']['overall']['f1']:.3f}, invented R {rep['invented']['recall']:.3f}")
    return {"weights": str(out), "cv": probe.meta["cv"], "test": summary}
