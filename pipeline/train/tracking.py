"""`report_to`: where a run's logged steps also go, besides its own metrics.jsonl.

    tensorboard  event files in runs/<id>/tensorboard/; no account, no network (the default).
                 View every run side by side: `tensorboard --logdir runs` -> http://127.0.0.1:6006
    trackio      a local SQLite database shared by the runs of a folder (runs/.trackio); no account,
                 no network (no Space: `trackio_space_id` None, no static Space). View:
                 `TRACKIO_DIR=runs/.trackio trackio show --project <persona>`
    wandb        Weights & Biases; offline (`WANDB_MODE=offline`, files in runs/<id>/wandb) unless
                 WANDB_API_KEY is set. `pip install wandb` first (not in requirements.txt).
    none         metrics.jsonl only.

The Trainer's integrations read their folders from the environment when the trainer is built,
so `configure` sets them in the training subprocess just before that.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

TENSORBOARD_DIR = "tensorboard"
TRACKIO_DIR = ".trackio"


def configure(report_to: str, run_dir: Path) -> dict:
    """Set the tracker's environment for this process; return the extra TrainingArguments."""
    run_dir = Path(run_dir).resolve()
    extra = {"report_to": report_to, "run_name": run_dir.name}
    if report_to == "tensorboard":
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(run_dir / TENSORBOARD_DIR)
    elif report_to == "trackio":
        os.environ["TRACKIO_DIR"] = str(run_dir.parent / TRACKIO_DIR)
        extra.update(trackio_space_id=None, trackio_static_space_id=False)
    elif report_to == "wandb":
        os.environ.setdefault("WANDB_DIR", str(run_dir))
        if not os.environ.get("WANDB_API_KEY"):
            os.environ.setdefault("WANDB_MODE", "offline")
    return extra


def view_command(report_to: str, run_dir: str | Path, project: str = "taskmaster") -> str | None:
    """The command that opens this run in its tracker (shown in the Train tab and by `train status`)."""
    run_dir = Path(run_dir)
    if report_to == "tensorboard":
        return f"tensorboard --logdir {shlex.quote(str(run_dir.parent))}   # then open http://127.0.0.1:6006"
    if report_to == "trackio":
        return f"TRACKIO_DIR={shlex.quote(str(run_dir.parent / TRACKIO_DIR))} trackio show --project {shlex.quote(project)}"
    if report_to == "wandb":
        return f"wandb sync {shlex.quote(str(run_dir / 'wandb'))}   # offline runs; or open the run page when online"
    return None
