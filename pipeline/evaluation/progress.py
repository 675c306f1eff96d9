"""How far an evaluation (or a `respond` batch) has got: one small JSON file, rewritten per batch.

    runs/<id>/eval/progress.json   (RunFolder.eval_progress_path)
    {"stage": "base replies", "done": 24, "total": 64, "stages": [...], "stage_index": 0,
     "elapsed_s": 81.2, "stage_elapsed_s": 81.2, "eta_s": 135.3, "state": "running",
     "pid": 4242, "started_at": ..., "updated_at": ...}

The Evaluate tab draws its bar and ETA from it, the way the Train tab does from the run's status (pipeline/runs.py).
Stages run one after another (base replies, adapter replies, judging, A/B); `done`/`total`
count prompts of the current stage. The ETA is the current stage's: the time per prompt so far
in this stage times the prompts left. Prompts reused from disk count as done but not into the
rate (they took no time), so a half-reused stage does not promise a too-early finish.

The writer (`ProgressWriter`) and the one reader (`read_progress`) live here, side by side.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..jsonl import write_json

PROGRESS_FILE = "progress.json"


@dataclass(frozen=True)
class EvalProgress:
    stage: str
    done: int
    total: int
    stages: list[str] = field(default_factory=list)
    stage_index: int = 0
    elapsed_s: float = 0.0
    stage_elapsed_s: float = 0.0
    eta_s: float | None = None
    state: str = "running"  # running | finished | failed
    error: str | None = None
    pid: int | None = None
    started_at: float = 0.0
    updated_at: float = 0.0

    @property
    def fraction(self) -> float:
        """Of the whole evaluation: finished stages count whole, the current one by its prompts."""
        if self.state == "finished":
            return 1.0
        n = max(1, len(self.stages))
        within = self.done / self.total if self.total else 0.0
        return min(1.0, (self.stage_index + within) / n)

    @property
    def next_stages(self) -> list[str]:
        return self.stages[self.stage_index + 1:]


def read_progress(path: str | Path) -> EvalProgress | None:
    """The progress file, or None when there is none (or it is being rewritten, or is not one)."""
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            return None
        fields = EvalProgress.__dataclass_fields__
        return EvalProgress(**{k: v for k, v in data.items() if k in fields})
    except (OSError, ValueError, TypeError):  # TypeError: an object without the required keys
        return None


class ProgressWriter:
    """Writes the progress file as the stages advance. `path=None` writes nothing (a library call
    that wants no file), so callers need no branches."""

    def __init__(self, path: str | Path | None, stages: list[str], clock=time.time):
        self.path = Path(path) if path is not None else None
        self.stages = list(stages)
        self._clock = clock
        self.started_at = clock()
        self._index, self._done, self._total = 0, 0, 0
        self._stage_t0, self._counted_from = self.started_at, 0
        self._state, self._error = "running", None

    def stage(self, name: str, total: int, done: int = 0) -> None:
        """Enter stage `name` with `total` prompts, `done` of them already on disk (reused)."""
        if name not in self.stages:
            self.stages.append(name)
        self._index = self.stages.index(name)
        self._total, self._done = int(total), int(done)
        self._stage_t0, self._counted_from = self._clock(), int(done)
        self._write()

    def advance(self, done: int) -> None:
        """`done` prompts of the current stage are finished (a count, not an increment)."""
        self._done = min(int(done), self._total) if self._total else int(done)
        self._write()

    def finish(self) -> None:
        self._state = "finished"
        self._index, self._done = max(0, len(self.stages) - 1), self._total
        self._write()

    def fail(self, error: str) -> None:
        self._state, self._error = "failed", error
        self._write()

    def snapshot(self) -> EvalProgress:
        now = self._clock()
        stage_elapsed = now - self._stage_t0
        worked = self._done - self._counted_from
        eta = None
        if self._state == "running" and worked > 0 and self._total:
            eta = round(stage_elapsed / worked * (self._total - self._done), 1)
        return EvalProgress(stage=self.stages[self._index] if self.stages else "", done=self._done,
                            total=self._total, stages=list(self.stages), stage_index=self._index,
                            elapsed_s=round(now - self.started_at, 1), stage_elapsed_s=round(stage_elapsed, 1),
                            eta_s=eta, state=self._state, error=self._error, pid=os.getpid(),
                            started_at=self.started_at, updated_at=now)

    def _write(self) -> None:
        if self.path is not None:
            write_json(self.path, asdict(self.snapshot()))
