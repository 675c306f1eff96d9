"""Optional background copy of the votes to a Hugging Face dataset repo (off unless configured).

A Space's disk can be lost (no persistent storage, a factory rebuild); a dataset repo keeps the
votes. SQLite files must not be uploaded while being written, so each vote is also written as
one small JSON file into `<state_dir>/arena/sync/votes/`, and huggingface_hub's
`CommitScheduler` pushes that folder every few minutes from its own thread (append-only: a
file is never rewritten, so a half-uploaded file cannot exist).

Configure with environment variables (read once at start-up):
    TASKMASTER_ARENA_SYNC_REPO     owner/name of a dataset repo (created private if missing)
    TASKMASTER_ARENA_SYNC_MINUTES  push interval, default 5
and HF_TOKEN (Settings.hf_token) with write access.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


class VoteSync:
    def __init__(self, folder: Path, scheduler=None):
        self.folder = Path(folder)
        (self.folder / "votes").mkdir(parents=True, exist_ok=True)
        self.scheduler = scheduler

    @classmethod
    def from_env(cls, settings, env: dict | None = None, hf_api=None) -> "VoteSync | None":
        env = os.environ if env is None else env
        repo = env.get("TASKMASTER_ARENA_SYNC_REPO")
        if not repo:
            return None
        from huggingface_hub import CommitScheduler

        folder = Path(settings.state_dir) / "arena" / "sync"
        folder.mkdir(parents=True, exist_ok=True)
        minutes = float(env.get("TASKMASTER_ARENA_SYNC_MINUTES", "5"))
        scheduler = CommitScheduler(repo_id=repo, repo_type="dataset", folder_path=folder, every=minutes,
                                    private=True, token=settings.hf_token, hf_api=hf_api,
                                    allow_patterns=["votes/*.json"])
        log.info("arena votes sync to dataset %s every %.0f min", repo, minutes)
        return cls(folder, scheduler)

    def add(self, row: dict) -> Path:
        path = self.folder / "votes" / f"{row['battle_id']}.json"
        text = json.dumps(row, ensure_ascii=False, default=str)
        if self.scheduler is not None:
            with self.scheduler.lock:  # never upload a file while it is being written
                path.write_text(text, encoding="utf-8")
        else:
            path.write_text(text, encoding="utf-8")
        return path

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
