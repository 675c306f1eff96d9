"""What the Train tab calls: form -> config/plan/command, start/stop a training job, read its progress.

The tab holds no logic: each of its callbacks makes one call here. A run is started as a
background job (`python -m pipeline train ... --out runs/<id>`, see pipeline.jobs) and
everything shown about it is read back from the job's files and the run folder, so a page
refresh, a second browser or a studio restart sees the same run.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..settings import Settings
from .config import ConfigError, TrainConfig, _deep_merge, preset_overrides, validate_config

KIND = "train"
# The form's fields, in order (each maps to a TrainConfig setting).
FORM_FIELDS = ["preset", "base_model", "persona", "data", "r", "alpha", "dropout", "target_modules", "epochs",
               "batch_size", "grad_accum", "learning_rate", "max_length", "warmup_steps", "max_steps", "batching",
               "layers", "method", "from_run", "pairs", "report_to"]


def default_data(settings: Settings, persona: str | None = None) -> str:
    """The Data field's default: the Data tab's newest exported version (what the reviewer
    approved), or empty, which trains on the persona's shipped train.jsonl (data_note says so)."""
    from .data import latest_export

    found = latest_export(settings, persona or settings.persona)
    return str(found) if found else ""


def data_note(data: str | None, settings: Settings, persona: str | None = None) -> str:
    """One plain line under the form: which dataset Start will train on."""
    from .data import dataset_record, default_data_path
    from .runner import persona_folder

    path = Path(data) if data else default_data_path(persona_folder(persona or settings.persona, settings))
    rec = dataset_record(path)
    if rec["version"] == "shipped":
        return (f"**Data:** the shipped set (`{rec['path']}`): no exported version from the Data tab"
                + (" is chosen." if default_data(settings, persona) else " yet."))
    return f"**Data:** `{rec['version']}` (`{rec['path']}`, sha256 {str(rec['sha256'])[:12]})."


def form_defaults(preset: str, settings: Settings) -> dict:
    cfg = TrainConfig.model_validate(_deep_merge({"base_model": settings.base_model, "persona": settings.persona},
                                                 preset_overrides(preset)))
    return {"preset": preset, "base_model": cfg.base_model, "persona": cfg.persona,
            "data": cfg.data or default_data(settings, cfg.persona),
            "r": cfg.lora.r, "alpha": cfg.lora.alpha, "dropout": cfg.lora.dropout,
            "target_modules": list(cfg.lora.target_modules), "epochs": cfg.epochs, "batch_size": cfg.batch_size,
            "grad_accum": cfg.grad_accum, "learning_rate": cfg.learning_rate, "max_length": cfg.max_length,
            "warmup_steps": cfg.warmup_steps, "max_steps": cfg.max_steps, "batching": cfg.batching,
            "layers": cfg.lora.layers, "method": cfg.method, "from_run": cfg.from_run or "",
            "pairs": ", ".join(cfg.pairs), "report_to": cfg.report_to}


def _num(v, typ):
    if v is None or v == "":
        return None
    try:
        return typ(v)
    except (TypeError, ValueError):
        return v  # left as is: validation names the field


def form_values(form: dict) -> tuple[str, dict]:
    """(preset, the TrainConfig dict the form describes)."""
    preset = form.get("preset") or "seed"
    values = _deep_merge(preset_overrides(preset), {
        "base_model": (form.get("base_model") or "").strip() or None,
        "persona": (form.get("persona") or "").strip() or None,
        "data": (form.get("data") or "").strip() or None,
        "lora": {"r": _num(form.get("r"), int), "alpha": _num(form.get("alpha"), int),
                 "dropout": _num(form.get("dropout"), float), "target_modules": list(form.get("target_modules") or []),
                 "layers": _num(form.get("layers"), int)},
        "epochs": _num(form.get("epochs"), float), "batch_size": _num(form.get("batch_size"), int),
        "grad_accum": _num(form.get("grad_accum"), int), "learning_rate": _num(form.get("learning_rate"), float),
        "max_length": _num(form.get("max_length"), int), "warmup_steps": _num(form.get("warmup_steps"), int),
        "max_steps": _num(form.get("max_steps"), int), "batching": form.get("batching") or None,
        "method": form.get("method") or None, "from_run": (form.get("from_run") or "").strip() or None,
        "pairs": [x.strip() for x in (form.get("pairs") or "").replace("\n", ",").split(",") if x.strip()] or None,
        "report_to": form.get("report_to") or None,
    })
    values = {k: v for k, v in values.items() if v is not None}
    values["lora"] = {k: v for k, v in values["lora"].items() if v is not None}
    return preset, values


def command_argv(form: dict, out: str) -> list[str]:
    """`python -m pipeline train ...` arguments that reproduce the form (preset + what differs from it)."""
    preset, values = form_values(form)
    base = _deep_merge(preset_overrides(preset), {})
    argv = ["train", "--preset", preset]
    if values.get("persona"):
        argv += ["--persona", values["persona"]]
    if values.get("base_model"):
        argv += ["--base", values["base_model"]]
    if values.get("data"):
        argv += ["--data", values["data"]]
    defaults = TrainConfig.model_validate(base).to_dict()
    if values.get("method") and values["method"] != defaults["method"]:
        argv += ["--method", values["method"]]
    if values.get("from_run"):
        argv += ["--from-run", values["from_run"]]
    for f in values.get("pairs") or []:
        argv += ["--pairs", f]
    if values.get("report_to") and values["report_to"] != defaults["report_to"]:
        argv += ["--report-to", values["report_to"]]
    for k, v in values.items():
        if k in ("persona", "base_model", "data", "method", "from_run", "pairs", "report_to"):
            continue
        if k == "lora":
            for lk, lv in v.items():
                if lv != defaults["lora"].get(lk):
                    argv += ["--set", f"lora.{lk}={json.dumps(lv)}"]
        elif v != defaults.get(k):
            argv += ["--set", f"{k}={json.dumps(v)}"]
    return argv + ["--out", out]


def plan_report(form: dict, settings: Settings) -> str:
    """Markdown: every config problem, or the size/memory plan (with the size warning) and the command."""
    from .runner import persona_folder
    from .plan import plan

    _, values = form_values(form)
    cfg, problems = validate_config(values)
    if problems:
        return "**Fix before starting:**\n\n" + "\n".join(f"- {p}" for p in problems)
    limit = None
    try:
        from ..spec import load_persona

        limit = load_persona(persona_folder(cfg.persona, settings)).spec.deployment.max_adapter_mb
    except Exception as exc:  # shown below; the plan itself does not need the persona
        problems.append(f"persona: {exc}")
    try:
        p = plan(cfg.base_model, cfg.lora.r, cfg.lora.target_modules, settings=settings, max_adapter_mb=limit,
                 batch_size=cfg.batch_size, max_length=cfg.max_length, layers=cfg.lora.layers)
    except Exception as exc:
        return f"**Plan unavailable:** {exc}"
    lines = [data_note(cfg.data, settings, cfg.persona), "",
             "**Plan** (from the model's config, before any weight is loaded)", "", "```", *p.summary_lines(), "```"]
    if problems:
        lines += ["", *[f"- {x}" for x in problems]]
    return "\n".join(lines)


def new_run_dir(settings: Settings, preset: str) -> Path:
    return settings.runs_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{preset}"


def start(jobs, settings: Settings, form: dict):
    """Validate everything (config, persona, data, model), then start the job. Returns the Job."""
    from .runner import prepare

    preset, values = form_values(form)
    p = prepare(values, settings)  # raises ConfigError listing every problem, before any process starts
    out = new_run_dir(settings, preset)
    argv = command_argv(form, str(out))
    # On a GPU the job launcher frees the studio's engine and refuses a plan that does not fit.
    gpu_gb = p.plan.memory.total_gb if p.hw.cuda and p.plan is not None else None
    return jobs.start(KIND, argv, run_dir=str(out), label=f"train {out.name}", gpu_gb=gpu_gb)


def resume(jobs, run_dir: str | None):
    """Resume a stopped or lost run from its last checkpoint, as a job the studio follows."""
    from .runner import run_status

    if not run_dir:
        raise UserError("no run to resume: start one first")
    st = run_status(run_dir)
    if not st.get("resumable"):
        raise UserError(f"{Path(run_dir).name} is {st['state']} and cannot be resumed"
                        + ("" if st.get("last_checkpoint") else " (it has no checkpoint yet)"))
    return jobs.start(KIND, ["train", "--resume", str(run_dir)], run_dir=str(run_dir),
                      label=f"resume {Path(run_dir).name}")


def form_from_argv(argv: list[str], settings: Settings) -> dict:
    """The form that `command_argv` turned into `argv` (its inverse): preset defaults + what differs."""
    def opt(flag):
        return argv[argv.index(flag) + 1] if flag in argv[:-1] else None

    form = form_defaults(opt("--preset") or "seed", settings)
    form.update({k: v for k, v in {"persona": opt("--persona"), "base_model": opt("--base"),
                                   "data": opt("--data") or "", "method": opt("--method"),
                                   "from_run": opt("--from-run"), "report_to": opt("--report-to")}.items()
                 if v is not None})
    pairs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--pairs"]
    if pairs:
        form["pairs"] = ", ".join(pairs)
    for i, a in enumerate(argv[:-1]):
        if a == "--set":
            key, _, raw = argv[i + 1].partition("=")
            key = key.removeprefix("lora.")
            if key in form:
                form[key] = json.loads(raw)
    return form


