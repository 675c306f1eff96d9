"""`PersonaSFTTrainer`: TRL's SFTTrainer with a loss that only computes the logits it reads.

With assistant-only labels, ~30% of a conversation's positions carry a target. TRL 1.x
computes the loss through its fused LM head (a chunked log-softmax over the whole 49k
vocabulary at every position, in float32); on this project's 2-core CPU that was ~45% of a
training step (profiled in docs/benchmarks.md). Here the model is asked for logits only at the
positions whose next token is a target (transformers' `logits_to_keep`, given as positions), and the
cross-entropy runs over those rows alone. The normalisation is TRL's own (sum over target
tokens / `num_items_in_batch`, the target count of the whole accumulated step), so the loss
and gradients are the same numbers TRL would produce.

It also accepts the packed rows of `pipeline.train.packing` (`segment_bounds` is handed to the
attention, `conversation_tokens` is what the throughput counts).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .data import IGNORE

_MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids", "segment_bounds")


def next_token_targets(labels: torch.Tensor) -> torch.Tensor:
    """targets[:, t] = labels[:, t + 1]: what position t's logits are scored against (IGNORE at the end)."""
    targets = torch.full_like(labels, IGNORE)
    targets[:, :-1] = labels[:, 1:]
    return targets


def targeted_loss(model, inputs: dict, num_items_in_batch=None) -> tuple[torch.Tensor, dict]:
    """(loss, stats): mean cross-entropy over the target tokens, logits computed only there."""
    targets = next_token_targets(inputs["labels"])
    keep = targets != IGNORE
    kwargs = {k: inputs[k] for k in _MODEL_INPUTS if k in inputs}
    # logits_to_keep as a 1-D tensor of positions (those some row scores): every transformers 5.x
    # slices with it. A boolean [batch, seq] mask works in 5.24 but is an IndexError in 5.17's
    # `hidden_states[:, mask, :]` (the GPU stack). Packed batches are one row, so the union is exact;
    # padded rows compute a few logits they then drop.
    cols = keep.any(0).nonzero().squeeze(1)
    outputs = model(**kwargs, logits_to_keep=cols, use_cache=False)
    sel = keep[:, cols]
    logits = outputs.logits[sel]  # [targets, vocab]
    wanted = targets[:, cols][sel]
    loss_sum = F.cross_entropy(logits.float(), wanted, reduction="sum")
    n = num_items_in_batch if num_items_in_batch is not None else wanted.numel()
    loss = loss_sum / torch.as_tensor(n, device=loss_sum.device).clamp(min=1)
    with torch.no_grad():
        correct = (logits.argmax(-1) == wanted).sum()
    return loss, {"targets": wanted.numel(), "correct": correct, "outputs": outputs}


def persona_trainer_class():
    from trl import SFTTrainer

    class PersonaSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            mode = "train" if self.model.training else "eval"
            inputs = dict(inputs)
            conversation_tokens = inputs.pop("conversation_tokens", None)
            loss, stats = targeted_loss(model, inputs, num_items_in_batch)
            # As TRL: num_items_in_batch counts every rank's targets while DDP averages gradients.
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())

            gather = self.accelerator.gather_for_metrics
            n_valid = gather(torch.as_tensor(stats["targets"], device=loss.device)).sum()
            n_correct = gather(stats["correct"]).sum()
            self._metrics[mode]["mean_token_accuracy"].append((n_correct / n_valid).item() if n_valid > 0 else 0.0)
            if mode == "train":
                if conversation_tokens is not None:
                    local = conversation_tokens
                elif "attention_mask" in inputs:
                    local = inputs["attention_mask"].sum()
                else:
                    local = torch.as_tensor(inputs["input_ids"].numel())
                self._total_train_tokens += int(gather(local.to(loss.device).reshape(1)).sum().item())
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return (loss, stats["outputs"]) if return_outputs else loss

    return PersonaSFTTrainer
