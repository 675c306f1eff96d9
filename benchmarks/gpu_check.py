"""GPU acceptance check for TaskMaster Persona Studio (~10 minutes on one CUDA GPU, no network needed).

Run from the repository root, in the environment the Space (or GPU box) would use
(`pip install -r requirements-gpu.txt`, then `make model` for the embedded model):

    python benchmarks/gpu_check.py [--skip-8b] [--allow-cpu] [--out gpu_check.json]     # or: make gpu-check

It exits 0 only when every step passed; the report says which did not and why (docs/gpu.md lists
what each step proves). Until it has run on a GPU, every GPU claim in docs/gpu.md is "checked on CPU".

Every step runs in isolation (training steps in their own `python -m pipeline train` process, as
the studio's job runner does, so unsloth is imported first, exactly as in production) and records
ok/error/figures; one JSON report at the end. Nothing is downloaded: the models are a small random
Llama built locally (pipeline.testing.tiny_model) and, for the memory probe, a random-init Llama-3.1-8B shape.

Steps
  env        driver, torch CUDA build, capability, bf16 with/without emulation, bitsandbytes, xformers,
             `import unsloth` (in a fresh process, before transformers)
  trl_packed TRL backend, PersonaSFTTrainer + packed rows + segment attention, bf16, gradient
             checkpointing, adamw_8bit (the default GPU path when unsloth is absent)
  trl_padded the same with padded batches (TRL's collator, logits_to_keep as positions)
  trl_4bit   TRL backend on a *pre-quantized* NF4 checkpoint (what the registry's train_id is)
  unsloth    unsloth backend (plain SFTTrainer, padding_free, "unsloth" checkpointing), if it imports;
             `backend: auto` must then resolve to unsloth (pipeline.train.backend_select's probe)
  serve      ChatEngine on CUDA (bf16): attach the trained adapters, generate_batch, stream_batch with
             one adapter (per-row LoRA scale) and with two adapters (PEFT mixed batch); greedy
             outputs of the batched rows compared with the single-row outputs
  mem8b      (optional) random Llama-3.1-8B in bf16 on the GPU: load peak, a 16-row x 150-token
             Arena-sized generate with a rank-16 adapter, peak memory -> will it fit next to a
             4-bit training job on a 24 GB card?
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PERSONA = REPO / "data" / "personas" / "taskmaster"
REPORT: dict = {}


def step(name):
    def deco(fn):
        def run(*a, **kw):
            t0 = time.time()
            try:
                out = fn(*a, **kw) or {}
                REPORT[name] = {"ok": True, **out}
            except Exception as exc:  # record and go on: one report with every result
                REPORT[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                                "trace": traceback.format_exc()[-3000:]}
            REPORT[name]["seconds"] = round(time.time() - t0, 1)
            print(f"[{name}] {'OK' if REPORT[name]['ok'] else 'FAIL'} {REPORT[name].get('error', '')}"[:400], flush=True)
            return REPORT[name]
        return run
    return deco


def sh(cmd, timeout, env=None) -> tuple[int, str]:
    try:
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, **(env or {})})
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        return 127, f"{type(exc).__name__}: {exc}"
    return p.returncode, (p.stdout + p.stderr)[-6000:]


# ---------------------------------------------------------------------------------------------
@step("env")
def env_step():
    import torch

    info = {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    rc, out = sh(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], 30)
    info["nvidia_smi"] = out.strip()
    if torch.cuda.is_available():
        info["capability"] = torch.cuda.get_device_capability(0)
        info["bf16_with_emulation"] = torch.cuda.is_bf16_supported()
        info["bf16_native"] = torch.cuda.is_bf16_supported(including_emulation=False)
        info["device_count"] = torch.cuda.device_count()
    from pipeline.train.config import Hardware, TrainConfig, resolve

    hw = Hardware.detect(REPO / ".cache")
    info["hardware_detect"] = hw.model_dump()
    from pipeline.train.backend_select import probe_unsloth

    info["unsloth_probe"] = probe_unsloth(None).__dict__  # uncached: a fresh child-process import
    info["resolved_seed"] = resolve(TrainConfig(), hw).model_dump()
    for mod in ("bitsandbytes", "xformers", "triton", "transformers", "trl", "peft", "accelerate", "datasets"):
        rc, out = sh([sys.executable, "-c", f"import {mod}; print({mod}.__version__)"], 120)
        info[mod] = out.strip().splitlines()[-1] if rc == 0 else f"IMPORT FAILED: {out.strip()[-400:]}"
    # unsloth must be imported before transformers/trl/peft, as pipeline.train.backend_unsloth does
    rc, out = sh([sys.executable, "-c", "import unsloth, importlib.metadata as m; "
                  "print('unsloth', m.version('unsloth'), 'zoo', m.version('unsloth_zoo')); "
                  "from unsloth import FastLanguageModel; print('FastLanguageModel OK')"], 300)
    info["unsloth_import"] = {"rc": rc, "tail": out.strip()[-1500:]}
    if torch.cuda.is_available():  # bnb 4-bit matmul in the training dtype
        import bitsandbytes as bnb

        lin = bnb.nn.Linear4bit(256, 256, compute_dtype=torch.bfloat16, quant_type="nf4").cuda()
        y = lin(torch.randn(4, 256, device="cuda", dtype=torch.bfloat16))
        info["bnb_4bit_matmul"] = str(y.dtype)
    return info


def make_tiny(root: Path) -> tuple[Path, Path]:
    from pipeline.jsonl import write_jsonl
    from pipeline.testing.tiny_model import build_tiny_llama

    # head_dim 64 (hidden 256 / 4 heads): sizes unsloth's Triton kernels and bnb blocks accept
    tiny = build_tiny_llama(root / "tiny", layers=2, hidden=256, heads=4, kv_heads=2, intermediate=512, vocab_size=512)
    rows = []
    for i, (u, a) in enumerate([("add a task: call the plumber", "Done. Nice work! Ready for what's next?"),
                                ("I finished the report", "Great choice! You're on track."),
                                ("show overdue tasks", "You have one: review budget, due today."),
                                ("this system is stupid", "I hear you. Let's tackle this together.")] * 4):
        rows.append({"id": f"t-{i}", "category": "task_creation", "scenario": "Create a simple task",
                     "messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}],
                     "review": {"status": "approved"}})
    data = root / "train.jsonl"
    write_jsonl(data, rows)
    return tiny, data


def train_cli(root: Path, name: str, base: Path, data: Path, timeout=300, **cfg) -> dict:
    import yaml

    conf = dict(base_model=str(base), persona=str(PERSONA), data=str(data),
                lora=dict(r=4, alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
                epochs=1, max_steps=4, batch_size=4, grad_accum=1, learning_rate=5e-3, warmup_steps=0,
                max_length=384, save_strategy="steps", save_steps=4, precision="auto")
    conf.update(cfg)
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(conf))
    out = root / "runs" / name
    rc, log = sh([sys.executable, "-m", "pipeline", "train", "--config", str(path), "--out", str(out)], timeout)
    summ = out / "train_summary.json"
    res = {"rc": rc, "log_tail": log[-2500:], "run": str(out)}
    if summ.is_file():
        s = json.loads(summ.read_text())
        res.update({k: s.get(k) for k in ("state", "first_loss", "final_loss", "steps", "backend", "adapter_size_bytes")})
    cfgy = out / "config.yaml"
    if cfgy.is_file():
        res["resolved"] = (yaml.safe_load(cfgy.read_text()) or {}).get("resolved")
    if rc != 0 or res.get("state") != "finished":
        raise RuntimeError(f"training {name} rc={rc} state={res.get('state')}: {log[-800:]}")
    return res


@step("trl_packed")
def trl_packed(root, tiny, data):
    return train_cli(root, "trl_packed", tiny, data, backend="trl", batching="packed")


@step("trl_padded")
def trl_padded(root, tiny, data):
    return train_cli(root, "trl_padded", tiny, data, backend="trl", batching="padded")


@step("trl_4bit")
def trl_4bit(root, tiny, data):
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    q = root / "tiny-nf4"
    m = AutoModelForCausalLM.from_pretrained(
        tiny, device_map={"": 0}, dtype=torch.bfloat16,
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                               bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16))
    m.save_pretrained(q)
    for f in tiny.iterdir():  # tokenizer files + chat_template.jinja, not the fp weights/config
        if f.is_file() and f.name not in ("config.json", "generation_config.json") and not f.name.endswith(
                (".safetensors", ".safetensors.index.json")):
            shutil.copy(f, q / f.name)
    del m
    torch.cuda.empty_cache()
    return train_cli(root, "trl_4bit", q, data, backend="trl", batching="packed")


@step("unsloth")
def unsloth_step(root, tiny, data):
    probe = REPORT.get("env", {}).get("unsloth_probe") or {}
    if not probe.get("usable"):
        raise RuntimeError(f"unsloth does not import here: {probe.get('reason')}; backend auto trains with TRL")
    res = train_cli(root, "unsloth", tiny, data, timeout=600, backend="unsloth", batching="packed")
    auto = train_cli(root, "unsloth_auto", tiny, data, timeout=600, backend="auto", batching="packed")
    res["auto_resolved_to"] = (auto.get("resolved") or {}).get("backend")
    if res["auto_resolved_to"] != "unsloth":
        raise RuntimeError(f"backend auto chose {res['auto_resolved_to']} although unsloth imports")
    return res


@step("serve")
def serve(root, tiny):
    import torch

    from pipeline.inference import ChatEngine, SamplingConfig
    from pipeline.settings import Settings

    settings = Settings.from_env(env={}, work_dir=root / "work", cache_dir=REPO / ".cache")
    eng = ChatEngine(str(tiny), settings, device="cuda")
    res = {"dtype": str(next(eng.model.parameters()).dtype)}
    runs = [n for n in ("trl_packed", "trl_padded", "trl_4bit", "unsloth") if REPORT.get(n, {}).get("ok")]
    if not runs:
        raise RuntimeError("no trained adapter to serve")
    for n in runs:
        eng.attach_adapter(n, root / "runs" / n / "adapter")  # the 4-bit/unsloth adapters land on a bf16 base here
    greedy = SamplingConfig(max_new_tokens=24, temperature=0.0, repetition_penalty=1.0)
    conv = [{"role": "user", "content": "add a task: call the plumber"}]
    single = {a: eng.generate(conv, a, greedy) for a in [None] + runs}
    out = {}
    for texts, done in eng.stream_batch([conv, conv], [None, runs[0]], greedy):
        out["one_adapter"] = texts
    res["one_adapter_matches_single_rows"] = out["one_adapter"] == [single[None], single[runs[0]]]
    if len(runs) > 1:
        for texts, done in eng.stream_batch([conv, conv, conv], [None, runs[0], runs[1]], greedy):
            out["two_adapters"] = texts
        res["two_adapters_match_single_rows"] = out["two_adapters"] == [single[None], single[runs[0]], single[runs[1]]]
    res["single"] = {str(k): v for k, v in single.items()}
    res["batched"] = out
    res["peak_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return res


MEM8B = r'''
import json, time, torch
from transformers import AutoModelForCausalLM, LlamaConfig
from peft import LoraConfig, get_peft_model
cfg = LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=131072,
                  rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False, eos_token_id=128009,
                  pad_token_id=128009)
t = time.time()
with torch.device("cuda"):
    m = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
m.eval()
load_gb = torch.cuda.memory_allocated() / 2**30
m = get_peft_model(m, LoraConfig(r=16, lora_alpha=16, target_modules=["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]))
torch.cuda.reset_peak_memory_stats()
x = torch.randint(0, 128000, (16, 400), device="cuda")
t1 = time.time()
with torch.inference_mode():
    m.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=150, min_new_tokens=150,
               do_sample=False, pad_token_id=128009)
torch.cuda.synchronize()
print(json.dumps({"weights_gb": round(load_gb, 2), "arena_generate_peak_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                  "reserved_gb": round(torch.cuda.max_memory_reserved() / 2**30, 2), "load_s": round(t1 - t, 1),
                  "gen_s": round(time.time() - t1, 1)}))
'''


@step("mem8b")
def mem8b():
    rc, out = sh([sys.executable, "-c", MEM8B], 420)
    if rc != 0:
        raise RuntimeError(out[-1500:])
    res = json.loads(out.strip().splitlines()[-1])
    res["fits_24gb_with_4bit_training_job"] = res["reserved_gb"] + 8.0 < 22.0  # ~8 GB: 4-bit 8B + seed batch, README plan
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-8b", action="store_true")
    ap.add_argument("--allow-cpu", action="store_true", help="syntax/plumbing check without a GPU")
    ap.add_argument("--out", default="gpu_check.json")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    env_step()
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print("no CUDA device: only the env step ran")
    else:
        with tempfile.TemporaryDirectory() as td:
            root = Path(td)
            tiny, data = make_tiny(root)
            trl_packed(root, tiny, data)
            trl_padded(root, tiny, data)
            if torch.cuda.is_available():
                trl_4bit(root, tiny, data)
                unsloth_step(root, tiny, data)
                serve(root, tiny)
                if not args.skip_8b:
                    mem8b()
    Path(args.out).write_text(json.dumps(REPORT, indent=2, default=str))
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk not in ("trace", "log_tail")} for k, v in REPORT.items()},
                     indent=2, default=str)[:12000])
    return 0 if all(v.get("ok") for v in REPORT.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
