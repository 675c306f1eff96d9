"""benchmarks/gpu_check.py (the GPU acceptance script) has not run on a GPU; what a CPU can check of
it is checked here, so it does not rot before the first GPU: it imports, its step runner records a
failure and goes on, and its training step trains a tiny model through the real CLI."""

from __future__ import annotations

import importlib.util

import pytest

from .conftest import REPO


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_failing_step_is_recorded_with_its_error_and_the_run_goes_on():
    gc = _gpu_check()

    @gc.step("broken")
    def broken():
        raise RuntimeError("no CUDA device")

    @gc.step("fine")
    def fine():
        return {"figure": 1}

    broken()
    fine()
    assert gc.REPORT["broken"]["ok"] is False and gc.REPORT["broken"]["error"] == "RuntimeError: no CUDA device"
    assert gc.REPORT["fine"]["ok"] is True and gc.REPORT["fine"]["figure"] == 1 and "seconds" in gc.REPORT["fine"]


@pytest.mark.slow
def test_its_training_step_trains_the_tiny_model_through_the_cli_on_cpu(tmp_path):
    gc = _gpu_check()
    tiny, data = gc.make_tiny(tmp_path)
    res = gc.train_cli(tmp_path, "cpu", tiny, data, backend="trl", batching="packed", max_steps=2, save_steps=2,
                       precision="fp32", num_threads=1, report_to="none")
    assert res["rc"] == 0 and res["state"] == "finished" and res["steps"] == 2 and res["backend"] == "trl"
    assert res["resolved"]["backend"] == "trl" and (tmp_path / "runs" / "cpu" / "adapter").is_dir()
