"""Where the data stages keep their files, and the small helpers they share.

Everything a stage writes lives under `state/data/<persona>/` (mutable studio state) and
exported dataset versions under `exports/<persona>/v<N>/`; the shipped files in
`data/personas/<persona>/` are inputs only and are never written.

    state/data/<persona>/
      generated.jsonl          generate: new examples (source "generated", with provenance)
      generated.failed.jsonl   generate: calls that produced nothing, each with its reason
      filtered.jsonl           filter: kept examples, judge scores and reasons on each
      rejected.jsonl           filter/dedupe: examples set aside, each with `rejection`
      deduped.jsonl            dedupe: filtered minus near-duplicates and eval leaks
      balanced.jsonl           balance: deduped plus examples generated for short scenarios
      balance_report.json      balance: per-scenario counts against target, what is short
      targeted.jsonl           target: examples generated for weak traits (kept ones)
      progress.json            the running stage's progress (done / total / failed)
      review.sqlite            review decisions (append-only history)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..jsonl import write_json
from ..settings import Settings
from .records import Example, load_examples


@dataclass(frozen=True)
class DataPaths:
    root: Path  # state/data/<persona>
    exports: Path  # exports/<persona>
    persona_dir: Path  # data/personas/<persona> (read-only here)

    @classmethod
    def of(cls, settings: Settings, persona: str | None = None) -> "DataPaths":
        name = persona or settings.persona
        return cls(settings.state_dir / "data" / name, settings.work_dir / "exports" / name,
                   settings.persona_dir(name))

    def __getattr__(self, name: str) -> Path:  # generated, filtered, rejected, ... as attributes
        files = {"generated": "generated.jsonl", "generated_failed": "generated.failed.jsonl",
                 "filtered": "filtered.jsonl", "rejected": "rejected.jsonl", "deduped": "deduped.jsonl",
                 "balanced": "balanced.jsonl", "balance_report": "balance_report.json",
                 "targeted": "targeted.jsonl", "progress": "progress.json", "review_db": "review.sqlite"}
        if name in files:
            return self.root / files[name]
        raise AttributeError(name)

    @property
    def shipped_train(self) -> Path:
        return self.persona_dir / "train.jsonl"

    @property
    def eval_set(self) -> Path:
        return self.persona_dir / "eval.yaml"

    def latest_candidates(self) -> Path:
        """What review and export work on by default: the furthest stage output that exists,
        else the shipped curated set (the offline path)."""
        for p in (self.balanced, self.deduped, self.filtered, self.generated):
            if p.is_file():
                return p
        return self.shipped_train


def protect_shipped(path: Path, paths: DataPaths) -> None:
    """Refuse to write over the shipped persona files."""
    try:
        path.resolve().relative_to(paths.persona_dir.resolve())
    except ValueError:
        return
    raise UserError(f"{path} is a shipped persona file and is never overwritten; "
                    f"choose an output under {paths.root} (the default)")


def read_examples(path: Path, what: str = "input") -> list[Example]:
    """Load a dataset for a stage, with a message that says what to do when it is missing/bad."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}; run the previous stage first or pass --input PATH")
    try:
        return load_examples(path)
    except ValueError as exc:
        raise UserError(f"{exc}\nfix those records (format: pipeline/data/records.py)") from None


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Progress:
    """A small progress file for the Data tab (a background job prints too)."""

    def __init__(self, path: Path | None, stage: str, total: int, echo: bool = True):
        self.path, self.stage, self.total, self.echo = path, stage, total, echo
        self.done = self.failed = 0
        self._last = 0.0
        self.write(force=True)

    def step(self, ok: bool = True) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        self.write()

    def write(self, force: bool = False, state: str = "running") -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.5 and self.done < self.total:
            return  # at most two writes a second
        self._last = now
        if self.path is not None:
            write_json(self.path, {"stage": self.stage, "done": self.done, "total": self.total,
                                   "failed": self.failed, "state": state, "time": now_iso()})
        line = f"{self.stage}: {self.done}/{self.total} done, {self.failed} failed"
        if self.echo and line != getattr(self, "_echoed", None):
            print(line, flush=True)
            self._echoed = line

    def finish(self) -> None:
        self.write(force=True, state="finished")
