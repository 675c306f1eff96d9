"""One training run = one folder, and this module is the one place that knows its layout.

    runs/<id>/                    <id> = RUN_ID_FORMAT time + "-" + a label (preset name)
      config.yaml                 what ran (written by pipeline.train.runner)
      status.json                 {"state": queued|running|stopped|failed|finished, "error", "step", "pid", ...}
      metrics.jsonl               one line per logged training step
      checkpoints/checkpoint-N/   Trainer checkpoints: what resume reads
      adapter/                    the PEFT adapter + tokenizer files
      train_summary.json          final_loss, runtime_s, adapter_size_bytes, data_sha256, ...
      eval/EVALUATION_RESULTS.json  the evaluation (pipeline.evaluation.results, one typed model)
      eval/progress.json          how far a running evaluation has got (pipeline.evaluation.progress)
      package/                    the publishable package (pipeline.package)

Every stage, tab and the Arena reach these files through a `RunFolder` (paths as properties,
readers as methods), so nobody else opens status.json or guesses a file's shape. The writers
of status.json are here too (`RunFolder.write_status`), beside their reader. Folders written
before this module existed have the same layout and load unchanged (tests/data/old_run).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import yaml

from .errors import UserError
from .jsonl import read_jsonl, write_json

if TYPE_CHECKING:
    from .evaluation.results import EvaluationResults
    from .settings import Settings

RUN_ID_FORMAT = "%Y%m%d-%H%M%S"
STATES = ("queued", "running", "stopped", "failed", "finished")


def new_run_id(label: str, now: float | None = None) -> str:
    """`20261201-233000-cpu-demo`: sortable by start time, and says what started it."""
    return f"{time.strftime(RUN_ID_FORMAT, time.localtime(now))}-{label}"


@dataclass(frozen=True)
class RunFolder:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    # ---- paths -----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.path / "train_summary.json"

    @property
    def adapter_dir(self) -> Path:
        return self.path / "adapter"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    @property
    def results_path(self) -> Path:
        from .evaluation.results import RESULTS_FILE

        return self.eval_dir / RESULTS_FILE

    @property
    def eval_progress_path(self) -> Path:
        """How far a running evaluation has got (pipeline.evaluation.progress writes and reads it)."""
        from .evaluation.progress import PROGRESS_FILE

        return self.eval_dir / PROGRESS_FILE

    @property
    def package_dir(self) -> Path:
        return self.path / "package"

    @property
    def train_config_path(self) -> Path:
        """The TrainConfig a studio job was started with (`train --config FILE --out RUN`)."""
        return self.path / "train_config.yaml"

    # ---- readers ---------------------------------------------------------------------------
    def exists(self) -> bool:
        """A run folder: it has a config.yaml, a status.json or a saved adapter (an adapter
        copied in by hand is evaluated like any other)."""
        return self.config_path.is_file() or self.status_path.is_file() or self.has_adapter()

    def raw_status(self) -> dict:
        """status.json as written ({} when there is none or it is being rewritten)."""
        return _read_json(self.status_path) or {}

    def status(self) -> dict:
        """status.json plus what only a reader can tell: `lost` (running, but its process is
        gone), the last checkpoint, whether the run can be resumed, whether it has an adapter."""
        from .jobs import pid_alive

        st = _read_json(self.status_path)
        if st is None:
            if not self.config_path.is_file():
                raise UserError(f"{self.path}: not a training run folder (no config.yaml or status.json)")
            st = {"state": "queued"}
        if st.get("state") == "running" and not pid_alive(st.get("pid")):
            st["state"] = "lost"
        ckpt = self.last_checkpoint()
        st["last_checkpoint"] = str(ckpt) if ckpt else None
        st["resumable"] = st["state"] in ("stopped", "failed", "lost") and ckpt is not None
        st["has_adapter"] = (self.adapter_dir / "adapter_model.safetensors").is_file()
        return st

    @property
    def state(self) -> str | None:
        return self.raw_status().get("state")

    def config(self) -> dict:
        """config.yaml ({} when missing); raises naming the file when it is not valid YAML."""
        if not self.config_path.is_file():
            return {}
        try:
            data = yaml.safe_load(self.config_path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"{self.config_path}: not valid YAML ({exc}); restore it or start a new run") from None
        return data if isinstance(data, dict) else {}

    @property
    def base_model(self) -> str | None:
        return self.config().get("base_model")

    def summary(self) -> dict:
        """train_summary.json ({} when the run has not finished a training segment)."""
        return _read_json(self.summary_path, strict=True) or {}

    def metrics(self) -> list[dict]:
        return read_jsonl(self.metrics_path) if self.metrics_path.is_file() else []

    def has_adapter(self) -> bool:
        return (self.adapter_dir / "adapter_config.json").is_file()

    def is_finished(self) -> bool:
        return self.state == "finished"

    def has_results(self) -> bool:
        return self.results_path.is_file()

    def results(self) -> "EvaluationResults | None":
        """The evaluation's typed results, or None when the run was not evaluated yet."""
        from .evaluation.results import load_results

        return load_results(self.results_path) if self.has_results() else None

    def last_checkpoint(self) -> Path | None:
        d = self.checkpoints_dir
        if not d.is_dir():
            return None
        ckpts = [p for p in d.iterdir() if p.is_dir() and p.name.startswith("checkpoint-")
                 and p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
        return max(ckpts, key=lambda p: int(p.name.split("-")[-1])) if ckpts else None

    # ---- writer of status.json (beside its reader) ---------------------------------------------
    def write_status(self, state: str, **extra) -> dict:
        assert state in STATES, state
        prev = _read_json(self.status_path) or {}
        row = {**prev, **extra, "state": state, "updated_at": time.time()}
        if state != "failed":
            row.pop("error", None)
        write_json(self.status_path, row)
        return row


def _read_json(path: Path, strict: bool = False) -> dict | None:
    """A JSON object from `path`; None when missing (or, unless strict, half-written)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        if strict:
            raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); rerun the stage that wrote it") from None
        return None
    return data if isinstance(data, dict) else None


def new_run(settings: "Settings", label: str) -> RunFolder:
    """A fresh, not yet existing run folder under settings.runs_dir (the folder is made by the
    stage that writes it, so an aborted start leaves nothing behind)."""
    run = RunFolder(settings.runs_dir / new_run_id(label))
    n = 2
    while run.path.exists():  # two starts within one second
        run = RunFolder(settings.runs_dir / f"{new_run_id(label)}-{n}")
        n += 1
    return run


def resolve_run(run: "str | Path | RunFolder | None", settings: "Settings") -> RunFolder:
    """A run given as a folder path or as a run id under settings.runs_dir."""
    if isinstance(run, RunFolder):
        return run
    if not run:
        raise UserError("choose a run: a folder under runs/ (a finished training run)")
    p = Path(run).expanduser()
    if p.is_dir():
        return RunFolder(p)
    q = settings.runs_dir / str(run)
    if q.is_dir():
        return RunFolder(q)
    raise UserError(f"run {str(run)!r} not found: pass a run folder or a run id under {settings.runs_dir} "
                    "(train one first)")


def list_runs(root: "Path | Settings", where: Callable[[RunFolder], bool] | None = None) -> list[RunFolder]:
    """Every run folder under `root` (a runs/ folder, or Settings for its runs_dir), newest
    first, that passes `where` (e.g. `lambda r: r.is_finished() and r.has_adapter()`)."""
    root = Path(getattr(root, "runs_dir", root))
    if not root.is_dir():
        return []
    runs = [RunFolder(d) for d in root.iterdir() if d.is_dir()]
    runs = [r for r in runs if r.exists()]
    runs.sort(key=lambda r: (r.path.stat().st_mtime, r.id), reverse=True)
    return [r for r in runs if where is None or where(r)]


def finished_with_adapter(run: RunFolder) -> bool:
    """The Arena's and the Publish tab's filter: a finished run that saved its adapter."""
    return run.is_finished() and run.has_adapter()


def same_base_model(a: str | None, b: str | None) -> bool:
    """Do two base-model names (registry name, local folder, Hub id) mean the same weights?
    `smollm2-135m` and `HuggingFaceTB/SmolLM2-135M-Instruct` do; a folder and its resolved path do."""
    from .models import resolve

    def key(x: str) -> str:
        try:
            m = resolve(x)
            return m.serve_id or m.name
        except Exception:  # an unknown name only equals itself
            return x

    return a is not None and b is not None and (a == b or key(str(a)) == key(str(b)))


def trained_on(run: RunFolder) -> str | None:
    """The base model config.yaml names, or None (no config, or one that does not parse)."""
    try:
        return run.base_model
    except UserError:
        return None


def other_base(run: RunFolder, base_model: str) -> str | None:
    """Why `run` was not trained on `base_model` (None when it was): an adapter trained on another
    base would load onto the wrong weights (or fail on its shapes)."""
    base = trained_on(run)
    if same_base_model(base, base_model):
        return None
    return f"trained on {base or 'an unknown base model'}, not on the base model {base_model}"


def same_base(base_model: str) -> Callable[[RunFolder], bool]:
    """A `where=` filter: runs trained on `base_model` (config.yaml `base_model`, by `same_base_model`)."""
    return lambda run: other_base(run, base_model) is None
