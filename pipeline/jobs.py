"""Long work (training, generation, evaluation, a full pipeline run) as background processes.

The studio never trains or generates inside its own process: it starts
`python -m pipeline.job_runner JOBDIR -- python -m pipeline <args>` in a new session, and everything
about the job lives in files under `state/jobs/<id>/`:

    job.json    what was started: kind, argv, pid, start time, the run folder it writes
    output.log  the command's stdout and stderr
    exit.json   written by the runner when the command ends: exit code, end time

so a page refresh, a browser disconnect or a studio restart loses nothing: the UI
re-reads the files. Stop sends SIGTERM (commands save what they have and exit cleanly);
a second stop, or `force=True`, sends SIGKILL to the whole process group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .errors import UserError
from .jsonl import write_json

if TYPE_CHECKING:
    from .settings import Settings


@dataclass
class Job:
    id: str
    kind: str
    argv: list[str]
    dir: Path
    pid: int
    started_at: float
    run_dir: str | None = None
    label: str = ""
    exit: dict | None = field(default=None)
    gpu_gb: float | None = None  # GPU memory the job planned to use (None: not a GPU job)

    @property
    def log_path(self) -> Path:
        return self.dir / "output.log"

    @property
    def state(self) -> str:
        """running | finished | failed | stopped | lost (process gone without an exit record)."""
        if self.exit is not None:
            code = self.exit.get("returncode")
            if self.exit.get("stopped"):
                return "stopped"
            return "finished" if code == 0 else "failed"
        return "running" if pid_alive(self.pid) else "lost"

    @property
    def command(self) -> str:
        return "python -m pipeline " + " ".join(_quote(a) for a in self.argv)

    def log_tail(self, lines: int = 20) -> str:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 64_000))
                text = fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""
        # tqdm redraws with \r: keep the last state of each line.
        rows = [r.split("\r")[-1] for r in text.splitlines()]
        return "\n".join(rows[-lines:])

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "argv": self.argv, "pid": self.pid, "started_at": self.started_at,
                "run_dir": self.run_dir, "label": self.label, "state": self.state, "exit": self.exit,
                "gpu_gb": self.gpu_gb,
                "command": self.command}


def _article(word: str) -> str:
    """'an eval job', 'a train job' (by the sound of the first letter; job kinds are plain words)."""
    return "an" if word[:1].lower() in "aeiou" else "a"


@dataclass
class JobView:
    job: Job | None
    status: str  # markdown: label, state, the command
    log: str     # the last lines of its output


# Job kinds under an older name, as job.json files written before the rename hold them.
KIND_ALIASES = {"eval": "evaluate"}


def _kind(kind: str | None) -> str | None:
    return KIND_ALIASES.get(kind, kind)


def _quote(a: str) -> str:
    import shlex

    return shlex.quote(a)


def pid_alive(pid: int | None) -> bool:
    """Is this process running (not gone, not a zombie)? Shared with pipeline.train.runner."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (finished, not yet reaped by us) is not alive.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _block_sigterm() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def gpu_free_gb() -> float | None:
    """Free memory of GPU 0 in GB from nvidia-smi (no CUDA context in this process), None without a GPU."""
    import shutil

    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout.split()
        return float(out[0]) / 1024 if out else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


