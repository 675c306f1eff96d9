"""The whole pipeline headless: train -> evaluate -> package -> validate, into one run folder.

    python -m pipeline run --preset cpu-demo --out runs/demo

This is the seed's end-to-end "persona tuner" on the shipped data (data/personas/<persona>/
train.jsonl and its held-out eval set), with the embedded model and the offline rubric judge by
default, so it needs no network and no API key. Every stage is the library's own function,
the same one the CLI subcommand and the studio's tab call; this module only sequences them and
keeps the record:

    runs/<id>/                  the training run folder (config.yaml, metrics.jsonl, adapter/, ...)
      eval/                     the evaluation stage's output (results, summary.md, replies)
      package/                  the deployable package (adapter + README + PERSONA_SPEC.md + ...)
      pipeline_run.json         which stages ran, their wall times and outcomes, the gate table

Each stage runs as its own `python -m pipeline <stage>` subprocess (the very command a user
would type), so what one stage loads (unsloth's patches, the training model's memory) never
leaks into the next, and every child gets the run's settings as its environment
(`Settings.to_env()`). SIGTERM (the studio's Stop) is forwarded to the running stage, which
saves what it has.

Re-running the same command continues: a finished stage whose output is present is skipped,
an interrupted training resumes from its last checkpoint.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .jsonl import write_json
from .runs import RunFolder
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


class StageStopped(UserError):
    """The stage was stopped (SIGTERM, Ctrl-C, the studio's Stop) after saving what it had."""


@dataclass
class StageResult:
    name: str
    state: str                  # done | skipped | stopped | failed | not run
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
        if states & {"failed", "stopped"}:
            return 1
        return 0

    def to_dict(self) -> dict:
        return {"out_dir": str(self.out_dir), "preset": self.preset, "wall_s": round(self.wall_s, 1),
                "approved": self.approved, "gates": self.gates,
                "stages": [{"name": s.name, "state": s.state, "seconds": round(s.seconds, 1), "message": s.message,
                            "detail": s.detail} for s in self.stages]}


# ---- the stages: each one a `python -m pipeline ...` child process --------------------------------

class _Child:
    """The running stage's process, so that a SIGTERM sent to `pipeline run` reaches it."""

    proc: subprocess.Popen | None = None

    @classmethod
    def forward_sigterm(cls, signum, frame):
        if cls.proc is not None and cls.proc.poll() is None:
            cls.proc.send_signal(signal.SIGTERM)
        else:
            raise KeyboardInterrupt


def run_stage(argv: list[str], settings: Settings, echo: bool) -> None:
    """`python -m pipeline <argv>` with the settings as its environment; its output is passed
    through (or dropped when not echoing). Raises UserError with the child's error message
    when it exits non-zero."""
    env = settings.job_env()
    env.setdefault("PYTHONUNBUFFERED", "1")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", *argv], env=env, cwd=str(Path(__file__).resolve().parent.parent),
                            stdout=None if echo else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _Child.proc = proc
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, _Child.forward_sigterm) if main else None
    try:
        err_lines = []
        for line in proc.stderr:  # stderr: shown as it comes, and its error line kept for the record
            if echo:
                sys.stderr.write(line)
            err_lines.append(line.rstrip("\n"))
            del err_lines[:-40]
        code = proc.wait()
    finally:
        _Child.proc = None
        if main:
            signal.signal(signal.SIGTERM, old)
    if code != 0:
        # The CLI prints a user's mistake as "error: ..." (possibly over several lines): keep that.
        starts = [i for i, ln in enumerate(err_lines) if ln.startswith("error: ")]
        tail = err_lines[starts[-1]:] if starts else err_lines[-5:]
        msg = "\n".join(tail).removeprefix("error: ") or f"exit status {code}"
        raise UserError(f"`python -m pipeline {' '.join(argv)}` failed: {msg}")


def stage_train(out: Path, preset: RunPreset, settings: Settings, persona: str, base: str, echo: bool) -> tuple[str, dict]:
    run = RunFolder(out)
    if run.summary_path.is_file() and run.is_finished():
        return "skipped", run.summary()
    if run.config_path.is_file():
        argv = ["train", "--resume", str(out)]
    else:
        argv = ["train", "--preset", preset.train_preset, "--base", base, "--persona", persona, "--out", str(out)]
    run_stage(argv + ([] if echo else ["--quiet"]), settings, echo)
    summary = run.summary()
    if not run.is_finished():
        raise StageStopped(f"training {run.state or 'did not finish'} at step {summary.get('steps')}; "
                           f"rerun the same command to resume it from its last checkpoint")
    return "done", summary


def stage_evaluate(out: Path, preset: RunPreset, settings: Settings, persona: str, base: str, echo: bool) -> tuple[str, dict]:
    run = RunFolder(out)
    if not run.has_results():
        argv = ["evaluate", "--run", str(out), "--judge", preset.judge]
        run_stage(argv + (["--limit", str(preset.eval_limit)] if preset.eval_limit else []), settings, echo)
        state = "done"
    else:
        state = "skipped"
    res = run.results()
    a = res.adapter_metrics
    return state, {"decision": res.decision, "overall_mean": a.get("overall_mean"),
                   "boundary_violations": a.get("boundary_violations"), "ab_win_rate": res.ab.win_rate}


def stage_package(out: Path, preset: RunPreset, settings: Settings, persona: str, base: str, echo: bool) -> tuple[str, dict]:
    run = RunFolder(out)
    run_stage(["package", "--run", str(out), "--out", str(run.package_dir)], settings, echo)
    manifest = json.loads((run.package_dir / "MANIFEST.json").read_text(encoding="utf-8"))
    return "done", {"path": str(run.package_dir), "files": len(manifest.get("files", []))}


def stage_validate(out: Path, preset: RunPreset, settings: Settings, persona: str, base: str, echo: bool) -> tuple[str, dict]:
    package = RunFolder(out).package_dir
    try:
        run_stage(["package", "validate", str(package)], settings, echo)
    except UserError:
        raise UserError(f"the package failed validation (listed above; `python -m pipeline package validate "
                        f"{package}` repeats them): a failing quality gate means REQUIRES ITERATION") from None
    return "done", {"ok": True}


STAGE_FNS = {"train": stage_train, "evaluate": stage_evaluate, "package": stage_package, "validate": stage_validate}


# ---- gates -----------------------------------------------------------------------------------

def read_gates(out: Path) -> tuple[list[dict], bool | None]:
    """The gate records of the run's evaluation (none when it was not evaluated)."""
    res = RunFolder(out).results()
    if res is None:
        return [], None
    return [g.model_dump() for g in res.gates], res.approved


def gate_table(gates: list[dict], approved: bool | None) -> str:
    if not gates:
        return "(no gate table: the evaluation stage did not run)"
    from .evaluation.gates import render_gates
    from .evaluation.results import GateRecord

    return render_gates([GateRecord.model_validate(g) for g in gates], bool(approved))


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
