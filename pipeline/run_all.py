"""The whole pipeline headless: train -> evaluate -> package -> validate, into one run folder.

    python -m pipeline run --preset cpu-demo --out runs/demo

This is the seed's end-to-end "persona tuner" on the shipped data (data/personas/<persona>/
train.jsonl and its held-out eval set), with the embedded model and the offline rubric judge by
default, so it needs no network and no API key. Every stage is the library's own function,
the same one the CLI subcommand and the studio's tab call; this module only sequences them and
keeps the record:

    runs/<id>/                  the training run folder (config.yaml, metrics.jsonl, adapter/, ...)
      eval/                     the evaluation stage's output (EVALUATION_RESULTS.json, ...)
      package/                  the deployable package (adapter + README + PERSONA_SPEC.md + ...)
      pipeline_run.json         which stages ran, their wall times and outcomes, the gate table

Re-running the same command continues: a finished stage whose output is present is skipped,
an interrupted training resumes from its last checkpoint. A stage whose code is not in this
build is reported by name ("stage X is not available: ...") and the run stops there with
exit status 3; nothing is faked.
"""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import UserError
from .jsonl import write_json
from .settings import Settings

RECORD = "pipeline_run.json"
STAGES = ("train", "evaluate", "package", "validate")


@dataclass(frozen=True)
class RunPreset:
    """What one `pipeline run --preset` means for every stage."""

    name: str
    description: str
    train_preset: str
    judge: str = "rubric"           # offline; "llm" needs a judge endpoint
    eval_limit: int | None = None   # None: the whole held-out eval set
    base_model: str | None = None   # None: the studio's (embedded on CPU)


PRESETS: dict[str, RunPreset] = {
    "cpu-demo": RunPreset("cpu-demo", "the embedded model, the shipped data, the rubric judge; minutes on 2 CPU cores",
                          train_preset="cpu-demo"),
    "smoke": RunPreset("smoke", "5 training steps and a few eval prompts: checks the machinery end to end",
                       train_preset="smoke", eval_limit=4),
    "seed": RunPreset("seed", "the seed's Phase 2 training config (for a GPU) and the whole eval set",
                      train_preset="seed"),
}


class StageMissing(UserError):
    """A stage's code is not in this build; the message names the stage and what is missing."""


class StageStopped(UserError):
    """The stage was stopped (SIGTERM, Ctrl-C, the studio's Stop) after saving what it had."""


@dataclass
class StageResult:
    name: str
    state: str                  # done | skipped | stopped | failed | missing | not run
    seconds: float = 0.0
    detail: dict = field(default_factory=dict)
    message: str = ""


@dataclass
class RunReport:
    out_dir: Path
    preset: str
    stages: list[StageResult]
    gates: list[dict]
    approved: bool | None
    wall_s: float

    @property
    def exit_code(self) -> int:
        states = {s.state for s in self.stages}
        if "missing" in states:
            return 3
        if states & {"failed", "stopped"}:
            return 1
        return 0

    def to_dict(self) -> dict:
        return {"out_dir": str(self.out_dir), "preset": self.preset, "wall_s": round(self.wall_s, 1),
                "approved": self.approved, "gates": self.gates,
                "stages": [{"name": s.name, "state": s.state, "seconds": round(s.seconds, 1), "message": s.message,
                            "detail": s.detail} for s in self.stages]}


# ---- finding the stage functions ------------------------------------------------------------

def _find(candidates: list[tuple[str, str]], stage: str) -> Callable:
    """The first importable `module:attr` among `candidates`, or StageMissing naming them."""
    tried = []
    for mod, attr in candidates:
        try:
            fn = getattr(importlib.import_module(mod), attr)
        except ModuleNotFoundError as exc:
            if exc.name and (mod == exc.name or mod.startswith(exc.name + ".")):
                tried.append(f"{mod}.{attr}")
                continue
            raise  # the stage exists but one of ITS imports is missing: a real error, not "missing"
        except AttributeError:
            tried.append(f"{mod}.{attr}")
            continue
        return fn
    raise StageMissing(f"stage {stage!r} is not available in this build (looked for {', '.join(tried)})")


# Where each later stage's function lives (the first importable one is used).
STAGE_CODE: dict[str, list[tuple[str, str]]] = {
    "evaluate": [("pipeline.evaluation.evaluate", "run_eval")],
    "package": [("pipeline.package", "build_package"), ("pipeline.package.build", "build_package")],
    "validate": [("pipeline.package", "validate_package"), ("pipeline.package.validate", "validate_package")],
}


def stage_available(name: str) -> bool:
    try:
        _find(STAGE_CODE[name], name) if name in STAGE_CODE else None
        return True
    except StageMissing:
        return False


# ---- the stages -------------------------------------------------------------------------------

def stage_train(out: Path, preset: RunPreset, settings: Settings, persona: str, base: str, echo: bool) -> tuple[str, dict]:
    from .train import run_training
    from .train.config import preset as train_preset
    from .train.runner import SUMMARY, run_status

    summary_path = out / SUMMARY
    if summary_path.is_file() and run_status(out).get("state") == "finished":
        return "skipped", json.loads(summary_path.read_text())
    resume = (out / "config.yaml").is_file()
    config = None if resume else train_preset(preset.train_preset, base_model=base, persona=persona)
    summary = run_training(config, out, settings, resume=resume, echo=echo)
    if summary.get("state") != "finished":
        raise StageStopped(f"training {summary.get('state', 'did not finish')} at step {summary.get('steps')}; "
                           f"rerun the same command to resume it from its last checkpoint")
    return "done", summary


def stage_evaluate(out: Path, preset: RunPreset, settings: Settings, persona: str, base: str, echo: bool) -> tuple[str, dict]:
    run_eval = _find(STAGE_CODE["evaluate"], "evaluate")
    from .evaluation.evaluate import EvalConfig

    results = out / "eval" / "EVALUATION_RESULTS.json"
    if results.is_file():
        return "skipped", json.loads(results.read_text())
    res = run_eval(EvalConfig(run_dir=out, judge=preset.judge, limit=preset.eval_limit), settings,
                   echo=(lambda m: print(m, flush=True)) if echo else (lambda m: None))
    a = (res.get("metrics") or {}).get("adapter") or {}
    return "done", {"decision": res.get("decision"), "overall_mean": a.get("overall_mean"),
                    "boundary_violations": a.get("boundary_violations"),
                    "ab_win_rate": (res.get("ab") or {}).get("win_rate")}


def stage_package(out: Path, preset: RunPreset, settings: Settings, persona: str, base: str, echo: bool) -> tuple[str, dict]:
    build_package = _find(STAGE_CODE["package"], "package")
    from .package import PackageConfig

    result = build_package(PackageConfig(run=str(out), out=str(out / "package")), settings)
    if echo:
        print(result.summary(), flush=True)
    return "done", {"path": str(result.path), "adapter_bytes": result.adapter_bytes,
                    "files": len(result.manifest.get("files", [])), "sample_source": result.sample_source}


def stage_validate(out: Path, preset: RunPreset, settings: Settings, persona: str, base: str, echo: bool) -> tuple[str, dict]:
    validate_package = _find(STAGE_CODE["validate"], "validate")
    report = validate_package(out / "package", settings)
    if echo:
        print(report.summary(), flush=True)
    detail = {"ok": report.ok, "decision": report.decision, "errors": len(report.errors),
              "warnings": len(report.findings) - len(report.errors)}
    if not report.ok:
        raise UserError(f"the package failed validation with {len(report.errors)} error(s) (listed above; "
                        f"`python -m pipeline package validate {out / 'package'}` repeats them): "
                        + "; ".join(f"{f.file}: {f.problem}" for f in report.errors[:3]))
    return "done", detail


STAGE_FNS = {"train": stage_train, "evaluate": stage_evaluate, "package": stage_package, "validate": stage_validate}


# ---- gates -----------------------------------------------------------------------------------

def read_gates(out: Path) -> tuple[list[dict], bool | None]:
    """The gate table from EVALUATION_RESULTS.json: [{"gate", "value", "threshold", "passed"}]."""
    path = out / "eval" / "EVALUATION_RESULTS.json"
    if not path.is_file():
        return [], None
    data = json.loads(path.read_text())
    raw = data.get("gates") or {}
    rows = []
    if isinstance(raw, dict):
        for name, g in raw.items():
            if isinstance(g, dict):
                rows.append({"gate": name, "value": g.get("value"), "threshold": g.get("threshold"),
                             "passed": bool(g.get("passed")), "detail": g.get("detail", "")})
            else:
                rows.append({"gate": name, "value": None, "threshold": None, "passed": bool(g)})
    elif isinstance(raw, list):
        for g in raw:
            rows.append({"gate": g.get("gate") or g.get("name"), "value": g.get("value"),
                         "threshold": g.get("threshold"), "passed": bool(g.get("passed")),
                         "detail": g.get("detail", "")})
    approved = data.get("approved")
    if approved is None and isinstance(data.get("decision"), str):
        approved = data["decision"].upper().startswith("APPROVED")
    if approved is None and rows:
        approved = all(r["passed"] for r in rows)
    return rows, approved


