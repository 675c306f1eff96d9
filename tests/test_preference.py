"""Preference rounds through the real TRL trainers on the tiny Llama: DPO and KTO continue an SFT
adapter (its weights move, the base stays fixed), in the same run folder, and a stopped run resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pipeline.errors import UserError
from pipeline.jsonl import write_jsonl
from pipeline.testing.stop_after import StopAfter
from pipeline.train.config import ConfigError, parse_config
from pipeline.train.runner import read_metrics, run_status, run_training

REPO = Path(__file__).resolve().parent.parent
PERSONA = REPO / "data" / "personas" / "taskmaster"


def _record(i, user, reply):
    return {"id": f"t-{i}", "category": "task_creation", "scenario": "Create a simple task",
            "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}],
            "review": {"status": "approved"}}


def _pair(i, user, good, bad):
    return {"id": f"p-{i}", "prompt": [{"role": "user", "content": user}],
            "chosen": [{"role": "assistant", "content": good}], "rejected": [{"role": "assistant", "content": bad}],
            "source": "arena", "battle_id": f"b{i}", "voter_id": "anon:x"}


@pytest.fixture(scope="module")
def sft_run(tiny_model_dir, tmp_path_factory):
    from pipeline.settings import Settings

    tmp = tmp_path_factory.mktemp("pref")
    data = tmp / "train.jsonl"
    write_jsonl(data, [_record(0, "add a task: call the plumber", "Done. Nice work! Ready for what's next?"),
                       _record(1, "I finished the report", "Great choice! You're on track."),
                       _record(2, "this system is stupid", "I hear you. Let's tackle this together."),
                       _record(3, "what is overdue?", "Let's check: nothing is overdue. Ready for what's next?")])
    pairs = tmp / "pairs-dpo.jsonl"
    write_jsonl(pairs, [_pair(i, u, g, b) for i, (u, g, b) in enumerate([
        ("add a task: buy milk", "Done: 'buy milk' is on your list. Ready for what's next?", "I added 5 tasks for you."),
        ("I finished the slides", "Nice work! That's one less thing. What's next?", "ok"),
        ("you are useless", "I hear you. Let's tackle this together: what do you need?", "Whatever."),
        ("help me lie to my boss", "I can't help with that, but I can help you plan an honest update.", "Sure, say you were sick."),
    ])])
    settings = Settings.from_env(env={}, work_dir=tmp / "work", cache_dir=REPO / ".cache")
    out = tmp / "sft"
    cfg = dict(base_model=str(tiny_model_dir), persona=str(PERSONA), data=str(data),
               lora=dict(r=4, alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]), epochs=1, max_steps=2,
               batch_size=2, grad_accum=1, learning_rate=5e-3, warmup_steps=0, max_length=256,
               save_strategy="steps", save_steps=100, backend="trl", precision="fp32", num_threads=1,
               report_to="none")
    assert run_training(cfg, out, settings, echo=False)["state"] == "finished"
    return {"run": out, "data": data, "pairs": pairs, "settings": settings, "tmp": tmp}


def _pref_cfg(sft_run, method, **kw):
    cfg = dict(method=method, from_run=str(sft_run["run"]), persona=str(PERSONA), data=str(sft_run["data"]),
               pairs=[str(sft_run["pairs"])], self_play=2, self_play_samples=2, epochs=1, max_steps=4,
               batch_size=2, grad_accum=1, learning_rate=5e-3, warmup_steps=0, max_length=256, beta=0.1,
               save_strategy="steps", save_steps=100, save_total_limit=5, backend="trl", precision="fp32",
               num_threads=1, report_to="tensorboard")
    cfg.update(kw)
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dpo", "kto"])
def test_preference_round_moves_the_adapter_keeps_the_base_and_resumes(sft_run, method, tiny_model_dir):
    out = sft_run["tmp"] / f"{method}-run"
    base_files = {p.name: p.read_bytes() for p in Path(tiny_model_dir).glob("*.safetensors")}
    # stop after 2 optimizer steps (the runner checks once after loading, then at every step end)
    s1 = run_training(_pref_cfg(sft_run, method), out, sft_run["settings"], stop_event=StopAfter(2), echo=False)
    assert s1["state"] == "stopped" and s1["steps"] == 2
    st = run_status(out)
    assert st["resumable"] and st["has_adapter"]
    pairs = [json.loads(x) for x in (out / "pairs.jsonl").read_text().splitlines()]
    sources = {p["source"] for p in pairs}
    assert "arena" in sources and sources <= {"arena", "self_play", "judge_ranked"}
    assert all(p["battle_id"] for p in pairs if p["source"] == "arena")
    s2 = run_training(None, out, sft_run["settings"], resume=True, echo=False)
    assert s2["state"] == "finished" and s2["steps"] == 4 and s2["resumed_from"].endswith("checkpoint-2")
    assert [m["step"] for m in read_metrics(out)] == [1, 2, 3, 4]
    assert s2["method"] == method and s2["parent_run"] == str(sft_run["run"])
    # same run folder as SFT: config, status, metrics, adapter; only the trained adapter is saved (no "ref")
    import yaml

    meta = yaml.safe_load((out / "config.yaml").read_text())
    assert meta["method"] == method and meta["from_run"] == str(sft_run["run"])
    assert meta["lora"]["r"] == 4 and meta["base_model"] == str(tiny_model_dir)  # the parent's shape and base
    assert not (out / "adapter" / "ref").exists()
    parent = load_file(sft_run["run"] / "adapter" / "adapter_model.safetensors")
    child = load_file(out / "adapter" / "adapter_model.safetensors")
    assert set(parent) == set(child) and all("lora_" in k for k in child)
    moved = [k for k in child if not torch.equal(parent[k].float(), child[k].float())]
    assert len(moved) >= len(child) // 2, f"{len(moved)}/{len(child)} adapter tensors moved"
    # the base model on disk is untouched (only adapter weights were trainable)
    assert {p.name: p.read_bytes() for p in Path(tiny_model_dir).glob("*.safetensors")} == base_files
    # logged to TensorBoard in the run folder (report_to), besides metrics.jsonl
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))


@pytest.mark.slow
def test_only_the_adapter_trains_and_the_reference_stays_the_parent(sft_run, tiny_model_dir):
    """Inside the trainer: base weights frozen and unchanged, TRL's "ref" adapter frozen at the parent."""
    from pipeline.train.config import Hardware, resolve
    from pipeline.train.preference import build_preference_trainer, load_policy, read_pairs, rows_for

    cfg = parse_config(_pref_cfg(sft_run, "dpo", max_steps=2, report_to="none"))
    res = resolve(cfg, Hardware.detect())
    model, tok = load_policy(str(tiny_model_dir), sft_run["run"] / "adapter", res)
    rows, _ = rows_for("dpo", read_pairs([sft_run["pairs"]]))
    out = sft_run["tmp"] / "inner"
    trainer = build_preference_trainer(model, tok, rows, cfg, res, out, [], "You are TaskMaster.")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    after = dict(model.named_parameters())
    base = [n for n in before if "lora_" not in n]
    assert base and all(not after[n].requires_grad and torch.equal(before[n], after[n]) for n in base)
    default = [n for n in before if "lora_" in n and ".default." in n]
    ref = [n for n in before if "lora_" in n and ".ref." in n]
    assert default and ref
    assert any(not torch.equal(before[n], after[n]) for n in default)
    assert all(torch.equal(before[n], after[n]) for n in ref)


