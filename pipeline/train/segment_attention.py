"""Attention for packed rows (`pipeline.train.packing`), one SDPA call per conversation.

A packed row of 8 conversations is ~2,000 tokens long. Handing it to SDPA with a block mask
makes the kernel visit all 2,000 x 2,000 query/key pairs, 8x the pairs that are allowed; on
this project's 2-core CPU that was a third of a training step (profiled in docs/benchmarks.md).
Here each segment attends only to what it may see:

    prefix              -> itself, causally
    each remainder i    -> [prefix, remainder i], causally (bottom-right aligned)

Registered with transformers' AttentionInterface as "persona_segments", with SDPA's mask
builder. Without `segment_bounds` in the forward kwargs (generation, evaluation, padded
batches) it is plain SDPA with the usual mask, so a model left in this mode still works
everywhere else.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

NAME = "persona_segments"


def segment_attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0,
                              scaling: float | None = None, **kwargs):
    bounds = kwargs.get("segment_bounds")
    if bounds is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    if query.shape[0] != 1:
        raise ValueError("segment attention expects one packed row per micro-batch")
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    dropout = dropout if module.training else 0.0
    prefix, *ends = (int(b) for b in bounds.tolist())
    outs = []
    if prefix:
        outs.append(F.scaled_dot_product_attention(query[:, :, :prefix], key[:, :, :prefix], value[:, :, :prefix],
                                                   dropout_p=dropout, scale=scaling, is_causal=True))
    start = prefix
    for end in ends:
        q = query[:, :, start:end]
        if prefix:
            n = end - start
            k = torch.cat([key[:, :, :prefix], key[:, :, start:end]], dim=2)
            v = torch.cat([value[:, :, :prefix], value[:, :, start:end]], dim=2)
            # bottom-right causal: remainder token j sees the whole prefix and remainder tokens <= j
            allowed = torch.ones(n, prefix + n, dtype=torch.bool, device=q.device).tril(diagonal=prefix)
            outs.append(F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout, scale=scaling))
        else:
            outs.append(F.scaled_dot_product_attention(q, key[:, :, start:end], value[:, :, start:end],
                                                       dropout_p=dropout, scale=scaling, is_causal=True))
        start = end
    out = torch.cat(outs, dim=2)  # [1, heads, L, head_dim]
    return out.transpose(1, 2).contiguous(), None


def register() -> str:
    """Make "persona_segments" an attention implementation transformers models can be set to."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, segment_attention_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME
