"""Training throughput on CPU: our trainer against a plain TRL script with the seed's configuration.

    python -m benchmarks.train_throughput [--steps 3] [--model smollm2-135m] [--json out.json]

Every variant trains the same LoRA (the seed's r=16, alpha=16, all seven projections) on the
same conversations (a fixed subset of the shipped dataset, with the persona system prompt),
for the same number of optimizer steps of 8 conversations each (one pass over the subset),
on the same model, in the same process one after the other. Throughput counts real tokens
only (no padding): tokens / wall time of `trainer.train()`, and tokens / CPU time of this process
(the fairer figure when other work shares the machine).

Variants, each adding one change to the previous, so the table shows which ones help:
  plain-trl      the seed's config as a plain TRL script: conversational dataset, batch 2 x accum 4,
                 max_length 2048, pad to longest, full-sequence loss, TRL's defaults
                 (gradient checkpointing on, bf16 autocast where the CPU has it)
  no-ckpt        + our trainer (`PersonaSFTTrainer`: logits only at positions whose next token is a
                   target, here every position, instead of TRL's fused float32 LM head) and
                   gradient checkpointing off (a 135M model's activations fit in RAM)
  assistant-only + our labels: loss only on assistant tokens, so ~70% of positions need no logits
  threads        + torch threads = physical cores
  grouped        + length-grouped padded batches of 8 (`batching: grouped`)
  rows           + instead, one conversation per micro-batch x 8 accumulation steps (no padding, no mask)
  packed         + instead, the 8 conversations as one row, attention per conversation
                   (`batching: packed`, `share_prefix: false`)
  ours           + the persona prompt they share computed once (`share_prefix: true`, the default)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

SEED_LORA = dict(r=16, alpha=16, dropout=0.0)


def _load_subset(settings, n: int, seed: int = 0):
    from pipeline.spec import load_persona
    from pipeline.train.data import conversations, load_training_records

    persona = load_persona(settings.persona_dir())
    records = load_training_records(settings.persona_dir() / "train.jsonl")
    rng = random.Random(seed)
    subset = rng.sample(records, min(n, len(records)))
    return subset, persona.spec.system_prompt.strip(), conversations(subset, persona.spec.system_prompt.strip())


def plain_trl(model_path: str, convs: list, steps: int, bf16: bool, out: Path) -> dict:
    """What a user would write from the seed: SFTTrainer on `messages`, the seed's numbers."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    args = SFTConfig(output_dir=str(out), per_device_train_batch_size=2, gradient_accumulation_steps=4,
                     learning_rate=2e-4, lr_scheduler_type="cosine", warmup_steps=10, max_length=2048,
                     max_steps=steps, logging_steps=1, save_strategy="no", optim="adamw_torch", bf16=bf16,
                     use_cpu=True, report_to="none", seed=3407, disable_tqdm=True)
    peft = LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list([{"messages": c} for c in convs]),
                         processing_class=tok, peft_config=peft)
    return _time_train(trainer)


def ours(model_path: str, records, system_prompt: str, steps: int, out: Path, *, ckpt: bool, assistant_only: bool,
         threads: int, batching: str, batch_size: int, grad_accum: int, share_prefix: bool = True) -> dict:
    import torch

    from pipeline.train.backend_trl import TrlBackend, build_trainer
    from pipeline.train.config import Hardware, TrainConfig, resolve
    from pipeline.train.data import tokenize_records

    cfg = TrainConfig(base_model=model_path, lora=SEED_LORA, batch_size=batch_size, grad_accum=grad_accum,
                      max_steps=steps, batching=batching, share_prefix=share_prefix, num_threads=threads, save_strategy="steps", save_steps=10**6,
                      gradient_checkpointing="on" if ckpt else "off", logging_steps=1)
    res = resolve(cfg, Hardware.detect())
    default_threads = torch.get_num_threads()
    model, tok = TrlBackend(cfg, res).load(model_path)
    data = tokenize_records(tok, records, system_prompt, cfg.max_length)
    rows = data.rows if assistant_only else [{"input_ids": r["input_ids"], "labels": list(r["input_ids"])}
                                             for r in data.rows]
    trainer = build_trainer(model, tok, rows, cfg, res, out, [])
    trainer.args.disable_tqdm = True
    try:
        return _time_train(trainer)
    finally:
        torch.set_num_threads(default_threads)


