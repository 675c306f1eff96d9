"""`python -m pipeline.job_runner JOBDIR -- COMMAND...`: run one command and record how it ended.

Started by `pipeline.jobs.JobManager` as the leader of a new process group. It forwards
SIGTERM to the command (which then saves what it has and exits) and writes `exit.json`
whatever happens, so the studio can tell finished from failed from stopped after a restart.
"""

import signal
import sys

_stop_requested = False
_proc = None


def _on_term(signum, frame):
    # Installed before anything else is imported, so an early stop is never lost.
    global _stop_requested
    _stop_requested = True
    if _proc is not None:
        _proc.send_signal(signal.SIGTERM)


signal.signal(signal.SIGTERM, _on_term)
signal.signal(signal.SIGINT, _on_term)
# JobManager starts us with SIGTERM blocked; a stop that came early is delivered now.
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})

import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def main(argv: list[str]) -> int:
    global _proc
    if "--" not in argv or argv.index("--") != 1:
        print("usage: python -m pipeline.job_runner JOBDIR -- COMMAND...", file=sys.stderr)
        return 2
    from .jsonl import write_json

    job_dir = Path(argv[0])
    code = 143  # as if terminated, when a stop came before the command started
    if not _stop_requested:
        _proc = subprocess.Popen(argv[2:])
        if _stop_requested:  # a stop raced the start
            _proc.send_signal(signal.SIGTERM)
        code = _proc.wait()
    write_json(job_dir / "exit.json", {"returncode": code, "stopped": _stop_requested, "ended_at": time.time()})
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
