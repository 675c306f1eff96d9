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


def test_a_gpu_job_frees_the_studio_engine_first_and_is_refused_when_its_plan_does_not_fit(tmp_path):
    """The launcher's GPU ownership: before a GPU job starts the studio's resident engine is
    released; a job whose planned memory exceeds what is then free is refused, naming what to stop.
    (No GPU here: the free-memory reading is supplied, as nvidia-smi would report it.)"""
    from studio.context import StudioContext
    from pipeline.settings import Settings

    free = {"gb": 22.0}
    ctx = StudioContext(Settings.from_env(env={}, work_dir=tmp_path))
    ctx._engines["llama-3.1-8b-instruct"] = object()  # a resident engine (what the Arena keeps loaded)
    jm = JobManager(tmp_path / "jobs", release_gpu=ctx.release_engines, gpu_free=lambda: free["gb"])
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    train = jm.start("train", [], program=sleeper, label="train run-1", gpu_gb=9.5)
    try:
        assert ctx._engines == {}, "the resident engine was released before the GPU job started"
        assert jm.get(train.id).gpu_gb == 9.5
        free["gb"] = 12.5  # the training job now holds its share
        with pytest.raises(UserError) as err:
            jm.start("eval", [], program=sleeper, label="eval run-1", gpu_gb=16.0)
        msg = str(err.value)
        assert "plans ~16.0 GB" in msg and "12.5 GB is free" in msg and "train job train run-1" in msg
        assert len(jm.list("eval")) == 0, "nothing was started"
        free["gb"] = 30.0
        jm.start("eval", [], program=sleeper, label="eval fits", gpu_gb=16.0, exclusive=False)
    finally:
        for j in jm.list():
            jm.stop(j.id, force=True)


def test_without_a_gpu_the_launcher_claims_nothing(tmp_path):
    released = []
    jm = JobManager(tmp_path / "jobs", release_gpu=lambda: released.append(1) or [], gpu_free=lambda: None)
    job = jm.start("train", [], program=[sys.executable, "-c", "pass"], gpu_gb=999.0)
    assert jm.wait(job.id, 20).state == "finished" and released == []


def _run_on(runs, name: str, base: str):
    """A finished run folder on `base`, as pipeline.train.runner writes it (config.yaml with `train:`)."""
    import yaml

    from pipeline.train.config import TrainConfig

    d = runs / name
    (d / "adapter").mkdir(parents=True)
    (d / "adapter" / "adapter_config.json").write_text("{}")
    (d / "config.yaml").write_text(yaml.safe_dump({"base_model": base, "train": TrainConfig(base_model=base).to_dict()}))
    return d


def test_an_evaluate_job_plans_its_gpu_memory_and_is_refused_when_it_does_not_fit(tmp_path):
    """An Evaluate job started from the tab declares no memory itself: the launcher plans it from the
    job's own flags and run (pipeline.gpu_plan: the 8B served in bf16 with a batch of 8 is ~17.7 GB),
    frees the studio's engine, and refuses it when that does not fit, before anything starts."""
    from pipeline.evaluation.studio_api import eval_argv, start_eval
    from pipeline.settings import Settings
    from studio.context import StudioContext

    settings = Settings.from_env(env={}, work_dir=tmp_path)
    free = {"gb": 12.0}  # as nvidia-smi would report it, beside a 4-bit training job on a 24 GB card
    ctx = StudioContext(settings)
    ctx._engines["llama-3.1-8b-instruct"] = object()
    jm = JobManager(tmp_path / "jobs", settings, release_gpu=ctx.release_engines, gpu_free=lambda: free["gb"])
    big = _run_on(settings.runs_dir, "on-llama", "llama-3.1-8b-instruct")
    with pytest.raises(UserError) as err:
        start_eval(jm, settings, str(big), "rubric")
    assert "this evaluate job plans ~17.7 GB of GPU memory and only 12.0 GB is free" in str(err.value)
    assert "after freeing the studio's chat engine (llama-3.1-8b-instruct)" in str(err.value)
    assert ctx._engines == {} and jm.list() == []

    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]  # the job's argv follows, unused
    small = _run_on(settings.runs_dir, "on-smol", "smollm2-135m")
    try:
        job = jm.start("evaluate", eval_argv(str(small), "rubric", None, None), run_dir=str(small), program=sleeper)
        assert jm.get(job.id).gpu_gb == pytest.approx(1.5), "the 135M model's plan is recorded in job.json"
        # the plan reads the job's flags: a smaller batch and fewer new tokens plan less
        free["gb"] = 40.0
        lean = jm.start("evaluate", ["evaluate", "--run", str(big), "--batch-size", "1", "--max-new-tokens", "16"],
                        program=sleeper, exclusive=False)
        assert 15.0 < jm.get(lean.id).gpu_gb < 17.7
    finally:
        for j in jm.list():
            jm.stop(j.id, force=True)


def test_a_resumed_train_job_is_planned_from_its_run_config(tmp_path):
    """`train --resume RUN` (the Train tab's Resume) is planned from the run's config.yaml like the start was."""
    from pipeline.settings import Settings
    from pipeline.train.plan import plan

    settings = Settings.from_env(env={}, work_dir=tmp_path)
    run = _run_on(settings.runs_dir, "on-llama", "llama-3.1-8b-instruct")
    jm = JobManager(tmp_path / "jobs", settings, gpu_free=lambda: 4.0)
    with pytest.raises(UserError) as err:
        jm.start("train", ["train", "--resume", str(run)], program=[sys.executable, "-c", "pass"])
    want = plan("llama-3.1-8b-instruct", 16, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                batch_size=2, max_length=2048).memory.total_gb
    assert f"this train job plans ~{want:.1f} GB" in str(err.value) and want > 4.0
    # a data job loads no model: never planned, never refused
    data = jm.start("data", ["data", "stats"], program=[sys.executable, "-c", "pass"])
    assert jm.wait(data.id, 20).gpu_gb is None
