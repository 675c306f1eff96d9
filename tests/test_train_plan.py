"""The size/memory plan: exact counts from config.json, exact safetensors size, offline 8B shapes."""

from __future__ import annotations

import json

import pytest
import torch

from pipeline.errors import UserError
from pipeline.train.config import ALL_MODULES, ATTENTION_MODULES
from pipeline.train.plan import KNOWN_SHAPES, MB, plan


def test_llama_8b_worked_example_offline_and_suggestions():
    p = plan("llama-3.1-8b-instruct", 16, ALL_MODULES, adapter_dtype="bfloat16", max_adapter_mb=50)
    assert p.trainable_params == 41_943_040
    assert p.adapter_bytes - 2 * 41_943_040 < 100_000  # the header is small beside 84 MB
    assert round(p.adapter_bytes / MB) == 84 and p.fits is False
    assert any("over the spec's 50 MB" in w for w in p.warnings)
    assert any(s.startswith("r=8 on all seven") for s in p.suggestions)
    assert any(s.startswith("r=16 on the attention projections") for s in p.suggestions)
    # and those suggestions really fit
    assert plan("llama-3.1-8b-instruct", 8, ALL_MODULES, adapter_dtype="bfloat16", max_adapter_mb=50).fits
    att = plan("llama-3.1-8b-instruct", 16, ATTENTION_MODULES, adapter_dtype="bfloat16", max_adapter_mb=50)
    assert att.fits and att.trainable_params == 32 * 16 * (8192 + 5120 + 5120 + 8192)
    assert 5 < p.memory.total_gb < 24  # a 4-bit 8B QLoRA run fits a 24 GB card


def test_plan_reads_local_config_and_rejects_unknown_modules(tiny_model_dir):
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    p = plan(str(tiny_model_dir), 4, ["q_proj", "down_proj"], adapter_dtype="float32")
    h, i, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    assert p.trainable_params == layers * 4 * ((h + h) + (i + h))
    with pytest.raises(UserError, match="c_attn"):
        plan(str(tiny_model_dir), 4, ["c_attn"])


@pytest.mark.parametrize("dtype,r,targets,layers", [("float32", 8, ALL_MODULES, 0),
                                                    ("bfloat16", 4, ["q_proj", "v_proj"], 0),
                                                    ("bfloat16", 8, ALL_MODULES, 1)])
def test_predicted_size_matches_a_saved_peft_adapter(tiny_model_dir, tmp_path, dtype, r, targets, layers):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipeline.train.runner import save_adapter

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=r, lora_alpha=r, target_modules=list(targets), task_type="CAUSAL_LM",
                                      layers_to_transform=[1] if layers else None))
    trainable = sum(t.numel() for t in model.parameters() if t.requires_grad)
    size = save_adapter(model, AutoTokenizer.from_pretrained(tiny_model_dir), tmp_path / "adapter", dtype)
    p = plan(str(tiny_model_dir), r, list(targets), adapter_dtype=dtype, layers=layers)
    assert p.trainable_params == trainable
    assert abs(p.adapter_bytes - size) <= 0.01 * size, (p.adapter_bytes, size)


def test_cli_plan_json_and_text(capsys):
    from pipeline.cli import main

    assert main(["train", "plan", "--base", "llama-3.1-8b-instruct", "--rank", "16", "--targets", "all", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trainable_params"] == 41_943_040 and out["adapter_dtype"] == "bfloat16" and out["fits"] is False
    assert main(["train", "plan", "--base", "llama-3.1-8b-instruct", "--rank", "8", "--targets", "all"]) == 0
    text = capsys.readouterr().out
    assert "20,971,520 parameters" in text and "fits" in text
    assert main(["train", "plan", "--base", "nope-model", "--rank", "8"]) == 2
    assert "Unknown base model" in capsys.readouterr().err


def test_known_shapes_match_the_embedded_model(embedded_model_dir):
    from pipeline.train.plan import Shape

    local = Shape.from_config(json.loads((embedded_model_dir / "config.json").read_text()))
    assert local == KNOWN_SHAPES["smollm2-135m"]
