"""Space boot on GPU hardware, checked on CPU: a loaded NVIDIA driver that torch cannot use is a loud
startup error; a production base that is not available falls back to the embedded model with a notice."""

from __future__ import annotations

import dataclasses

import torch

from pipeline.settings import Settings, _fall_back_to_embedded
from studio.header import cuda_problem, render_header


def test_gpu_driver_without_usable_cuda_is_a_loud_startup_error(tmp_path, caplog):
    driver = tmp_path / "version"
    driver.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  575.57.08  Release Build\n")
    assert not torch.cuda.is_available()  # this machine: CPU torch, so the driver file is the only GPU sign
    with caplog.at_level("ERROR"):
        msg = cuda_problem(str(driver))
    assert msg and "driver 575.57.08" in msg and "runs on the CPU" in msg and "cu128" in msg
    assert any("GPU hardware without usable CUDA" in r.getMessage() for r in caplog.records), "also in the log"
    assert cuda_problem(str(tmp_path / "no-driver")) is None, "a CPU machine is not an error"


def test_a_missing_production_base_falls_back_to_the_embedded_model_with_a_visible_notice(tmp_path):
    s = Settings.from_env(env={}, work_dir=tmp_path, cache_dir=tmp_path / "empty-cache")
    gpu_default = dataclasses.replace(s, base_model="llama-3.1-8b-instruct")
    fell = _fall_back_to_embedded(gpu_default)
    assert fell.base_model == "smollm2-135m"
    assert "llama-3.1-8b-instruct is not available" in fell.base_model_note and "embedded" in fell.base_model_note
    assert fell.base_model_note in render_header(fell)
    # an explicit choice is kept (TASKMASTER_BASE_MODEL): only the default falls back
    s2 = Settings.from_env(env={"TASKMASTER_BASE_MODEL": "llama-3.1-8b-instruct"}, work_dir=tmp_path)
    assert s2.base_model == "llama-3.1-8b-instruct" and not s2.base_model_note