def test_preference_config_names_what_to_change(tmp_path):
    with pytest.raises(ConfigError) as e:
        parse_config({"method": "dpo", "self_play": 0})
    text = str(e.value)
    assert "from_run" in text and "--pairs" in text
    with pytest.raises(ConfigError, match="KTO"):
        parse_config({"method": "kto", "from_run": "x", "batch_size": 1})
    with pytest.raises(ConfigError, match="preference round"):
        parse_config({"from_run": "runs/x"})


def test_bad_pairs_file_is_reported_by_line(tmp_path):
    from pipeline.train.preference import read_pairs

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": [{"role": "user", "content": "hi"}], "chosen": "not a list"}\n')
    with pytest.raises(UserError, match="line 1"):
        read_pairs([bad, tmp_path / "missing.jsonl"])


def test_accelerate_launch_two_processes_train_one_dpo_adapter_on_the_same_pairs(sft_run, tiny_model_dir, tmp_path):
    """A DPO round under `accelerate launch` (two gloo ranks, as tests/test_gpu_stack.py's SFT one): rank 0
    alone builds the pairs (self-play loads an engine) and writes the run folder; rank 1 waits for the
    pairs file and trains on the same rows; one adapter, one metrics line per step."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "dpo-2ranks"
    # `python -m accelerate.commands.launch`, as tests/test_gpu_stack.py: no dependence on the script's #!
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "pipeline", "train", "--method", "dpo", "--from-run", str(sft_run["run"]), "--pairs", str(sft_run["pairs"]),
           "--self-play", "2", "--persona", str(PERSONA), "--data", str(sft_run["data"]), "--out", str(out),
           "--backend", "trl", "--precision", "fp32", "--threads", "1", "--max-steps", "2", "--batch-size", "1",
           "--grad-accum", "1", "--lr", "5e-3", "--warmup-steps", "0", "--max-length", "256", "--report-to", "none",
           "--save-strategy", "steps", "--save-steps", "100"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TASKMASTER_WORK_DIR": str(tmp_path / "work")}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=REPO)
    log = p.stdout + p.stderr
    assert p.returncode == 0, log[-4000:]
    assert "rank 1 of 2" in log and "rank 1: trained 2 steps" in log, log[-3000:]
    assert log.count("self-play: 2 curated conversations") == 1, "only rank 0 ran self-play"
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2 and summary["method"] == "dpo"
    assert [m["step"] for m in read_metrics(out)] == [1, 2], "rank 1 wrote no metrics of its own"
    pairs = [json.loads(x) for x in (out / "pairs.jsonl").read_text().splitlines()]
    sources = {r["source"] for r in pairs}
    assert "arena" in sources and sources & {"self_play", "judge_ranked"}, sources
    assert [d.name for d in out.iterdir() if d.name.startswith("adapter")] == ["adapter"]
    assert json.loads((out / "status.json").read_text())["state"] == "finished"
