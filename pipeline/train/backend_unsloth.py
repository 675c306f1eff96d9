"""The unsloth backend: the seed's own Phase 2 path (FastLanguageModel, 4-bit base) on CUDA.

Used when CUDA and unsloth are both present (`backend: auto`), or asked for by name. It only
replaces loading: the trainer, run folder and adapter format are `backend_trl.build_trainer`'s,
so both backends produce the same files. unsloth is imported lazily (it needs a GPU to import).
"""

from __future__ import annotations

from ..errors import UserError
from .config import Resolved, TrainConfig


class UnslothBackend:
    name = "unsloth"

    def __init__(self, cfg: TrainConfig, res: Resolved):
        self.cfg, self.res = cfg, res

    def load(self, model_path: str):
        try:
            from unsloth import FastLanguageModel  # noqa: F401  (import patches transformers/TRL first)
        except ImportError as exc:  # pragma: no cover - GPU Space only
            raise UserError(f"backend unsloth: cannot import unsloth ({exc}); "
                            f"`pip install -r requirements-gpu.txt` or use backend trl") from None
        import torch

        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.res.precision)
        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=model_path, max_seq_length=self.cfg.max_length, dtype=dtype, load_in_4bit=True)
        lora = self.cfg.lora
        model = FastLanguageModel.get_peft_model(
            model, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules),
            layers_to_transform=lora.layer_indices(model.config.get_text_config().num_hidden_layers),
            use_gradient_checkpointing="unsloth" if self.res.gradient_checkpointing else False,
            random_state=self.cfg.seed)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return model, tokenizer
