"""The GPU path, proved on CPU: the pinned GPU stack's files agree, `backend: auto` only picks an
unsloth that really imports, an unusable explicit unsloth is refused before any weight loads, and
`accelerate launch` trains one adapter from two processes."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from pipeline.train.backend_select import PROBE_FILE, probe_unsloth
from pipeline.train.config import ConfigError, Hardware, parse_config, preset, resolve

from .test_train import PERSONA, data_file  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parent.parent
# The only pins the GPU stack may hold at other versions than requirements.txt, and why (unsloth's caps).
GPU_OVERRIDES = {"transformers", "trl", "datasets", "huggingface-hub"}


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)$", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_gpu_requirements_match_the_cpu_pins_and_the_lock():
    cpu, gpu, lock = (_pins(REPO / f) for f in ("requirements.txt", "requirements-gpu.txt", "constraints-gpu.txt"))
    missing = sorted(set(cpu) - set(gpu))
    assert not missing, f"requirements-gpu.txt lacks {missing} (it is the complete GPU install)"
    drift = {n: (cpu[n], gpu[n]) for n in cpu if n not in GPU_OVERRIDES and cpu[n] != gpu[n]}
    assert not drift, f"requirements-gpu.txt pins differ from requirements.txt: {drift}"
    unlocked = {n: (v, lock.get(n)) for n, v in gpu.items() if lock.get(n) != v.split("+")[0]}
    assert not unlocked, f"requirements-gpu.txt and constraints-gpu.txt disagree: {unlocked}"
    # what unsloth 2026.10.9's own metadata caps (read from its wheel)
    assert gpu["unsloth"] == "2026.10.9" and gpu["transformers"] == "5.17.0" and gpu["trl"] == "1.15.0"
    assert int(gpu["datasets"].split(".")[0]) < 5 and int(gpu["huggingface-hub"].split(".")[0]) < 2


def _fake_unsloth(root: Path, body: str) -> Path:
    pkg = root / "unsloth"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(body)
    return root


def test_auto_falls_back_to_trl_with_the_reason_when_unsloth_cannot_import(tmp_path):
    # unsloth 2025.7.2 against transformers 5.x fails exactly like this (the audit's backtracked pick)
    broken = _fake_unsloth(tmp_path / "broken", "from transformers import HybridCache\n")
    env = {**os.environ, "PYTHONPATH": str(broken)}
    probe = probe_unsloth(tmp_path / "cache", env=env)
    assert not probe.usable and "HybridCache" in probe.reason and "ImportError" in probe.reason
    cached = json.loads((tmp_path / "cache" / PROBE_FILE).read_text())
    assert [v["usable"] for v in cached.values()] == [False]
    # cached: the same stack is not re-imported (a now-working package at the same path is not seen)
    (broken / "unsloth" / "__init__.py").write_text("raise SystemExit('must not run')\n")
    assert probe_unsloth(tmp_path / "cache", env=env) == probe

    hw = Hardware(cuda=True, bf16=True, unsloth=probe.usable, unsloth_reason=probe.reason, bitsandbytes=True)
    res = resolve(preset("seed"), hw)
    assert res.backend == "trl"
    assert res.backend_note.startswith("backend auto -> trl (unsloth not used:") and "HybridCache" in res.backend_note

    ok = _fake_unsloth(tmp_path / "ok", "DEVICE_TYPE = 'cuda'\n__version__ = '9.9'\nclass FastLanguageModel: pass\n")
    good = probe_unsloth(tmp_path / "cache", env={**os.environ, "PYTHONPATH": str(ok)})
    assert good.usable and good.version == "9.9"
    hw = Hardware(cuda=True, bf16=True, unsloth=True, bitsandbytes=True)
    assert resolve(preset("seed"), hw).backend == "unsloth"


def test_explicit_unsloth_that_cannot_work_is_refused_naming_the_fix():
    hw = Hardware(cuda=True, bf16=True, unsloth=False, bitsandbytes=True,
                  unsloth_reason="`import unsloth` failed: ImportError: cannot import name 'HybridCache'")
    with pytest.raises(ConfigError) as err:
        parse_config({"backend": "unsloth"}, hw)
    text = str(err.value)
    assert "backend: unsloth cannot train here" in text and "HybridCache" in text
    assert "requirements-gpu.txt" in text and "backend: trl" in text


@pytest.mark.skipif(importlib.util.find_spec("unsloth") is None,
                    reason="unsloth is not installed in this venv (it is in `make test-gpu-stack`'s .venv-gpu)")
def test_the_pinned_unsloth_refuses_a_gpu_less_machine_with_the_no_gpu_error(tmp_path):
    """In the GPU stack's venv: the real unsloth 2026.10.9 gets past every transformers/TRL symbol it
    needs and stops at its device check, the error it should give on a machine without a GPU."""
    probe = probe_unsloth(tmp_path)
    assert not probe.usable
    assert "You need a GPU" in probe.reason, probe.reason
    assert "cannot import name" not in probe.reason and "has no attribute" not in probe.reason
    assert metadata.version("unsloth") == _pins(REPO / "requirements-gpu.txt")["unsloth"]


def test_accelerate_launch_two_cpu_processes_train_one_adapter(tiny_model_dir, data_file, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    # `python -m accelerate.commands.launch` = the `accelerate launch` script, without depending on
    # the script's shebang (a moved virtualenv keeps the old interpreter path there)
    # `--cpu` alone runs ONE process in accelerate 1.15 (launch_command routes it to simple_launcher;
    # several CPU processes need an mpirun hostfile); `--multi_gpu` goes through torchrun, which on a
    # machine without CUDA gives two gloo ranks: the same DDP code path a 2-GPU Space runs.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--main_process_port", str(_free_port()), "--mixed_precision", "no",
           "--dynamo_backend", "no", "-m", "pipeline", "train", "--base", str(tiny_model_dir), "--persona", str(PERSONA),
           "--data", str(data_file), "--out", str(out), "--backend", "trl", "--precision", "fp32", "--threads", "1",
           "--rank", "4", "--targets", "q_proj,v_proj", "--max-steps", "2", "--batch-size", "1", "--grad-accum", "1",
           "--lr", "5e-3", "--warmup-steps", "0", "--max-length", "256", "--save-strategy", "steps", "--save-steps", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TASKMASTER_WORK_DIR": str(tmp_path / "work")}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    log = p.stdout + p.stderr
    assert p.returncode == 0, log[-4000:]
    assert "rank 1 of 2" in log and "rank 1: trained 2 steps" in log, log[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2 and summary["state"] == "finished"
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert [d.name for d in out.iterdir() if d.name.startswith("adapter")] == ["adapter"]
    assert json.loads((out / "status.json").read_text())["state"] == "finished"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
