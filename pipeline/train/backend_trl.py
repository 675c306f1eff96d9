"""The TRL + PEFT backend (CPU, or CUDA without unsloth), and the trainer both backends share.

Both backends hand `build_trainer` a PEFT model and a tokenizer; from there on the run is
the same `SFTTrainer` over pre-tokenized rows (`input_ids` + assistant-only `labels`, see
`pipeline.train.data`), so the run folder, metrics, checkpoints and adapter are identical.

CPU speed (measured in benchmarks/train_throughput.py, numbers in docs/benchmarks.md):
  * torch threads = physical cores (hyper-threads share a core's FPU and only add contention);
  * bf16 autocast where the CPU has AVX512-BF16/AMX;
  * no gradient checkpointing on CPU: a 135M model's activations fit in RAM, and recomputing
    the forward costs ~30% more time (TRL turns it on by default);
  * packed micro-batches (`batching: packed`, the default): the conversations of a micro-batch
    as one row, no padding, the persona prompt they share computed once, and attention run per
    conversation (`packing.py`, `segment_attention.py`);
  * logits only where the loss reads them: assistant-only labels leave ~70% of positions
    without a target, and `PersonaSFTTrainer` projects only the others onto the vocabulary
    (`trainer.py`) instead of TRL's fused full-vocabulary log-softmax at every position.
"""

from __future__ import annotations

from pathlib import Path

from .config import Resolved, TrainConfig


class TrlBackend:
    name = "trl"

    def __init__(self, cfg: TrainConfig, res: Resolved):
        self.cfg, self.res = cfg, res

    def load(self, model_path: str):
        """(model with fresh LoRA layers, tokenizer) from a local folder or cached Hub id."""
        from peft import LoraConfig, get_peft_model

        configure_threads(self.res)
        tokenizer = load_tokenizer(model_path)
        model = load_base_model(model_path, self.res)
        lora = self.cfg.lora
        layers = lora.layer_indices(model.config.get_text_config().num_hidden_layers)
        model = get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                 target_modules=list(lora.target_modules), task_type="CAUSAL_LM",
                                                 layers_to_transform=layers))
        return model, tokenizer


def load_tokenizer(model_path: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:  # Llama has none: batches pad with the end-of-sequence token
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(model_path: str, res: Resolved):
    """The frozen base for training (SFT here, DPO/KTO in preference.py). CPU: float32 masters,
    autocast to bf16 per op. CUDA: the training precision, on this process's own GPU."""
    import torch
    from transformers import AutoModelForCausalLM

    if res.device != "cuda":
        return AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(res.precision, torch.float32)
    # Each process owns one GPU: its local rank under `accelerate launch`, GPU 0 alone.
    # A bitsandbytes 4-bit base cannot be `.to()`-moved after loading, so it is placed at load.
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, device_map={"": local_rank()})
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=res.gradient_checkpointing)
    return model


def local_rank() -> int:
    """This process's GPU under `accelerate launch`/torchrun (LOCAL_RANK), 0 when run alone."""
    import os

    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def configure_threads(res: Resolved) -> None:
    if res.device == "cpu":
        import torch

        torch.set_num_threads(max(1, res.num_threads))


def checkpointing_kwarg(config_cls, on: bool) -> dict:
    """The activation-checkpointing switch under the name this transformers knows: 5.24 renamed
    `gradient_checkpointing` to `activation_checkpointing` (the old name a deprecated alias), while
    5.17 (the GPU stack unsloth supports) has only `gradient_checkpointing` and raises TypeError
    on the new one."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(config_cls)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": on}


def schedule_args(cfg: TrainConfig, res: Resolved, out_dir: Path) -> dict:
    """The TrainingArguments every method shares (SFT here, DPO/KTO in preference.py): the config's
    schedule, precision and device, logging and checkpoints in out_dir/checkpoints (the run folder)."""
    from .tracking import configure

    return dict(
        **configure(cfg.report_to, out_dir),
        output_dir=str(out_dir / "checkpoints"),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        optim=res.optim,
        bf16=res.precision == "bf16",
        fp16=res.precision == "fp16",
        use_cpu=res.device == "cpu",
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        save_strategy=cfg.save_strategy,
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_pin_memory=res.device == "cuda",
        disable_tqdm=False,
    )


def build_trainer(model, tokenizer, rows: list[dict], cfg: TrainConfig, res: Resolved, out_dir: Path,
                  callbacks: list):
    """The SFTTrainer both backends run: pre-tokenized rows, the config's schedule, checkpoints in out_dir."""
    from datasets import Dataset
    from trl import SFTConfig

    from .packing import PackedCollator
    from .segment_attention import register
    from .trainer import persona_trainer_class

    packed = cfg.batching == "packed"
    # unsloth patches the model's attention and loss itself, so it keeps plain TRL: packed batches
    # are TRL's padding-free rows (position_ids, no prefix sharing). Unverified on a GPU so far
    # (docs/benchmarks.md); the speed-ups in this module's docstring are the TRL backend's.
    ours = res.backend != "unsloth"
    collator = None
    if packed and ours:
        collator = PackedCollator(share_prefix=cfg.share_prefix)
        model.set_attn_implementation(register())
    ds = Dataset.from_list([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows])
    args = SFTConfig(
        **schedule_args(cfg, res, out_dir),
        neftune_noise_alpha=cfg.neftune_alpha or None,  # NEFTune: SFT only, as the recipe sweep measures it
        # rows are already truncated to max_length by pipeline.train.data; packed rows are longer by design
        max_length=None if packed else cfg.max_length,
        padding_free=packed and not ours,
        train_sampling_strategy="group_by_length" if cfg.batching == "grouped" else "random",
        dataset_num_proc=None,
        **checkpointing_kwarg(SFTConfig, res.gradient_checkpointing),
    )
    if not ours:
        from trl import SFTTrainer

        return SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer, callbacks=callbacks)
    return persona_trainer_class()(model=model, args=args, train_dataset=ds, processing_class=tokenizer,
                                   data_collator=collator, callbacks=callbacks)
