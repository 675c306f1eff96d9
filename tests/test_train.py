"""Training: real TRL + PEFT runs on the tiny Llama, the run folder, stop/resume, config validation."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.errors import UserError
from pipeline.testing.stop_after import StopAfter
from pipeline.jsonl import write_json, write_jsonl
from pipeline.train.config import ConfigError, Hardware, TrainConfig, parse_config, preset, resolve
from pipeline.train.data import IGNORE, tokenize_conversation, tokenize_records
from pipeline.train.plan import plan
from pipeline.train.runner import prepare, read_metrics, run_status, run_training

REPO = Path(__file__).resolve().parent.parent
PERSONA = REPO / "data" / "personas" / "taskmaster"


def _record(i, turns, context=None, status="approved"):
    msgs = [{"role": "system", "content": context}] if context else []
    for u, a in turns:
        msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    return {"id": f"t-{i}", "category": "task_creation", "scenario": "Create a simple task", "messages": msgs,
            "review": {"status": status}}


@pytest.fixture()
def data_file(tmp_path) -> Path:
    rows = [
        _record(0, [("add a task: call the plumber", "Done. Nice work! Ready for what's next?")]),
        _record(1, [("I finished the report", "Great choice! You're on track."),
                    ("what next?", "Let's tackle this: the marketing proposal.")]),
        _record(2, [("show overdue tasks", "You have one: review budget, due today.")],
                context="Task API context: id 7 title review budget due today status overdue"),
        _record(3, [("this system is stupid", "I hear you. Let's tackle this together.")]),
        _record(4, [("never trained on", "pending record")], status="pending"),
    ]
    p = tmp_path / "train.jsonl"
    write_jsonl(p, rows)
    return p


def _tiny_cfg(tiny_model_dir, data_file, **kw) -> dict:
    base = dict(base_model=str(tiny_model_dir), persona=str(PERSONA), data=str(data_file),
                lora=dict(r=4, alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]),
                epochs=1, max_steps=4, batch_size=2, grad_accum=1, learning_rate=5e-3, warmup_steps=0,
                max_length=384, save_strategy="steps", save_steps=2, save_total_limit=5, backend="trl",
                precision="fp32", num_threads=1)
    base.update(kw)
    return base


# ---- data: assistant-only labels ----------------------------------------------------------

def test_labels_cover_assistant_replies_and_their_end_token_only(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    msgs = [{"role": "system", "content": "You are TaskMaster."}, {"role": "user", "content": "I finished the report"},
            {"role": "assistant", "content": "Nice work!"}, {"role": "user", "content": "what next?"},
            {"role": "assistant", "content": "Ready for what's next?"}]
    row, cut = tokenize_conversation(tok, msgs, 1024)
    assert not cut
    ids, labels = row["input_ids"], row["labels"]
    trained = [i for i, lab in enumerate(labels) if lab != IGNORE]
    assert all(labels[i] == ids[i] for i in trained)
    # exactly the two replies, each with its end-of-turn token, nothing else
    assert tok.decode([ids[i] for i in trained]) == "Nice work!<|im_end|>Ready for what's next?<|im_end|>"
    # system, user and the template's role headers are masked
    prefix = tok.decode(ids[: trained[0]])
    assert prefix.endswith("<|im_start|>assistant\n") and "You are TaskMaster." in prefix
    assert labels[0] == IGNORE and labels[-1] == IGNORE  # the final "\n" after <|im_end|> is not trained
    # truncation keeps the start and reports it
    short, cut = tokenize_conversation(tok, msgs, 10)
    assert cut and len(short["input_ids"]) == 10


def test_padding_is_masked_in_batches(tiny_model_dir, data_file, settings, tmp_path):
    from pipeline.train.backend_trl import TrlBackend, build_trainer

    p = prepare(_tiny_cfg(tiny_model_dir, data_file, batching="padded"), settings)
    model, tok = TrlBackend(p.cfg, p.res).load(p.model_path)
    data = tokenize_records(tok, p.records, p.system_prompt, p.cfg.max_length)
    assert data.n_records == 4  # the pending record is never trained on
    trainer = build_trainer(model, tok, data.rows, p.cfg, p.res, tmp_path, [])
    rows = sorted(data.rows, key=lambda r: len(r["input_ids"]))
    batch = trainer.data_collator([rows[0], rows[-1]])
    short = len(rows[0]["input_ids"])
    assert batch["input_ids"].shape[1] == len(rows[-1]["input_ids"]) > short
    assert (batch["labels"][0, short:] == IGNORE).all() and (batch["attention_mask"][0, short:] == 0).all()
    assert (batch["labels"][0, :short] != IGNORE).sum() == sum(x != IGNORE for x in rows[0]["labels"])


# ---- the backend: base fixed, adapter moved ---------------------------------------------------------

def test_training_moves_adapter_weights_and_keeps_base_weights(tiny_model_dir, data_file, settings, tmp_path):
    from pipeline.train.backend_trl import TrlBackend, build_trainer

    lora = dict(r=4, alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], layers=1)  # the last layer only
    p = prepare(_tiny_cfg(tiny_model_dir, data_file, lora=lora), settings)
    model, tok = TrlBackend(p.cfg, p.res).load(p.model_path)
    before = {n: t.detach().clone() for n, t in model.named_parameters()}
    trainable = {n for n, t in model.named_parameters() if t.requires_grad}
    assert trainable and all("lora_" in n and ".layers.1." in n for n in trainable)
    assert len(trainable) == 2 * 3  # A and B for each of the three modules of layer 1
    data = tokenize_records(tok, p.records, p.system_prompt, p.cfg.max_length)
    build_trainer(model, tok, data.rows, p.cfg, p.res, tmp_path, []).train()
    after = dict(model.named_parameters())
    for n, t in before.items():
        if n in trainable:
            if "lora_B" in n:  # B starts at zero: any update moves it
                assert not torch.equal(t, after[n].detach()), f"{n} did not move"
        else:
            assert torch.equal(t, after[n].detach()), f"base weight {n} changed"


# ---- the run folder ------------------------------------------------------------------------------------

def test_run_folder_summary_and_adapter_size_matches_plan(tiny_model_dir, data_file, settings, tmp_path):
    out = tmp_path / "runs" / "r1"
    summary = run_training(_tiny_cfg(tiny_model_dir, data_file, precision="auto"), out, settings, echo=False)
    meta = yaml.safe_load((out / "config.yaml").read_text())
    assert meta["base_model"] == str(tiny_model_dir) and meta["persona"] == str(PERSONA)
    assert meta["lora"] == {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj", "down_proj"],
                            "layers": 0}
    assert meta["system_prompt"].startswith("You are TaskMaster")
    assert TrainConfig.model_validate(meta["train"]).lora.r == 4
    assert json.loads((out / "status.json").read_text())["state"] == "finished"
    metrics = read_metrics(out)
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    for key in ("epoch", "loss", "learning_rate", "grad_norm", "tokens_per_s", "elapsed_s", "eta_s"):
        assert key in metrics[-1]
    for key in ("final_loss", "first_loss", "runtime_s", "train_tokens", "adapter_size_bytes", "data_sha256", "n_examples"):
        assert summary[key] is not None, key
    assert summary["n_examples"] == 4 and summary["train_tokens"] > 0
    assert summary == json.loads((out / "train_summary.json").read_text())
    files = {p.name for p in (out / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= files
    # the plan, made before training from config.json alone, predicts the saved file within 1%
    res = resolve(TrainConfig.model_validate(meta["train"]), Hardware.detect())
    pl = plan(str(tiny_model_dir), 4, ["q_proj", "v_proj", "down_proj"], adapter_dtype=res.adapter_dtype)
    size = (out / "adapter" / "adapter_model.safetensors").stat().st_size
    assert abs(pl.adapter_bytes - size) <= 0.01 * size
    assert summary["adapter_size_bytes"] == size
    # the adapter loads onto the base and changes its output
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    x = torch.tensor([[1, 5, 9, 13]])
    ref = base(x).logits.detach().clone()
    tuned = PeftModel.from_pretrained(base, out / "adapter")
    assert not torch.allclose(ref, tuned(x).logits, atol=1e-6)
    # an existing run is never overwritten
    with pytest.raises(UserError, match="already holds a run"):
        run_training(_tiny_cfg(tiny_model_dir, data_file), out, settings, echo=False)


def test_stopped_run_keeps_adapter_and_resumes_from_its_checkpoint(tiny_model_dir, data_file, settings, tmp_path):
    out = tmp_path / "run"
    cfg = _tiny_cfg(tiny_model_dir, data_file, max_steps=6, save_steps=100)
    s1 = run_training(cfg, out, settings, stop_event=StopAfter(2), echo=False)  # stop after step 2
    assert s1["state"] == "stopped" and s1["steps"] == 2
    st = run_status(out)
    assert st["state"] == "stopped" and st["resumable"] and st["has_adapter"]
    assert st["last_checkpoint"].endswith("checkpoint-2")  # saved at the stop, not at save_steps
    # a hard kill leaves status "running" with a dead pid: reported as lost, still resumable
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    write_json(out / "status.json", {**json.loads((out / "status.json").read_text()), "state": "running", "pid": dead})
    assert run_status(out)["state"] == "lost" and run_status(out)["resumable"]
    s2 = run_training(None, out, settings, resume=True, echo=False)
    assert s2["state"] == "finished" and s2["steps"] == 6 and s2["resumed_from"].endswith("checkpoint-2")
    steps = [m["step"] for m in read_metrics(out)]
    assert steps == [1, 2, 3, 4, 5, 6]  # continued at step 3, not from scratch
    with pytest.raises(UserError, match="already finished"):
        run_training(None, out, settings, resume=True, echo=False)


def test_sigterm_through_the_job_stops_gracefully(tiny_model_dir, data_file, settings, tmp_path):
    """The studio's Stop: SIGTERM to the job runner, forwarded to `python -m pipeline train`."""
    import time

    from pipeline.jobs import JobManager

    out = tmp_path / "job-run"
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(_tiny_cfg(tiny_model_dir, data_file, max_steps=100000, save_steps=100000)))
    jm = JobManager(tmp_path / "jobs")
    env = {**os.environ, "TASKMASTER_WORK_DIR": str(tmp_path / "work")}
    job = jm.start("train", ["train", "--config", str(cfg_file), "--out", str(out), "--quiet"], run_dir=str(out), env=env)
    deadline = time.time() + 60
    while time.time() < deadline and len(read_metrics(out)) < 2:
        time.sleep(0.2)
    assert read_metrics(out), jm.get(job.id).log_tail()
    jm.stop(job.id)
    done = jm.wait(job.id, timeout=60)
    assert done.state == "stopped", done.log_tail()
    st = run_status(out)
    assert st["state"] == "stopped" and st["has_adapter"] and st["resumable"], st


