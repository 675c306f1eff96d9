import sys
import time

import pytest

from pipeline.errors import UserError
from pipeline.jobs import JobManager


def test_job_runs_in_background_and_records_exit(tmp_path):
    jm = JobManager(tmp_path / "jobs")
    job = jm.start("spec", ["spec", "validate"], label="validate")
    done = jm.wait(job.id, timeout=60)
    assert done.state == "finished", done.log_tail()
    assert "OK" in done.log_tail()
    # A fresh manager (a restarted studio) sees the same thing from the files alone.
    again = JobManager(tmp_path / "jobs").get(job.id)
    assert again.state == "finished" and again.command == "python -m pipeline spec validate"


def test_failed_job_and_exclusive_kind(tmp_path):
    jm = JobManager(tmp_path / "jobs")
    job = jm.start("spec", ["spec", "validate", str(tmp_path / "nope")])
    assert jm.wait(job.id, timeout=60).state == "failed"
    assert "persona folder not found" in jm.get(job.id).log_tail()


def test_stop_a_running_job_and_refuse_a_second(tmp_path):
    jm = JobManager(tmp_path / "jobs")
    sleeper = [sys.executable, "-c", "import time; print('working', flush=True); time.sleep(60)"]
    first = jm.start("demo", [], program=sleeper, label="sleeper")
    assert jm.get(first.id).state == "running"
    with pytest.raises(UserError, match="already running"):
        jm.start("demo", [], program=sleeper)
    t0 = time.time()
    jm.stop(first.id)
    end = jm.wait(first.id, timeout=30)
    assert end.state == "stopped" and time.time() - t0 < 30
    # Another kind is not blocked, and after the stop the same kind may start again.
    again = jm.start("demo", ["x"], program=[sys.executable, "-c", "import sys; sys.exit(0)"])
    assert jm.wait(again.id, timeout=30).state == "finished"
