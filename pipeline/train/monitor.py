"""What the Train tab calls: form -> config/plan/command, start/stop a training job, read its progress.

The tab holds no logic: each of its callbacks makes one call here. A run is started as a
background job (`python -m pipeline train ... --out runs/<id>`, see pipeline.jobs) and
everything shown about it is read back from the job's files and the run folder, so a page
refresh, a second browser or a studio restart sees the same run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import UserError
from ..jsonl import atomic_write_text
from ..runs import RunFolder, new_run
from ..settings import Settings
from .config import TrainConfig, _deep_merge, preset_overrides, validate_config

KIND = "train"
# The form's fields, in order: the preset, then TrainConfig settings under their own (dotted)
# names, so the form, the config file a job gets and `--set KEY=VALUE` all say the same thing.
FORM_FIELDS = ["preset", "base_model", "persona", "data", "lora.r", "lora.alpha", "lora.dropout",
               "lora.target_modules", "epochs", "batch_size", "grad_accum", "learning_rate", "max_length",
               "warmup_steps", "max_steps", "batching", "lora.layers", "method", "from_run", "pairs", "report_to"]
# How a form value becomes a setting (Gradio numbers arrive as float or str).
_TYPES = {"lora.r": int, "lora.alpha": int, "lora.dropout": float, "epochs": float, "batch_size": int,
          "grad_accum": int, "learning_rate": float, "max_length": int, "warmup_steps": int, "max_steps": int,
          "lora.layers": int}


def _get(d: dict, dotted: str):
    for k in dotted.split("."):
        d = (d or {}).get(k)
    return d


def _set(d: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for k in parents:
        d = d.setdefault(k, {})
    d[last] = value


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
    """The form's values for `preset`, keyed by FORM_FIELDS."""
    cfg = TrainConfig.model_validate(_deep_merge({"base_model": settings.base_model, "persona": settings.persona},
                                                 preset_overrides(preset))).to_dict()
    out = {"preset": preset, **{k: _get(cfg, k) for k in FORM_FIELDS[1:]}}
    out["data"] = out["data"] or default_data(settings, cfg["persona"])
    out["from_run"] = out["from_run"] or ""
    out["pairs"] = ", ".join(out["pairs"] or [])
    return out


def _num(v, typ):
    if v is None or v == "":
        return None
    try:
        return typ(v)
    except (TypeError, ValueError):
        return v  # left as is: validation names the field


def form_values(form: dict) -> tuple[str, dict]:
    """(preset, the TrainConfig dict the form describes): the preset, overridden by every field
    the form fills (a blank text field keeps the preset's value)."""
    preset = form.get("preset") or "seed"
    filled: dict = {}
    for key in FORM_FIELDS[1:]:
        if key not in form:  # a field the caller did not send keeps the preset's value
            continue
        v = form.get(key)
        if isinstance(v, str):
            v = v.strip() or None
        if key in _TYPES:
            v = _num(v, _TYPES[key])
        elif key == "lora.target_modules":
            v = list(v or [])
        elif key == "pairs":  # one text field: files separated by commas or lines
            v = [x.strip() for x in (v or "").replace("\n", ",").split(",") if x.strip()] or None
        if v is not None:
            _set(filled, key, v)
    return preset, _deep_merge(preset_overrides(preset), filled)


def command_argv(config_file: str, out: str) -> list[str]:
    """`python -m pipeline train ...` arguments of a studio job: the whole config as a file."""
    return ["train", "--config", config_file, "--out", out]


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


def start(jobs, settings: Settings, form: dict):
    """Validate everything (config, persona, data, model), write the config into a new run
    folder, then start `train --config <run>/train_config.yaml --out <run>`. Returns the Job."""
    from .runner import prepare

    preset, values = form_values(form)
    p = prepare(values, settings)  # raises ConfigError listing every problem, before any process starts
    run = new_run(settings, preset)
    run.path.mkdir(parents=True)
    atomic_write_text(run.train_config_path, TrainConfig.model_validate(values).to_yaml())
    argv = command_argv(str(run.train_config_path), str(run.path))
    # On a GPU the job launcher frees the studio's engine and refuses a plan that does not fit.
    gpu_gb = p.plan.memory.total_gb if p.hw.cuda and p.plan is not None else None
    return jobs.start(KIND, argv, run_dir=str(run.path), label=f"train {run.id}", gpu_gb=gpu_gb)


