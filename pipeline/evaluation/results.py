"""EVALUATION_RESULTS.json: the versioned schema every later stage (package, target, studio) reads.

SCHEMA_VERSION 1. Stable keys (do not rename; add new ones instead):

    schema_version  int
    created_at      ISO-8601 UTC
    decision        "APPROVED FOR DEPLOYMENT" | "REQUIRES ITERATION"
    gates           [{name, passed, value, threshold, detail}]
    metrics.adapter / metrics.base
                    compute_metrics() output: overall_mean, overall_ci95, trait_means,
                    pattern_rates, boundary_violations, violation_count, violations_by_type,
                    violation_rate, violating_replies, per_category, length_words, length_chars,
                    preferred_phrase_rate, preferred_hits, avoided_hits, opener_diversity, ...
    metrics.improvement   {overall, traits: {trait: delta}, violation_rate}
    ab              {wins, losses, ties, n, win_rate, ci_low, ci_high, failures, inconsistent,
                     judge, pairs: [{id, winner, orders, consistent, ok, error}]}
    judge           {kind, name, model, prompt_version, heuristic, pairwise, agreement: {judge, split, n,
                     spearman, kendall, pairwise_accuracy, violation_f1, ..., command}}
    eval_set        {path, sha256, n}
    adapter         {path, sha256, size_bytes}
    run_config      {run_dir, base_model, persona, config (the run's config.yaml), train_summary,
                     missing: [what could not be read]}
    sampling        the SamplingConfig both models answered with
    timing          seconds per stage
    per_category    [{category, n, base_mean, adapter_mean, delta, base_violations, adapter_violations}]
    worst_replies   the adapter's worst replies (violations first, then lowest scores)
    failing         [{id, category, prompt, messages, reply, traits, reasons}] for the Phase 4 plan
    plan            build_plan(...) output (pipeline/evaluation/plan.py)

Two results are comparable when eval_set.sha256, judge.name and sampling match
(`comparability(a, b)` lists what differs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ..errors import UserError

SCHEMA_VERSION = 1
RESULTS_FILE = "EVALUATION_RESULTS.json"


class GateRecord(BaseModel):
    name: str
    passed: bool
    value: Any = None
    threshold: Any = None
    detail: str = ""


class ABRecord(BaseModel):
    model_config = ConfigDict(extra="allow")
    wins: int
    losses: int
    ties: int
    n: int
    win_rate: float | None
    ci_low: float | None
    ci_high: float | None


class JudgeRecord(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: str
    name: str
    model: str | None = None
    prompt_version: str | None = None
    # How far to trust the judge: its agreement with people on the judge benchmark's test split
    # (pipeline.judges.judge_agreement); {"measured": false, ...} for a judge never measured.
    agreement: dict[str, Any] | None = None


class EvalSetRecord(BaseModel):
    path: str
    sha256: str
    n: int


class AdapterRecord(BaseModel):
    model_config = ConfigDict(extra="allow")
    path: str
    sha256: str | None
    size_bytes: int | None


class EvaluationResults(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_version: Literal[1] = SCHEMA_VERSION
    created_at: str
    decision: Literal["APPROVED FOR DEPLOYMENT", "REQUIRES ITERATION"]
    gates: list[GateRecord]
    metrics: dict[str, Any]  # {"base": {...}, "adapter": {...}, "improvement": {...}}
    ab: ABRecord
    judge: JudgeRecord
    eval_set: EvalSetRecord
    adapter: AdapterRecord
    run_config: dict[str, Any]
    sampling: dict[str, Any] = {}
    timing: dict[str, Any] = {}
    per_category: list[dict] = []
    worst_replies: list[dict] = []
    failing: list[dict] = []
    plan: dict[str, Any] = {}

    @property
    def approved(self) -> bool:
        return self.decision == "APPROVED FOR DEPLOYMENT"

    @property
    def adapter_metrics(self) -> dict[str, Any]:
        return self.metrics.get("adapter") or {}

    @property
    def base_metrics(self) -> dict[str, Any]:
        return self.metrics.get("base") or {}

    def gate_table(self) -> str:
        """The console gate table (pipeline.evaluation.gates.render_gates, the one renderer)."""
        from .gates import render_gates

        return render_gates(self.gates, self.approved)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object as written (what the dict-based renderers take)."""
        return self.model_dump(mode="json")


def load_results(path: str | Path) -> EvaluationResults:
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise UserError(f"evaluation results not found: {path}; run `python -m pipeline evaluate --run runs/<id>` first")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg})") from None
    v = raw.get("schema_version")
    if v != SCHEMA_VERSION:
        raise UserError(f"{path}: schema_version {v!r}, this build reads {SCHEMA_VERSION}; re-run the evaluation")
    return EvaluationResults.model_validate(raw)


def comparability(a: dict, b: dict) -> list[str]:
    """Why two results should not be compared number for number (empty list: comparable)."""
    out = []
    if a["eval_set"]["sha256"] != b["eval_set"]["sha256"]:
        out.append("different eval sets (eval_set.sha256 differs)")
    if a["judge"]["name"] != b["judge"]["name"]:
        out.append(f"different judges ({a['judge']['name']} vs {b['judge']['name']})")
    if a.get("sampling") != b.get("sampling"):
        out.append("different sampling settings")
    return out
