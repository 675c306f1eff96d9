"""Packed micro-batches: several conversations as one row, their shared prefix computed once.

Every training conversation starts with the same persona system prompt (~110 tokens of the
~250 a shipped conversation has), so a micro-batch of 8 conversations spends ~40% of its
compute on 8 identical copies of it. `PackedCollator` lays a micro-batch out as one row:

    [ common prefix | rest of conversation 1 | rest of conversation 2 | ... ]

with position ids that restart after the prefix for each conversation (prefix 0..P-1, each
remainder P..), and `segment_bounds` telling the attention (`pipeline.train.segment_attention`)
that each remainder sees the prefix and itself, causally, and nothing else. Every token
therefore sees exactly the context it has in its own conversation: the loss and the gradients
equal those of the padded batch (tests/test_train.py checks both), with no pad token and no
duplicate prefix computed.

The prefix is cut so that no labelled token is inside it or right after it: the first token
of each remainder is predicted, in the packed row, by the previous conversation's last token,
so it must be one the loss ignores (a system/user token, never an assistant one).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .data import IGNORE


def common_prefix_len(rows: list[list[int]]) -> int:
    if not rows:
        return 0
    first, n = rows[0], min(len(r) for r in rows)
    for i in range(n):
        t = first[i]
        if any(r[i] != t for r in rows[1:]):
            return i
    return n


def shareable_prefix_len(input_ids: list[list[int]], labels: list[list[int]]) -> int:
    """How many leading tokens all rows can share: identical, unlabelled, and followed by an unlabelled token."""
    if len(input_ids) < 2:
        return 0
    p = common_prefix_len(input_ids)
    for lab in labels:
        first_label = next((i for i, x in enumerate(lab) if x != IGNORE), len(lab))
        p = min(p, first_label - 1, len(lab) - 1)  # labels[p] must be IGNORE; >= 1 token left per row
    return max(0, p)


@dataclass
class PackedCollator:
    """A list of {"input_ids", "labels"} -> one packed row (see the module docstring).

    Output: input_ids, labels, position_ids (each [1, L]); segment_bounds ([1 + n] int tensor:
    prefix length, then the end of each remainder in the row); conversation_tokens (the tokens the
    conversations have, prefix counted once per conversation, which is what throughput is
    reported in, so figures compare with unpacked batching)."""

    share_prefix: bool = True

    def __call__(self, features: list[dict]) -> dict:
        ids = [list(f["input_ids"]) for f in features]
        labs = [list(f["labels"]) for f in features]
        p = shareable_prefix_len(ids, labs) if self.share_prefix else 0
        row_ids, row_labels, positions, ends = list(ids[0][:p]), [IGNORE] * p, list(range(p)), []
        for i, lab in zip(ids, labs):
            rest = len(i) - p
            row_ids += i[p:]
            # The first token of each remainder is predicted across a boundary: never a target.
            # (shareable_prefix_len guarantees it is unlabelled; without a shared prefix the
            # conversation's first token is the template's BOS/role header, also unlabelled.)
            row_labels += [IGNORE] + lab[p + 1:]
            positions += range(p, p + rest)
            ends.append(len(row_ids))
        as_row = lambda x: torch.tensor([x], dtype=torch.long)  # noqa: E731
        return {
            "input_ids": as_row(row_ids),
            "labels": as_row(row_labels),
            "position_ids": as_row(positions),
            "segment_bounds": torch.tensor([p] + ends, dtype=torch.long),
            "conversation_tokens": torch.tensor(sum(len(i) for i in ids), dtype=torch.long),
        }