class JobManager:
    """`release_gpu` frees what the studio itself holds on the GPU (its resident chat engine) and
    returns what it freed; it runs before every GPU job, so one process owns the GPU at a time.
    `gpu_free` reports free GPU memory in GB (None: no GPU, nothing to own). `plan_gpu(kind, argv,
    settings)` plans the GPU memory of a job that did not bring its own plan (`pipeline.gpu_plan`:
    an Evaluate job serves its run's base model). `settings`: what every job started here sees as
    its environment (`Settings.job_env()`), so a training, evaluation or data job works on the
    studio's folders and endpoints."""

    def __init__(self, root: str | Path, settings: "Settings | None" = None, *,
                 release_gpu: Callable[[], list[str]] | None = None, gpu_free: Callable[[], float | None] = gpu_free_gb,
                 plan_gpu: Callable[[str, list[str], "Settings"], float | None] | None = None):
        from .gpu_plan import planned_gpu_gb

        self.root = Path(root)
        self.settings = settings
        self.release_gpu, self.gpu_free = release_gpu, gpu_free
        self.plan_gpu = plan_gpu or planned_gpu_gb
        self._procs: dict[str, subprocess.Popen] = {}  # reaped on poll; files stay the truth

    def start(self, kind: str, argv: list[str], *, run_dir: str | None = None, label: str = "",
              exclusive: bool = True, env: dict | None = None, program: list[str] | None = None,
              gpu_gb: float | None = None) -> Job:
        """Start `python -m pipeline <argv>` in the background. With `exclusive`, refuse while
        another job of the same kind runs (one training job at a time per studio). `program`
        replaces `python -m pipeline` (tests use it to run a plain sleeper). `gpu_gb`: the job's
        planned GPU memory; without it, on a GPU, the launcher plans it (`plan_gpu`) from the kind
        and argv, so no GPU job starts unplanned."""
        if exclusive:
            busy = [j for j in self.list(kind) if j.state == "running"]
            if busy:
                raise UserError(f"{_article(kind).capitalize()} {kind} job is already running ({busy[0].label or busy[0].id}); "
                                f"wait for it to finish or stop it first.")
        if gpu_gb is None and self.gpu_free() is not None:
            from .settings import Settings

            gpu_gb = self.plan_gpu(kind, list(argv), self.settings or Settings.from_env())
        if gpu_gb is not None:
            self._claim_gpu(kind, gpu_gb)
        job_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        d = self.root / job_id
        d.mkdir(parents=True)
        log = (d / "output.log").open("ab")
        if env is None:
            env = self.settings.job_env() if self.settings is not None else dict(os.environ)
        child_env = dict(env)
        child_env.setdefault("PYTHONUNBUFFERED", "1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.job_runner", str(d), "--",
             *(program or [sys.executable, "-m", "pipeline"]), *argv],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the UI's request thread; its own process group for stop
            # SIGTERM stays blocked until the runner has installed its handler (it unblocks it),
            # so a stop sent right after start is delivered then, not lost.
            preexec_fn=_block_sigterm,
            cwd=str(Path(__file__).resolve().parent.parent), env=child_env,
        )
        log.close()
        self._procs[job_id] = proc
        job = Job(job_id, kind, list(argv), d, proc.pid, time.time(), run_dir, label, gpu_gb=gpu_gb)
        write_json(d / "job.json", {k: v for k, v in job.to_dict().items() if k not in ("state", "exit", "command")})
        return job

    def _claim_gpu(self, kind: str, planned_gb: float) -> None:
        """Free the studio's own GPU memory, then refuse the job if its plan does not fit in what is free."""
        if self.gpu_free() is None:
            return  # no GPU: a CPU job owns nothing
        freed = self.release_gpu() if self.release_gpu else []
        free = self.gpu_free() or 0.0
        if planned_gb <= free:
            return
        holders = [f"the {j.kind} job {j.label or j.id} (~{j.gpu_gb:.1f} GB; stop it on its tab)"
                   for j in self.list() if j.state == "running" and j.gpu_gb]
        what = "; ".join(holders) or "the other processes on this GPU (see `nvidia-smi`)"
        raise UserError(f"Not started: this {kind} job plans ~{planned_gb:.1f} GB of GPU memory and only "
                        f"{free:.1f} GB is free" + (f" after freeing {', '.join(freed)}" if freed else "")
                        + f". Stop {what}, or plan a smaller job (batch size, max length, rank).")

    def _load(self, d: Path) -> Job | None:
        try:
            meta = json.loads((d / "job.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        proc = self._procs.get(meta["id"])
        if proc is not None:
            proc.poll()  # reap a finished child so it is not mistaken for alive
        exit_info = None
        if (d / "exit.json").is_file():
            try:
                exit_info = json.loads((d / "exit.json").read_text())
            except json.JSONDecodeError:
                exit_info = None
        return Job(meta["id"], _kind(meta["kind"]), meta["argv"], d, meta["pid"], meta["started_at"],
                   meta.get("run_dir"), meta.get("label", ""), exit_info, meta.get("gpu_gb"))

    def get(self, job_id: str) -> Job | None:
        if not job_id or "/" in job_id or job_id.startswith("."):
            return None
        return self._load(self.root / job_id)

    def list(self, kind: str | None = None) -> list[Job]:
        if not self.root.is_dir():
            return []
        jobs = [j for d in sorted(self.root.iterdir(), reverse=True) if d.is_dir() and (j := self._load(d))]
        return [j for j in jobs if kind is None or j.kind == _kind(kind)]

    def latest(self, kind: str) -> Job | None:
        jobs = self.list(kind)
        return jobs[0] if jobs else None

    def view(self, kind: str, job_id: str | None = None, *, lines: int = 25, none: str | None = None) -> "JobView":
        """What a tab shows of a job: the given one, else the latest of `kind` (what a refreshed
        page re-attaches to): a markdown status line and the log tail."""
        job = self.get(job_id) if job_id else self.latest(kind)
        if job is None:
            return JobView(None, none or f"No {kind} job has run yet.", "")
        return JobView(job, f"**{job.label or job.kind}**: {job.state} · `{job.command}`", job.log_tail(lines))

    def stop(self, job_id: str, force: bool = False) -> Job | None:
        job = self.get(job_id)
        if job is None or job.state != "running":
            return job
        try:
            if force:  # the whole process group, runner included: no exit record
                os.killpg(job.pid, signal.SIGKILL)
            else:  # the runner forwards it to the command and records the stop
                os.kill(job.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        return job

    def wait(self, job_id: str, timeout: float) -> Job | None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = self.get(job_id)
            if job is None or job.state != "running":
                return job
            time.sleep(0.2)
        return self.get(job_id)
