"""A real (untrained) LoRA adapter in a finished run folder, for tests and the load benchmark.

`init_lora_weights=False` gives random, non-zero A and B matrices, so the adapter really
changes the model's replies (a freshly initialised LoRA has B = 0 and would answer exactly like
the base) without any training time.
"""

from __future__ import annotations

from pathlib import Path

from ..runs import RunFolder


def make_finished_run(runs_dir: str | Path, base_model_dir: str | Path, run_id: str = "run-demo", *,
                      seed: int = 0, r: int = 8, base_model: str | None = None) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    run = Path(runs_dir) / run_id
    adapter = run / "adapter"
    if (adapter / "adapter_config.json").is_file():
        return run
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_model_dir))
    cfg = LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                     task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, cfg)
    peft_model.save_pretrained(adapter)
    folder = RunFolder(run)
    folder.write_status("finished")
    # `base_model`: the name the run records (a registry name such as smollm2-135m), when the
    # weights were loaded from that model's prepared folder
    folder.config_path.write_text(f"base_model: {base_model or base_model_dir}\n"
                                  "# made by pipeline.testing.finished_run\n")
    return run