def resume(jobs, run_dir: str | None):
    """Resume a stopped or lost run from its last checkpoint, as a job the studio follows."""
    from .runner import run_status

    if not run_dir:
        raise UserError("no run to resume: start one first")
    st = run_status(run_dir)
    for job in jobs.list(KIND):  # the stopped run's own process may still be exiting: a few seconds
        if job.state == "running" and job.run_dir and Path(job.run_dir).resolve() == Path(run_dir).resolve():
            jobs.wait(job.id, timeout=15)
    if not st.get("resumable"):
        raise UserError(f"{Path(run_dir).name} is {st['state']} and cannot be resumed"
                        + ("" if st.get("last_checkpoint") else " (it has no checkpoint yet)"))
    return jobs.start(KIND, ["train", "--resume", str(run_dir)], run_dir=str(run_dir),
                      label=f"resume {Path(run_dir).name}")


def form_from_config(values: dict, preset: str, settings: Settings) -> dict:
    """The form showing a TrainConfig dict (the inverse of `form_values`): the preset's fields,
    then every setting the config names."""
    form = form_defaults(preset, settings)
    for key in FORM_FIELDS[1:]:
        v = _get(values, key)
        if v is not None:
            form[key] = ", ".join(v) if key == "pairs" else v
    return form


def page_form(jobs, settings: Settings) -> dict | None:
    """The form a reloaded page shows while a training job runs: that run's own settings (the
    config file the studio wrote, or the `train:` section of the run's config.yaml for a run
    resumed or started from the CLI), not the preset's defaults."""
    from .config import PRESETS

    job = jobs.latest(KIND)
    if job is None or job.state != "running" or not job.run_dir:
        return None
    run = RunFolder(job.run_dir)
    try:
        if run.train_config_path.is_file():
            values = yaml.safe_load(run.train_config_path.read_text(encoding="utf-8")) or {}
        else:
            values = run.config().get("train") or {}
    except (OSError, yaml.YAMLError, UserError):
        return None
    # The run id ends with the preset it was started from (pipeline.runs.new_run).
    preset = next((p for p in PRESETS if run.id.endswith("-" + p)), None) or values.get("preset") or "seed"
    return form_from_config(values, preset, settings)


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



def attach(jobs, job_id: str | None = None) -> View:
    """The given training job, or the latest one (what a refreshed page re-attaches to)."""
    jv = jobs.view(KIND, job_id, lines=15)
    job = jv.job
    latest = jobs.latest(KIND)
    if latest is not None and latest.state == "running" and (job is None or job.state != "running"):
        job = latest  # a run resumed or started elsewhere (another browser, a Resume click): follow it
        jv = jobs.view(KIND, job.id, lines=15)
    if job is None:
        return View(None, "idle", "No training run yet: pick a preset, check the plan, press Start.")
    view = View(job.id, job.state, "", run_dir=job.run_dir, log=jv.log, command=job.command)
    if job.run_dir and Path(job.run_dir).is_dir():
        try:
            st = RunFolder(job.run_dir).status()
        except UserError:
            st = {}
        view.step, view.max_steps, view.eta_s = st.get("step") or 0, st.get("max_steps") or 0, st.get("eta_s")
        view.metrics = RunFolder(job.run_dir).metrics()
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
            # The run says stopped a moment before its process has exited: Resume waits for that
            # (a start then would be refused as "a train job is already running").
            view.resumable = job.state != "running"
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
    from .tracking import view_command

    try:
        meta = RunFolder(run_dir).config()
    except UserError:
        return None
    train = meta.get("train") or {}
    return view_command(train.get("report_to", "none"), run_dir, Path(str(meta.get("persona") or "taskmaster")).name)


def runs_table(settings: Settings) -> list[dict]:
    from .runner import run_rows

    return run_rows(settings.runs_dir)
