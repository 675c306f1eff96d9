"""App-wide dependencies handed to every tab (no module-level mutable state).

`build_app(settings)` creates one `StudioContext`; tabs receive it and keep per-session data
in `gr.State`. The chat engine is loaded lazily and shared: one copy of the base weights
serves the Arena and any tab that needs a reply.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pipeline.jobs import JobManager
from pipeline.settings import Settings
from pipeline.spec import Persona, load_persona

from .access import AccessControl


@dataclass
class StudioContext:
    settings: Settings
    jobs: JobManager = None  # type: ignore[assignment]
    # Admin login (studio/access.py): `ctx.access.require_admin()` / `ctx.access.is_admin(request)`.
    # build_app already protects every handler of an admin tab; tabs need not call it.
    access: AccessControl = None  # type: ignore[assignment]
    _engines: dict = field(default_factory=dict)
    _arena: object = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        if self.jobs is None:
            self.jobs = JobManager(self.settings.state_dir / "jobs", self.settings, release_gpu=self.release_engines)
        if self.access is None:
            self.access = AccessControl(self.settings)

    def persona(self, name: str | None = None) -> Persona:
        return load_persona(self.settings.persona_dir(name))

    def arena(self):
        """The studio's one Arena (votes store, batcher, Hub sync), built on first use from the
        settings and the environment's limits; it shares the chat engine with every other tab."""
        from pipeline.arena import Arena, Limits
        from pipeline.arena.sync import VoteSync

        with self._lock:
            if self._arena is None:
                self._arena = Arena(self.settings, self.engine, limits=Limits.from_env(),
                                    sync=VoteSync.from_env(self.settings))
            return self._arena

    def release_engines(self) -> list[str]:
        """Drop the resident chat engines before a GPU job starts (the job owns the GPU; the next
        reply loads the engine again). Returns what was freed, for the job launcher's message."""
        with self._lock:
            freed = [f"the studio's chat engine ({base})" for base in self._engines]
            self._engines.clear()
        if freed:
            import gc

            gc.collect()
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except Exception:  # torch missing: nothing was on a GPU
                pass
        return freed

    def engine(self, base: str | None = None):
        """The shared ChatEngine for `base` (default: the studio's base model), loaded once."""
        from pipeline.inference import load_engine

        base = base or self.settings.base_model
        with self._lock:
            if base not in self._engines:  # TASKMASTER_ENGINE_URL: a remote OpenAI-compatible server
                self._engines[base] = load_engine(base, self.settings)
            return self._engines[base]