# ---- config validation --------------------------------------------------------------------------------------

def test_bad_config_is_refused_with_every_problem_named():
    bad = {"lora": {"r": 0, "target_modules": ["q_proj", "q_proj"], "alpah": 3}, "learning_rate": 5,
           "batching": "zip", "epochs": 0, "bogus": 1, "backend": "unsloth", "precision": "fp16", "optim": "adamw_8bit"}
    cpu = Hardware(cuda=False, bf16=False, physical_cores=2)
    with pytest.raises(ConfigError) as err:
        parse_config(bad, cpu)
    text = str(err.value)
    for needle in ("lora.r", "lora.alpah: unknown setting", "learning_rate", "batching", "epochs", "bogus: unknown setting",
                   "listed twice", "backend: unsloth needs a CUDA GPU", "precision: fp16 training needs CUDA",
                   "optim: adamw_8bit needs CUDA"):
        assert needle in text, f"{needle!r} missing from:\n{text}"
    assert len(err.value.problems) >= 10


def test_run_environment_problems_reported_together(settings, tmp_path):
    with pytest.raises(ConfigError) as err:
        prepare({"base_model": "no-such-model", "persona": str(tmp_path / "nope"), "data": str(tmp_path / "x.jsonl"),
                 "max_length": 4}, settings)
    text = str(err.value)
    assert "max_length" in text and "persona" in text and "data: training data not found" in text
    assert "base_model: Unknown base model 'no-such-model'" in text