def page_form(jobs, settings: Settings) -> dict | None:
    """The form a reloaded page shows while a training job runs: that run's own settings (from the
    job's command, or for a resumed run from its config.yaml), not the preset's defaults."""
    import yaml

    job = jobs.latest(KIND)
    if job is None or job.state != "running":
        return None
    argv = list(job.argv)
    if "--resume" not in argv:
        return form_from_argv(argv, settings)
    cfg_path = Path(job.run_dir or "") / "config.yaml"
    if not cfg_path.is_file():
        return None
    meta = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    t = meta.get("train") or {}
    lora = t.get("lora") or {}
    form = form_defaults(t.get("preset") or "seed", settings)
    form.update({k: v for k, v in {
        "base_model": t.get("base_model"), "persona": t.get("persona"), "data": t.get("data") or meta.get("data"),
        "r": lora.get("r"), "alpha": lora.get("alpha"), "dropout": lora.get("dropout"),
        "target_modules": lora.get("target_modules"), "epochs": t.get("epochs"), "batch_size": t.get("batch_size"),
        "grad_accum": t.get("grad_accum"), "learning_rate": t.get("learning_rate"), "max_length": t.get("max_length"),
        "warmup_steps": t.get("warmup_steps"), "max_steps": t.get("max_steps"), "batching": t.get("batching"),
        "layers": lora.get("layers")}.items() if v is not None})
    return form


def stop(jobs, job_id: str | None):
    if not job_id:
        raise UserError("no training job to stop")
    job = jobs.get(job_id)
    if job is None or job.state != "running":
        raise UserError("this training job is not running")
    return jobs.stop(job_id)


@dataclass
class View:
    job_id: str | None
    state: str
    message: str
    step: int = 0
    max_steps: int = 0
    eta_s: float | None = None
    metrics: list[dict] = field(default_factory=list)
    log: str = ""
    run_dir: str | None = None
    command: str = ""
    resumable: bool = False  # stopped or lost with a checkpoint: the tab enables Resume
    tracker: str | None = None  # the command that opens this run in its report_to tracker

    def progress_html(self) -> str:
        if not self.job_id:
            return "<div>No training run yet.</div>"
        frac = self.step / self.max_steps if self.max_steps else 0.0
        eta = f", ETA {int(self.eta_s // 60)}m{int(self.eta_s % 60):02d}s" if self.eta_s and self.state == "running" else ""
        return (f"<div><b>{self.state}</b>: step {self.step}/{self.max_steps or '?'} ({frac:.0%}){eta}"
                f"<br><progress value='{self.step}' max='{max(1, self.max_steps)}' style='width:100%'></progress>"
                f"<br><small>{self.message}</small>"
                + (f"<br><small>Tracker: <code>{html.escape(self.tracker)}</code></small>" if self.tracker else "")
                + "</div>")


def attach(jobs, job_id: str | None = None) -> View:
    """The given training job, or the latest one (what a refreshed page re-attaches to)."""
    from .runner import read_metrics, run_status

    job = jobs.get(job_id) if job_id else jobs.latest(KIND)
    latest = jobs.latest(KIND)
    if latest is not None and latest.state == "running" and (job is None or job.state != "running"):
        job = latest  # a run resumed or started elsewhere (another browser, a Resume click): follow it
    if job is None:
        return View(None, "idle", "No training run yet: pick a preset, check the plan, press Start.")
    view = View(job.id, job.state, "", run_dir=job.run_dir, log=job.log_tail(15), command=job.command)
    if job.run_dir and Path(job.run_dir).is_dir():
        try:
            st = run_status(job.run_dir)
        except UserError:
            st = {}
        view.step, view.max_steps, view.eta_s = st.get("step") or 0, st.get("max_steps") or 0, st.get("eta_s")
        view.metrics = read_metrics(job.run_dir)
        view.tracker = tracker_command(job.run_dir)
        run_state = st.get("state")
        if run_state in ("finished", "stopped", "failed", "lost"):
            view.state = run_state
        if run_state == "running" and job.state != "running":
            # Resumed outside this job (e.g. `python -m pipeline train --resume` in a terminal): the
            # run folder is the truth; its process logs to its own terminal, so show its steps.
            view.state = "running"
            view.message = (f"running (resumed outside the studio, pid {st.get('pid')}); the log below is the "
                            f"run's metrics, the process prints to its own terminal")
            view.log = "\n".join(f"step {m['step']}: loss {float(m['loss']):.4f}" for m in view.metrics[-15:])
        if st.get("error"):
            view.message = f"error: {st['error']}"
        elif run_state in ("stopped", "lost") and st.get("resumable"):
            view.resumable = True
            view.message = (f"{run_state}; adapter so far in {job.run_dir}/adapter. Press Resume, or run "
                            f"python -m pipeline train --resume {job.run_dir}")
        elif run_state == "finished":
            view.message = f"finished; adapter in {job.run_dir}/adapter"
    if job.state == "failed" and not view.message:
        view.state, view.message = "failed", "the job failed before training started; see the log below"
    if job.state == "running" and not view.message:
        view.message = f"running as job {job.id} (pid {job.pid}); training continues if this page is closed"
    return view


def tracker_command(run_dir: str | Path) -> str | None:
    """How to open a run in the tracker its config.yaml names (report_to), e.g. `tensorboard --logdir runs`."""
    import yaml

    from .tracking import view_command

    try:
        meta = yaml.safe_load((Path(run_dir) / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    train = meta.get("train") or {}
    return view_command(train.get("report_to", "none"), run_dir, Path(str(meta.get("persona") or "taskmaster")).name)


def runs_table(settings: Settings) -> list[dict]:
    from .runner import list_runs

    return list_runs(settings.runs_dir)