def _time_train(trainer) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.train()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    tokens = int(trainer._total_train_tokens)  # non-pad tokens (attention mask or padding-free positions)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"tokens": tokens, "seconds": round(wall, 1), "tokens_per_s": round(tokens / wall, 1),
            "cpu_seconds": round(cpu, 1), "tokens_per_cpu_s": round(tokens / cpu, 1),
            "steps": trainer.state.global_step, "first_loss": losses[0] if losses else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.train_throughput", description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per variant (8 conversations each)")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--variants", default="plain-trl,no-ckpt,assistant-only,threads,grouped,rows,packed,ours")
    ap.add_argument("--json", help="also write the table as JSON here")
    args = ap.parse_args(argv)

    import torch

    from pipeline.models import local_path
    from pipeline.settings import Settings
    from pipeline.train.config import Hardware

    settings = Settings.from_env()
    hw = Hardware.detect()
    model_path = local_path(args.model, settings, purpose="train")
    records, system_prompt, convs = _load_subset(settings, 8 * args.steps)
    default_threads = torch.get_num_threads()
    variants = {
        "plain-trl": lambda o: plain_trl(model_path, convs, args.steps, hw.bf16, o),
        "no-ckpt": lambda o: ours(model_path, records, system_prompt, args.steps, o, ckpt=False, assistant_only=False,
                                  threads=default_threads, batching="padded", batch_size=2, grad_accum=4),
        "assistant-only": lambda o: ours(model_path, records, system_prompt, args.steps, o, ckpt=False,
                                         assistant_only=True, threads=default_threads, batching="padded",
                                         batch_size=2, grad_accum=4),
        "threads": lambda o: ours(model_path, records, system_prompt, args.steps, o, ckpt=False, assistant_only=True,
                                  threads=hw.physical_cores, batching="padded", batch_size=2, grad_accum=4),
        "grouped": lambda o: ours(model_path, records, system_prompt, args.steps, o, ckpt=False, assistant_only=True,
                                  threads=hw.physical_cores, batching="grouped", batch_size=8, grad_accum=1),
        "rows": lambda o: ours(model_path, records, system_prompt, args.steps, o, ckpt=False, assistant_only=True,
                               threads=hw.physical_cores, batching="grouped", batch_size=1, grad_accum=8),
        "packed": lambda o: ours(model_path, records, system_prompt, args.steps, o, ckpt=False, assistant_only=True,
                                 threads=hw.physical_cores, batching="packed", batch_size=8, grad_accum=1,
                                 share_prefix=False),
        "ours": lambda o: ours(model_path, records, system_prompt, args.steps, o, ckpt=False, assistant_only=True,
                               threads=hw.physical_cores, batching="packed", batch_size=8, grad_accum=1),
    }
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in variants]
    if unknown:
        print(f"unknown variants {unknown}; choose from {', '.join(variants)}", file=sys.stderr)
        return 2
    print(f"train throughput: {args.model}, {len(convs)} conversations, {args.steps} optimizer steps x 8, "
          f"LoRA r=16 all seven, {hw.device_name}, bf16={hw.bf16}, torch threads default {default_threads}, "
          f"physical cores {hw.physical_cores}, load average {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            r = variants[name](Path(tmp) / name)
            r["variant"] = name
            rows.append(r)
            print(f"  {name:<15} {r['tokens_per_s']:>8.1f} tok/s wall, {r['tokens_per_cpu_s']:>8.1f} tok/CPU-s  "
                  f"({r['tokens']} tokens in {r['seconds']}s wall, {r['cpu_seconds']}s CPU, "
                  f"load {os.getloadavg()[0]:.2f})", flush=True)
    base = next((r for r in rows if r["variant"] == "plain-trl"), None)
    # On a shared machine wall time mostly measures the neighbours; CPU time (all threads of this
    # process) is the fairer basis, so both are shown and both ratios given.
    print("\n| variant | tokens | wall s | tokens/s | CPU s | tokens/CPU-s | vs plain TRL (wall) | vs plain TRL (CPU) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        rw = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x" if base else "-"
        rc = f"{r['tokens_per_cpu_s'] / base['tokens_per_cpu_s']:.2f}x" if base else "-"
        print(f"| {r['variant']} | {r['tokens']} | {r['seconds']} | {r['tokens_per_s']} | {r['cpu_seconds']} | "
              f"{r['tokens_per_cpu_s']} | {rw} | {rc} |")
    print(f"(load average at the end: {os.getloadavg()[0]:.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "steps": args.steps, "model": args.model}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