def test_presets_and_cli_refusal(capsys, tiny_model_dir):
    seed = preset("seed")
    assert (seed.lora.r, seed.lora.alpha, seed.lora.dropout, len(seed.lora.target_modules)) == (16, 16, 0.0, 7)
    assert (seed.epochs, seed.batch_size, seed.grad_accum, seed.learning_rate, seed.lr_scheduler, seed.warmup_steps,
            seed.max_length) == (3, 2, 4, 2e-4, "cosine", 10, 2048)
    demo = preset("cpu-demo")
    assert demo.epochs == 3 and demo.max_length <= 512
    res = resolve(seed, Hardware(cuda=True, bf16=True, unsloth=True, bitsandbytes=True))
    assert (res.backend, res.precision, res.optim, res.gradient_checkpointing) == ("unsloth", "bf16", "adamw_8bit", True)
    res = resolve(seed, Hardware(cuda=False, bf16=False, physical_cores=2))
    assert (res.backend, res.precision, res.optim, res.gradient_checkpointing, res.num_threads) == (
        "trl", "fp32", "adamw_torch", False, 2)
    from pipeline.cli import main

    code = main(["train", "--base", str(tiny_model_dir), "--rank", "0", "--lr", "3", "--out", "/tmp/never-written"])
    err = capsys.readouterr().err
    assert code == 2 and "lora.r" in err and "learning_rate" in err and "Traceback" not in err
    assert not Path("/tmp/never-written").exists()


