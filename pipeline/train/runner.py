"""One training run = one folder, written as it goes so that any other process can follow it.

    runs/<id>/
      config.yaml         what ran: base_model, persona, system_prompt, data, lora (top level, for the
                          evaluate/package stages) + the whole TrainConfig under `train:`, what `auto`
                          resolved to under `resolved:`, the size plan under `plan:`
      status.json         {"state": queued|running|stopped|failed|finished, "error", "step", "max_steps", "pid", ...}
      metrics.jsonl       one line per logged step: step, epoch, loss, learning_rate, grad_norm,
                          tokens_per_s, tokens, elapsed_s, eta_s
      checkpoints/        Trainer checkpoints (adapter + optimizer + scheduler + RNG): what resume reads
      adapter/            the PEFT adapter (adapter_config.json, adapter_model.safetensors) + tokenizer files
      train_summary.json  final_loss, first_loss, runtime_s, train_tokens, adapter_size_bytes, data_sha256, ...

Stop: SIGTERM (the studio's Stop, `kill`, Ctrl-C) finishes the current optimizer step, saves a
checkpoint and the adapter so far, and marks the run `stopped`. A run killed hard (SIGKILL, power
loss) keeps `running` in status.json with a dead pid: `run_status` reports it as `lost`, and
`resume` continues from its last checkpoint either way.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import UserError
from ..jsonl import append_jsonl, atomic_write_text, write_json
from ..runs import STATES, RunFolder, list_runs
from ..settings import Settings
from .checkpoints import checkpoint_step, intact_checkpoint
from .config import ConfigError, Hardware, Resolved, TrainConfig, load_config, parse_config, resolve
from .data import dataset_record, default_data_path, load_training_records, tokenize_records

# File names inside a run folder: pipeline/runs.py owns the layout; these names stay for callers.
CONFIG = "config.yaml"
SUMMARY = "train_summary.json"
ADAPTER = "adapter"
CHECKPOINTS = "checkpoints"


# ---- status (read and written through pipeline.runs.RunFolder) ---------------------------------

def write_status(run_dir: Path, state: str, **extra) -> dict:
    return RunFolder(run_dir).write_status(state, **extra)


def run_status(run_dir: str | Path) -> dict:
    """status.json plus `lost`, the last checkpoint, resumable, has_adapter (RunFolder.status)."""
    return RunFolder(run_dir).status()


def last_checkpoint(run_dir: Path) -> Path | None:
    return RunFolder(run_dir).last_checkpoint()


def read_metrics(run_dir: str | Path) -> list[dict]:
    return RunFolder(run_dir).metrics()


def run_rows(runs_dir: Path) -> list[dict]:
    """One table row per run folder under runs_dir, newest first: state and summary figures
    (`train list`, the Train tab's runs table)."""
    out = []
    for run in list_runs(runs_dir, where=lambda r: r.config_path.is_file()):
        try:
            st = run.status()
            summ, meta = run.summary(), run.config()
        except UserError:
            continue
        ds = meta.get("dataset") or {}
        out.append({"run": run.id, "state": st["state"], "base_model": meta.get("base_model"),
                    "dataset": (f"{ds.get('version')} · {ds.get('count')} conv. · {str(ds.get('sha256'))[:8]}"
                                if ds else None),
                    "r": (meta.get("lora") or {}).get("r"), "step": st.get("step"), "max_steps": st.get("max_steps"),
                    "first_loss": summ.get("first_loss"), "final_loss": summ.get("final_loss"),
                    "adapter_mb": round(summ["adapter_size_bytes"] / 1e6, 2) if summ.get("adapter_size_bytes") else None,
                    "runtime_s": summ.get("runtime_s"), "path": str(run.path)})
    return out


# ---- preflight ----------------------------------------------------------------------------------

@dataclass
class Prepared:
    cfg: TrainConfig
    res: Resolved
    hw: Hardware
    persona_dir: Path
    system_prompt: str
    max_adapter_mb: float | None
    max_final_loss: float | None
    data_path: Path
    records: list
    model_path: str
    plan: object
    problems: list[str] = field(default_factory=list)
    settings: Settings | None = None


def persona_folder(name: str, settings: Settings) -> Path:
    p = Path(name).expanduser()
    return p if p.is_dir() or "/" in name else settings.persona_dir(name)


def prepare(config: TrainConfig | dict, settings: Settings, hw: Hardware | None = None) -> Prepared:
    """Validate everything a run needs (config, persona, data, model, module names) and report every
    problem at once, before any weight is loaded."""
    from ..models import local_path
    from ..spec import SpecError, load_persona
    from .plan import plan as make_plan

    hw = hw or Hardware.detect(settings.cache_dir)
    problems: list[str] = []
    try:
        cfg = parse_config(config, hw)
    except ConfigError as exc:
        problems += exc.problems
        cfg = None
    values = config.to_dict() if isinstance(config, TrainConfig) else dict(config or {})
    if cfg is not None and cfg.method != "sft":
        problems += _continue_from_parent(cfg)
    persona_name = (cfg.persona if cfg else values.get("persona")) or settings.persona
    base = (cfg.base_model if cfg else values.get("base_model")) or "smollm2-135m"
    pdir = persona_folder(str(persona_name), settings)
    system_prompt, max_mb, max_loss = "", None, None
    try:
        persona = load_persona(pdir)
        system_prompt = persona.spec.system_prompt.strip()
        max_mb = persona.spec.deployment.max_adapter_mb
        max_loss = persona.spec.success_criteria.max_final_train_loss
    except SpecError as exc:
        problems += [f"persona: {p}" for p in exc.problems]
    data_path = Path((cfg.data if cfg else values.get("data")) or default_data_path(pdir))
    records = []
    try:
        records = load_training_records(data_path)
    except UserError as exc:
        problems.append(f"data: {exc}")
    model_path = ""
    try:
        model_path = local_path(base, settings, purpose="train")
    except Exception as exc:
        problems.append(f"base_model: {exc}")
    plan = None
    if cfg is not None:
        try:
            res = resolve(cfg, hw)
            plan = make_plan(base, cfg.lora.r,
                             cfg.lora.target_modules, settings=settings, adapter_dtype=res.adapter_dtype,
                             max_adapter_mb=max_mb, batch_size=cfg.batch_size, max_length=cfg.max_length,
                             layers=cfg.lora.layers)
        except UserError as exc:
            msg = str(exc)
            where = "" if msg.startswith("lora.") else (
                "lora.target_modules: " if "target modules" in msg else "base_model: ")
            if not (where == "base_model: " and any(p.startswith("base_model:") for p in problems)):
                problems.append(where + msg)
    if problems:
        raise ConfigError(problems)
    return Prepared(cfg, resolve(cfg, hw), hw, pdir, system_prompt, max_mb, max_loss, data_path, records,
                    model_path, plan, settings=settings)


def _continue_from_parent(cfg: TrainConfig) -> list[str]:
    """A preference round continues its SFT parent: same base model, the parent's LoRA shape
    (recorded in this run's config.yaml, so plan, evaluation and package read the right one)."""
    from .config import LoraSettings

    parent = Path(cfg.from_run)
    if not (parent / ADAPTER / "adapter_config.json").is_file():
        return [f"from_run: {parent} has no {ADAPTER}/adapter_config.json; pass a finished SFT run folder (runs/<id>)"]
    try:
        meta = yaml.safe_load((parent / CONFIG).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        return [f"from_run: {parent / CONFIG} unreadable ({exc}); pass a run folder made by `pipeline train`"]
    lora = meta.get("lora") or {}
    try:
        cfg.base_model = meta.get("base_model") or cfg.base_model
        cfg.lora = LoraSettings(**{k: v for k, v in lora.items() if k in LoraSettings.model_fields})
    except Exception as exc:
        return [f"from_run: {parent / CONFIG}: {exc}"]
    return []


# ---- progress callback -------------------------------------------------------------------------

def _callback_class():
    from transformers import TrainerCallback

    class RunFolderCallback(TrainerCallback):
        """metrics.jsonl + status.json as the Trainer logs; turns a stop request into save-and-stop."""

        def __init__(self, run_dir: Path, stop_event: threading.Event, echo: bool, token_offset: int = 0,
                     writes: bool = True):
            self.run_dir, self.stop_event, self.echo, self.writes = run_dir, stop_event, echo, writes
            # tokens trained before the checkpoint this process resumed from (TRL counts from 0 again)
            self.token_offset = token_offset
            self.t0 = time.time()
            self.start_step = None
            self.last = None  # (time, tokens)
            self.first_loss = None
            self.last_loss = None
            self.tokens = 0

        def on_train_begin(self, args, state, control, **kw):
            self.start_step = state.global_step
            self.t0 = time.time()
            if self.writes:
                write_status(self.run_dir, "running", step=state.global_step, max_steps=state.max_steps,
                         epoch=state.epoch or 0.0)

        def on_step_end(self, args, state, control, **kw):
            if self.stop_event.is_set():
                control.should_save = True  # a checkpoint to resume from
                control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            if "loss" not in logs or not self.writes:
                return
            now = time.time()
            tokens = int(logs.get("num_tokens", 0)) + self.token_offset
            done = max(1, state.global_step - (self.start_step or 0))
            elapsed = now - self.t0
            eta = elapsed / done * max(0, state.max_steps - state.global_step)
            tps = None
            if self.last is not None and tokens > self.last[1] and now > self.last[0]:
                tps = (tokens - self.last[1]) / (now - self.last[0])
            elif tokens and elapsed > 0:
                tps = tokens / elapsed
            self.last = (now, tokens)
            self.tokens = tokens
            row = {"step": state.global_step, "max_steps": state.max_steps, "epoch": round(state.epoch or 0.0, 4),
                   "loss": float(logs["loss"]), "learning_rate": logs.get("learning_rate"),
                   "grad_norm": logs.get("grad_norm"), "tokens": tokens,
                   "tokens_per_s": round(tps, 1) if tps else None,
                   "elapsed_s": round(elapsed, 1), "eta_s": round(eta, 1), "time": now}
            if self.first_loss is None:
                self.first_loss = row["loss"]
            self.last_loss = row["loss"]
            append_jsonl(RunFolder(self.run_dir).metrics_path, row)
            write_status(self.run_dir, "running", step=state.global_step, max_steps=state.max_steps,
                         epoch=row["epoch"], loss=row["loss"], eta_s=row["eta_s"])
            if self.echo:
                print(f"step {state.global_step}/{state.max_steps}  epoch {row['epoch']:.2f}  loss {row['loss']:.4f}  "
                      f"lr {row['learning_rate'] or 0:.2e}  {row['tokens_per_s'] or 0:.0f} tok/s  "
                      f"ETA {_fmt_s(eta)}", flush=True)

    return RunFolderCallback


def is_main_process() -> bool:
    """Rank 0 of `accelerate launch`/torchrun, or a plain process: the one that writes the run folder."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def main_process_first(cpu: bool):
    """Rank 0 runs the block first and the other ranks after it (accelerate's barrier, as TRL prepares
    its datasets); a plain process just runs it. `cpu`: gloo ranks (accelerate only sees several CPU
    processes as distributed when told it runs on CPU; otherwise its barrier silently does nothing)."""
    import contextlib

    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return contextlib.nullcontext()
    from accelerate import PartialState

    return PartialState(cpu=cpu).main_process_first()


def _fmt_s(s: float) -> str:
    s = int(s)
    return f"{s // 60}m{s % 60:02d}s"


# ---- the run -------------------------------------------------------------------------------------

def _backend(name: str):
    if name == "unsloth":
        from .backend_unsloth import UnslothBackend

        return UnslothBackend
    from .backend_trl import TrlBackend

    return TrlBackend


class _StopSignals:
    """SIGTERM/SIGINT -> a stop request (main thread only; elsewhere the caller sets the event)."""

    def __init__(self, event: threading.Event):
        self.event, self.old = event, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.old[sig] = signal.signal(sig, self._on)
        return self

    def _on(self, signum, frame):
        if self.event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: give up at once
        self.event.set()
        print(f"stop requested ({signal.Signals(signum).name}): finishing this step, then saving", flush=True)

    def __exit__(self, *exc):
        for sig, h in self.old.items():
            signal.signal(sig, h)


def config_record(p: Prepared) -> dict:
    """config.yaml: the top-level keys other stages read, then everything else."""
    return {
        "base_model": p.cfg.base_model,
        "method": p.cfg.method,
        "from_run": p.cfg.from_run,
        "persona": str(p.persona_dir),
        "system_prompt": p.system_prompt,
        "data": str(p.data_path),
        "dataset": dataset_record(p.data_path, len(p.records)),
        "lora": {"r": p.cfg.lora.r, "alpha": p.cfg.lora.alpha, "dropout": p.cfg.lora.dropout,
                 "target_modules": list(p.cfg.lora.target_modules), "layers": p.cfg.lora.layers},
        "train": p.cfg.to_dict(),
        "resolved": p.res.model_dump(),
        "hardware": p.hw.model_dump(),
        "plan": {"trainable_params": p.plan.trainable_params, "adapter_bytes": p.plan.adapter_bytes,
                 "adapter_dtype": p.plan.adapter_dtype, "max_adapter_mb": p.plan.max_adapter_mb,
                 "fits": p.plan.fits} if p.plan else None,
        "command": "python " + " ".join(sys.argv) if sys.argv and sys.argv[0] else None,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _one_gpu_unless_launched(echo: bool) -> None:
    """A plain process on a multi-GPU machine would see every GPU, and the Trainer would wrap the
    model in DataParallel (which TRL refuses). Outside `accelerate launch` (no WORLD_SIZE) the run
    gets GPU 0 only; `accelerate launch --num_processes N -m pipeline train ...` uses N GPUs.
    CUDA reads CUDA_VISIBLE_DEVICES at its first use, which has not happened yet here."""
    if os.environ.get("WORLD_SIZE") or os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return
    try:
        gpus = [ln for ln in subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                            timeout=20).stdout.splitlines() if ln.startswith("GPU ")]
    except (OSError, subprocess.SubprocessError):
        return
    if len(gpus) > 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = "0"
        if echo:
            print(f"{len(gpus)} GPUs visible: this run uses GPU 0; for all of them run "
                  f"`accelerate launch --num_processes {len(gpus)} -m pipeline train ...`", flush=True)


def run_training(config: TrainConfig | dict | None, out_dir: str | Path, settings: Settings, *,
                 resume: bool = False, stop_event: threading.Event | None = None, echo: bool = True) -> dict:
    """Train one LoRA adapter into `out_dir` (see the module docstring for the folder); return the summary.

    `resume=True` continues the run in `out_dir` from its last checkpoint with its own config.yaml
    (`config` may then be None). `stop_event` lets a caller in another thread request a stop."""
    out = Path(out_dir)
    stop_event = stop_event or threading.Event()
    _one_gpu_unless_launched(echo)
    if resume:
        if not (out / CONFIG).is_file():
            raise UserError(f"{out}: nothing to resume (no {CONFIG}); start a run with --out {out}")
        st = run_status(out)
        if st["state"] == "running":
            raise UserError(f"{out}: this run is still running (pid {st.get('pid')}); stop it before resuming")
        if st["state"] == "finished":
            raise UserError(f"{out}: this run already finished; start a new run with another --out")
        config = load_config(out / CONFIG, run=True)
    elif (out / CONFIG).is_file() and is_main_process():
        raise UserError(f"{out} already holds a run; resume it with `python -m pipeline train --resume {out}` "
                        f"or choose a new --out (nothing was overwritten)")
    p = prepare(config, settings)
    ckpt, skipped = intact_checkpoint(out) if resume else (None, [])
    if resume and ckpt is None and skipped:
        raise UserError(f"{out}: no intact checkpoint to resume from (" +
                        "; ".join(f"{name}: {why}" for name, why in skipped) +
                        f"); start a new run with another --out")
    out.mkdir(parents=True, exist_ok=True)
    main = is_main_process()
    if not main:  # another rank of `accelerate launch`: rank 0 alone writes the run folder
        echo = False
        print(f"rank {os.environ.get('RANK')} of {os.environ.get('WORLD_SIZE')}: {p.res.backend} backend, "
              f"{len(p.records)} conversations, run folder {out} (written by rank 0)", flush=True)
    if not resume and main:
        atomic_write_text(out / CONFIG, yaml.safe_dump(config_record(p), sort_keys=False, allow_unicode=True))
        write_status(out, "queued", pid=os.getpid(), backend=p.res.backend)
    if main:
        write_status(out, "running", pid=os.getpid(), backend=p.res.backend, resumed_from=str(ckpt) if ckpt else None,
                     skipped_checkpoints=[f"{name}: {why}" for name, why in skipped])
    for name, why in skipped:  # said even when quiet: which work is redone, and why
        print(f"skipping {name}: {why}; resuming from {ckpt.name} (the broken one is kept as "
              f"{CHECKPOINTS}/broken-{name})", file=sys.stderr, flush=True)
        if main:
            _set_aside(out / CHECKPOINTS / name)
    if echo:
        print(f"run {out}: {p.res.backend} backend on {p.hw.device_name}, {p.res.precision}, {len(p.records)} "
              f"approved conversations from {p.data_path}" + (f", resuming from {ckpt.name}" if ckpt else ""), flush=True)
        print("  " + p.res.backend_note, flush=True)
        for line in p.plan.summary_lines():
            print("  " + line, flush=True)
        from .tracking import view_command

        view = view_command(p.cfg.report_to, out, p.persona_dir.name)
        if view:
            print(f"  logged to {p.cfg.report_to}: {view}", flush=True)
    t0 = time.time()
    try:
        with _StopSignals(stop_event):
            summary = _train(p, out, ckpt, stop_event, echo, t0, skipped)
    except BaseException as exc:
        msg = f"{type(exc).__name__}: {exc}" if not isinstance(exc, UserError) else str(exc)
        if not main:
            pass
        elif isinstance(exc, KeyboardInterrupt):
            write_status(out, "stopped", pid=None, note="interrupted before a checkpoint could be saved")
        else:
            write_status(out, "failed", pid=None, error=msg)
        raise
    return summary


def _train(p: Prepared, out: Path, ckpt: Path | None, stop_event: threading.Event, echo: bool, t0: float,
           skipped: list[tuple[str, str]] = ()) -> dict:
    if p.cfg.method != "sft":
        return _train_preference(p, out, ckpt, stop_event, echo, t0, skipped)
    backend = _backend(p.res.backend)(p.cfg, p.res)
    model, tokenizer = backend.load(p.model_path)
    main = is_main_process()
    if stop_event.is_set():  # stopped while loading: nothing trained, nothing to save
        if main:
            write_status(out, "stopped", pid=None, step=0)
        return {"stopped": True, "steps": 0}
    data = tokenize_records(tokenizer, p.records, p.system_prompt, p.cfg.max_length)
    if ckpt is not None:
        recorded = (yaml.safe_load((out / CONFIG).read_text()) or {}).get("data_sha256")
        if recorded and recorded != data.data_sha256:
            raise UserError(f"the training data changed since {out} started ({p.data_path}); "
                            f"resume needs the same data: restore it or start a new run")
    elif main:
        meta = yaml.safe_load((out / CONFIG).read_text()) or {}
        meta["data_sha256"] = data.data_sha256
        meta["data_rows"] = {"examples": len(data.rows), "tokens": data.total_tokens,
                             "assistant_tokens": data.label_tokens, "truncated": data.n_truncated,
                             "dropped": data.n_dropped}
        atomic_write_text(out / CONFIG, yaml.safe_dump(meta, sort_keys=False, allow_unicode=True))
    token_offset = _rewind_metrics(out, ckpt) if ckpt is not None and main else 0
    cb = _callback_class()(out, stop_event, echo, token_offset, writes=main)
    from .backend_trl import build_trainer

    trainer = build_trainer(model, tokenizer, data.rows, p.cfg, p.res, out, [cb])
    result = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    return _finish(p, out, ckpt, stop_event, echo, t0, trainer, result, model, tokenizer, cb,
                   {"tokens_per_epoch": data.total_tokens, "assistant_tokens_per_epoch": data.label_tokens,
                    "n_examples": len(data.rows), "data_sha256": data.data_sha256}, skipped)


def _train_preference(p: Prepared, out: Path, ckpt: Path | None, stop_event: threading.Event, echo: bool,
                      t0: float, skipped: list[tuple[str, str]] = ()) -> dict:
    """DPO / KTO from the parent SFT adapter. The pairs are built once into out/pairs.jsonl (self-play on
    the curated data + the given files) and read back on resume, so a resumed run trains on the same rows."""
    import gc

    from . import preference as pref

    main = is_main_process()
    pairs_path = out / pref.PAIRS_FILE
    # Under `accelerate launch` rank 0 builds the pairs (self-play loads an engine) and writes them;
    # the other ranks wait for it and read the same file, so every rank trains on the same rows.
    with main_process_first(cpu=p.res.device == "cpu"):
        if pairs_path.is_file():
            rows = pref.read_pairs([pairs_path])
        elif not main:
            raise UserError(f"rank {os.environ.get('RANK')}: rank 0 wrote no {pairs_path} (see its error)")
        else:
            rows = pref.read_pairs(p.cfg.pairs) if p.cfg.pairs else []
            if p.cfg.self_play:
                rows += _self_play(p, echo)
            pref.write_pairs(pairs_path, rows)
    rows, unusable = pref.rows_for(p.cfg.method, rows)
    if not rows:
        raise UserError(f"no {p.cfg.method} rows to train on ({unusable} KTO rows cannot make DPO pairs): "
                        f"pass --pairs from `python -m pipeline arena export --format {p.cfg.method}` or raise self_play")
    sha = pref.pairs_sha256(rows)
    meta = yaml.safe_load((out / CONFIG).read_text()) or {}
    if ckpt is None and main:
        meta["data_sha256"] = sha
        meta["data_rows"] = {"pairs": len(rows), "unusable": unusable,
                             "sources": {s: sum(1 for r in rows if r.get("source") == s)
                                         for s in sorted({r.get("source") or "?" for r in rows})}}
        atomic_write_text(out / CONFIG, yaml.safe_dump(meta, sort_keys=False, allow_unicode=True))
    elif ckpt is not None and meta.get("data_sha256") and meta["data_sha256"] != sha:
        raise UserError(f"{out / pref.PAIRS_FILE} changed since the run started; resume needs the same pairs")
    if echo:
        print(f"{p.cfg.method}: {len(rows)} rows from {pairs_path} (parent adapter {p.cfg.from_run})", flush=True)
    gc.collect()
    if stop_event.is_set():
        if main:
            write_status(out, "stopped", pid=None, step=0)
        return {"stopped": True, "steps": 0}
    model, tokenizer = pref.load_policy(p.model_path, Path(p.cfg.from_run) / ADAPTER, p.res)
    offset = _rewind_metrics(out, ckpt) if ckpt is not None and main else 0
    cb = _callback_class()(out, stop_event, echo, offset, writes=main)
    trainer = pref.build_preference_trainer(model, tokenizer, rows, p.cfg, p.res, out, [cb], p.system_prompt)
    result = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    return _finish(p, out, ckpt, stop_event, echo, t0, trainer, result, model, tokenizer, cb,
                   {"n_examples": len(rows), "data_sha256": sha, "method": p.cfg.method,
                    "parent_run": str(p.cfg.from_run)}, skipped, adapters=["default"])


def _self_play(p: Prepared, echo: bool) -> list[dict]:
    """Self-play pairs from the first `self_play` curated conversations, with the parent adapter, in its
    own short-lived engine (freed before training loads the policy: one model in memory at a time)."""
    import random

    from ..inference import ChatEngine
    from ..judges import get_judge
    from ..spec import load_persona
    from . import preference as pref

    settings = p.settings or Settings()
    records = list(p.records)
    random.Random(p.cfg.seed).shuffle(records)  # a spread over categories, the same for the same seed
    records = records[:p.cfg.self_play]
    persona = load_persona(p.persona_dir)
    engine = ChatEngine(p.model_path, settings)
    engine.attach_adapter("parent", Path(p.cfg.from_run) / ADAPTER)
    judge = get_judge("rubric", persona, settings)
    if echo:
        print(f"self-play: {len(records)} curated conversations x {p.cfg.self_play_samples} replies of the parent "
              f"adapter, judged by {judge.name}", flush=True)
    rows = pref.self_play_pairs(records, engine=engine, adapter="parent", judge=judge, system_prompt=p.system_prompt,
                                samples=p.cfg.self_play_samples, seed=p.cfg.seed,
                                echo=(lambda m: print(m, flush=True)) if echo else None)
    engine.close()
    del engine
    return rows


def _finish(p: Prepared, out: Path, ckpt, stop_event, echo, t0, trainer, result, model, tokenizer, cb, data: dict,
            skipped=(), adapters: list[str] | None = None) -> dict:
    stopped = stop_event.is_set() and trainer.state.global_step < trainer.state.max_steps
    if not is_main_process():  # DDP kept every rank's weights equal: rank 0 saves the one adapter
        print(f"rank {os.environ.get('RANK')}: trained {trainer.state.global_step} steps", flush=True)
        return {"state": "stopped" if stopped else "finished", "steps": trainer.state.global_step,
                "rank": int(os.environ["RANK"])}
    adapter_bytes = save_adapter(model, tokenizer, out / ADAPTER, p.res.adapter_dtype, adapters)
    metrics = read_metrics(out)
    losses = [m["loss"] for m in metrics]
    summary = {
        "state": "stopped" if stopped else "finished",
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "mean_train_loss": result.metrics.get("train_loss"),
        "max_final_train_loss": p.max_final_loss,
        "loss_target_met": (losses[-1] < p.max_final_loss) if losses and p.max_final_loss else None,
        "runtime_s": round(sum(_segments(metrics)) if ckpt else time.time() - t0, 1),
        "train_runtime_s": round(result.metrics.get("train_runtime", 0.0), 1),
        "steps": trainer.state.global_step,
        "max_steps": trainer.state.max_steps,
        "epochs": round(trainer.state.epoch or 0.0, 3),
        "train_tokens": cb.tokens or (metrics[-1]["tokens"] if metrics else 0),
        **data,
        "adapter_size_bytes": adapter_bytes,
        "adapter_dtype": p.res.adapter_dtype,
        "planned_adapter_bytes": p.plan.adapter_bytes if p.plan else None,
        "max_adapter_mb": p.max_adapter_mb,
        "backend": p.res.backend,
        "device": p.hw.device_name,
        "world_size": trainer.args.world_size,
        "resumed_from": str(ckpt) if ckpt else None,
        "skipped_checkpoints": [f"{name}: {why}" for name, why in skipped],
    }
    write_json(out / SUMMARY, summary)
    write_status(out, summary["state"], pid=None, step=trainer.state.global_step, max_steps=trainer.state.max_steps)
    if echo:
        print(f"{summary['state']}: {summary['steps']}/{summary['max_steps']} steps, loss {summary['first_loss']} -> "
              f"{summary['final_loss']}, adapter {adapter_bytes:,} bytes in {out / ADAPTER}", flush=True)
    return summary


def _set_aside(ckpt: Path) -> None:
    """Rename a broken checkpoint out of the Trainer's way (it would save over it, or rotate it
    as if it were good); nothing is deleted."""
    target = ckpt.with_name(f"broken-{ckpt.name}")
    if target.exists():
        target = ckpt.with_name(f"broken-{ckpt.name}-{int(time.time())}")
    ckpt.rename(target)


def _rewind_metrics(out: Path, ckpt: Path) -> int:
    """Drop metrics.jsonl rows past the checkpoint (steps the resumed run will train again, e.g.
    after a kill -9 between two saves); return the token count at the checkpoint."""
    step = checkpoint_step(ckpt)
    rows = read_metrics(out)
    kept = [m for m in rows if m.get("step", 0) <= step]
    if len(kept) != len(rows):
        atomic_write_text(RunFolder(out).metrics_path, "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in kept))
    return int(kept[-1].get("tokens") or 0) if kept else 0


def _segments(metrics: list[dict]) -> list[float]:
    """Wall time over resumed segments: elapsed_s restarts at each (re)start."""
    segs, prev = [], None
    for m in metrics:
        if prev is not None and m["elapsed_s"] < prev:
            segs.append(prev)
        prev = m["elapsed_s"]
    if prev is not None:
        segs.append(prev)
    return segs


def save_adapter(model, tokenizer, folder: Path, dtype: str, adapters: list[str] | None = None) -> int:
    """PEFT files + tokenizer files, LoRA weights cast to `dtype`; written beside and renamed into place.
    `adapters`: only these (a preference run also holds TRL's frozen "ref" copy of its parent)."""
    import shutil

    import torch

    td = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    for name, prm in model.named_parameters():
        if "lora_" in name:
            prm.data = prm.data.to(td)
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    kw = {"selected_adapters": adapters} if adapters else {}
    model.save_pretrained(str(tmp), save_embedding_layers=False, **kw)
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return (folder / "adapter_model.safetensors").stat().st_size