def gate_table(gates: list[dict], approved: bool | None) -> str:
    if not gates:
        return "(no gate table: the evaluation stage did not run)"

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}"
        if isinstance(v, (dict, list)):
            return "see note"
        return "-" if v is None else str(v)

    w = max(len(str(g["gate"])) for g in gates)
    lines = ["=" * 60, "QUALITY GATE STATUS", "=" * 60]
    for g in gates:
        mark = "✓ PASS" if g["passed"] else "✗ FAIL"
        if g.get("detail"):
            lines.append(f"  {str(g['gate']).ljust(w)}  {mark}  {g['detail']} (threshold {fmt(g['threshold'])})")
        else:
            lines.append(f"  {str(g['gate']).ljust(w)}  {mark}  value {fmt(g['value'])} (threshold {fmt(g['threshold'])})")
    lines.append("")
    lines.append("Final Status: " + ("APPROVED FOR DEPLOYMENT" if approved else "REQUIRES ITERATION"))
    return "\n".join(lines)


# ---- the orchestrator -----------------------------------------------------------------------------

def run_all(preset: str, out_dir: str | Path, settings: Settings, *, persona: str | None = None,
            base_model: str | None = None, stages: tuple[str, ...] = STAGES, echo: bool = True) -> RunReport:
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}: use one of {', '.join(PRESETS)}")
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise UserError(f"unknown stage(s) {bad}: choose from {', '.join(STAGES)}")
    p = PRESETS[preset]
    out = Path(out_dir)
    persona = persona or settings.persona
    base = base_model or p.base_model or settings.base_model
    results: list[StageResult] = []
    t0 = time.time()
    say = print if echo else (lambda *a, **k: None)
    say(f"pipeline run {out} (preset {preset}: {p.description}); persona {persona}, base {base}", flush=True)
    stopped = False
    for name in STAGES:
        if name not in stages:
            continue
        if stopped:
            results.append(StageResult(name, "not run"))
            continue
        say(f"\n== {name} ==", flush=True)
        t = time.time()
        try:
            state, detail = STAGE_FNS[name](out, p, settings, persona, base, echo)
            results.append(StageResult(name, state, time.time() - t, _small(detail)))
            say(f"{name}: {state} in {time.time() - t:.1f} s", flush=True)
        except StageStopped as exc:
            results.append(StageResult(name, "stopped", time.time() - t, message=str(exc)))
            say(f"{name}: STOPPED: {exc}", flush=True)
            stopped = True
        except StageMissing as exc:
            results.append(StageResult(name, "missing", time.time() - t, message=str(exc)))
            say(f"{name}: MISSING: {exc}", flush=True)
            stopped = True
        except UserError as exc:
            results.append(StageResult(name, "failed", time.time() - t, message=str(exc)))
            say(f"{name}: FAILED: {exc}", flush=True)
            stopped = True
        _record(out, preset, results, t0)
    gates, approved = read_gates(out)
    report = RunReport(out, preset, results, gates, approved, time.time() - t0)
    if out.is_dir():
        write_json(out / RECORD, report.to_dict())
    say("\n" + gate_table(gates, approved), flush=True)
    say("\n" + summary_table(report), flush=True)
    return report


def summary_table(report: RunReport) -> str:
    lines = [f"{'stage':<10} {'state':<8} {'seconds':>8}  note"]
    for s in report.stages:
        note = s.message.splitlines()[0] if s.message else ""
        note = note if len(note) <= 110 else note[:107] + "..."
        lines.append(f"{s.name:<10} {s.state:<8} {s.seconds:>8.1f}  {note}")
    lines.append(f"total wall time {report.wall_s:.1f} s; record in {report.out_dir / RECORD}")
    return "\n".join(lines)


def _record(out: Path, preset: str, results: list[StageResult], t0: float) -> None:
    if out.is_dir():
        partial = RunReport(out, preset, results, [], None, time.time() - t0)
        write_json(out / RECORD, partial.to_dict())


def _small(detail: dict) -> dict:
    """Keep the record readable: scalars only from each stage's own (larger) output."""
    if not isinstance(detail, dict):
        return {}
    return {k: v for k, v in detail.items() if isinstance(v, (int, float, str, bool)) or v is None}