def test_packed_rows_give_the_same_loss_and_gradients_as_padded_batches(tiny_model_dir, data_file, settings, tmp_path):
    """`batching: packed` lays a micro-batch out as one row (shared persona prefix once, then each
    conversation's rest) with per-conversation attention, and the trainer computes logits only at
    target positions; loss and LoRA gradients must equal TRL's padded batch with the plain loss."""
    from pipeline.train.backend_trl import TrlBackend, build_trainer

    results = {}
    variants = {"padded": dict(batching="padded"), "ours_padded": dict(batching="padded"),
                "packed": dict(batching="packed", share_prefix=False), "shared": dict(batching="packed", share_prefix=True)}
    for name, kw in variants.items():
        p = prepare(_tiny_cfg(tiny_model_dir, data_file, batch_size=4, **kw), settings)
        torch.manual_seed(0)  # the same LoRA A init in each (B starts at zero, so its gradient depends on A)
        model, tok = TrlBackend(p.cfg, p.res).load(p.model_path)
        data = tokenize_records(tok, p.records, p.system_prompt, p.cfg.max_length)
        trainer = build_trainer(model, tok, data.rows, p.cfg, p.res, tmp_path / name, [])
        batch = trainer.data_collator(data.rows)
        n_targets = int((batch["labels"][:, 1:] != -100).sum())
        if name == "padded":  # the reference: full-vocabulary cross-entropy at every position of TRL's padded batch
            # (TRL's own compute_loss is the same number, but TRL 1.15 - the GPU stack's - imports its fused
            # kernel from triton, which CPU torch lacks; so the reference is written out here)
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
            loss = torch.nn.functional.cross_entropy(
                out.logits[:, :-1].flatten(0, 1).float(), batch["labels"][:, 1:].flatten(), ignore_index=-100,
                reduction="sum") / n_targets
        elif name == "ours_padded":  # several rows with different target positions: logits_to_keep by position
            assert batch["input_ids"].shape[0] == 4
            loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=n_targets)
        else:
            assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
            loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=n_targets)
        loss.backward()
        grads = {n: prm.grad.detach().clone() for n, prm in model.named_parameters() if prm.requires_grad}
        results[name] = (loss.item(), grads, batch["input_ids"].numel(), n_targets)
    ref_loss, ref_grads, padded_len, ref_targets = results["padded"]
    for name in ("ours_padded", "packed", "shared"):
        loss, grads, length, targets = results[name]
        assert targets == ref_targets, (name, targets, ref_targets)
        assert abs(loss - ref_loss) < 1e-4, (name, loss, ref_loss)
        for n, g in ref_grads.items():
            assert torch.allclose(grads[n], g, atol=1e-5, rtol=1e-3), (name, n, (grads[n] - g).abs().max())
    # the shared persona prompt is computed once: the shared row is shorter than the plain packed one
    assert results["shared"][2] < results["packed"][2] < padded_len

def test_neftune_noises_the_input_embeddings_while_training_only(tiny_model_dir, data_file, settings, tmp_path):
    """`neftune_alpha` reaches the Trainer: during the run the embedding layer's output is the table row
    plus noise of the NEFTune scale; after the run (serving, eval) it is the plain row again."""
    from transformers import TrainerCallback

    from pipeline.train.backend_trl import TrlBackend, build_trainer

    p = prepare(_tiny_cfg(tiny_model_dir, data_file, max_steps=2, neftune_alpha=5.0), settings)
    model, tok = TrlBackend(p.cfg, p.res).load(p.model_path)
    data = tokenize_records(tok, p.records, p.system_prompt, p.cfg.max_length)
    ids = torch.tensor([data.rows[0]["input_ids"]])
    seen = []

    class Probe(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            emb = model.get_input_embeddings()
            with torch.no_grad():
                seen.append((emb(ids) - emb.weight[ids]).abs().max().item())

    build_trainer(model, tok, data.rows, p.cfg, p.res, tmp_path, [Probe()]).train()
    dims = ids.shape[1] * model.get_input_embeddings().weight.shape[1]
    bound = 5.0 / dims ** 0.5  # NEFTune: uniform(-1, 1) x alpha / sqrt(length x hidden)
    assert len(seen) == 2 and all(0 < d <= bound * 1.0001 for d in seen), (seen, bound)
    emb = model.get_input_embeddings()
    with torch.no_grad():
        assert torch.equal(emb(ids), emb.weight[ids])  # the hook is gone after training
