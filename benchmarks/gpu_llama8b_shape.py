"""CUDA check of the production shape: a random-init Llama-3.1-8B (no download), the seed's LoRA.

    python -m benchmarks.gpu_llama8b_shape [--steps 5] [--seq 2048] [--batch 2] [--four-bit]

Measures, for LoRA r=16/alpha=16 on all seven projections (the seed's config):
  * trainable parameters and the saved adapter file size, against `pipeline.train.plan`
    (41,943,040 params; ~83.9 MB in bf16);
  * optimizer step time for batch x seq tokens (gradient checkpointing on, bf16, 8-bit AdamW when
    bitsandbytes is installed, else torch AdamW);
  * peak GPU memory, against the plan's estimate.
`--four-bit` first writes the random model to a temp folder and reloads it NF4-quantized
(bitsandbytes), which is the unsloth/QLoRA memory picture (needs ~16 GB of disk, a few minutes).
Prints one table; exits 0 without CUDA after saying so (main() returns 0: `python -m benchmarks` on CPU
skips it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

LLAMA_31_8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                   num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=131072,
                   rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False)
ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_llama8b_shape")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--four-bit", action="store_true")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("gpu_llama8b_shape: no CUDA device here; skipped (run it on a GPU machine)")
        return 0
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig

    from pipeline.train.plan import KNOWN_SHAPES, estimate_memory, plan

    torch.manual_seed(0)
    cfg = LlamaConfig(**LLAMA_31_8B)
    t0 = time.time()
    tmp = None
    if args.four_bit:
        from transformers import BitsAndBytesConfig

        tmp = tempfile.TemporaryDirectory()
        with torch.device("cuda"):
            AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).save_pretrained(tmp.name)
        torch.cuda.empty_cache()
        model = AutoModelForCausalLM.from_pretrained(
            tmp.name, device_map={"": 0}, dtype=torch.bfloat16,
            quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                   bnb_4bit_use_double_quant=True,
                                                   bnb_4bit_compute_dtype=torch.bfloat16))
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    else:
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    load_s = time.time() - t0
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0, target_modules=ALL,
                                             task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    try:
        import bitsandbytes as bnb

        opt = bnb.optim.AdamW8bit([p for p in model.parameters() if p.requires_grad], lr=2e-4)
        opt_name = "adamw_8bit"
    except ImportError:
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
        opt_name = "adamw_torch"
    torch.cuda.reset_peak_memory_stats()
    x = torch.randint(0, cfg.vocab_size, (args.batch, args.seq), device="cuda")
    times = []
    for i in range(args.steps):
        torch.cuda.synchronize()
        t = time.time()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.time() - t)
    peak = torch.cuda.max_memory_allocated() / 2**30
    for n, p in model.named_parameters():
        if "lora_" in n:
            p.data = p.data.to(torch.bfloat16)
    with tempfile.TemporaryDirectory() as out:
        model.save_pretrained(out, save_embedding_layers=False)
        size = (Path(out) / "adapter_model.safetensors").stat().st_size
    pl = plan("llama-3.1-8b-instruct", 16, ALL, adapter_dtype="bfloat16", max_adapter_mb=50,
              batch_size=args.batch, max_length=args.seq, target_device="cuda")
    est = estimate_memory(KNOWN_SHAPES["llama-3.1-8b-instruct"], trainable, cuda=True, four_bit=args.four_bit,
                          precision="bf16", optim=opt_name, batch_size=args.batch, max_length=args.seq,
                          gradient_checkpointing=True)
    steady = times[1:] or times
    rows = {
        "device": torch.cuda.get_device_name(0), "four_bit": args.four_bit, "load_s": round(load_s, 1),
        "trainable_params": trainable, "plan_trainable_params": pl.trainable_params,
        "adapter_bytes": size, "plan_adapter_bytes": pl.adapter_bytes,
        "step_s_first": round(times[0], 2), "step_s_steady": round(sum(steady) / len(steady), 3),
        "tokens_per_s": round(args.batch * args.seq / (sum(steady) / len(steady)), 1),
        "peak_gb": round(peak, 2), "plan_estimate_gb": est.total_gb, "optimizer": opt_name,
        "batch": args.batch, "seq": args.seq,
    }
    print("| figure | value |\n|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {v} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
