"""Both sides of a battle streaming at once, from one copy of the base weights.

A battle's two conversations are submitted to the engine's continuous batcher as ONE group
(`ChatEngine.stream_rows`): they join the running decode batch in the same step, so every
step advances both replies, the voter sees them grow side by side and neither side is favoured
by arriving first. Other voters' battles share the same steps: a battle sent while others are
decoding starts at the next step instead of waiting for them (pipeline/batching.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

from ..errors import UserError
from ..inference import Row, SamplingConfig


@dataclass
class PairUpdate:
    left: str
    right: str
    left_done: bool
    right_done: bool
    first_token_s: float | None  # seconds from the call to the first visible token of either side
    elapsed_s: float
    # "stop" or "length" (cut by the token limit) per side once done, else None
    left_finish: str | None = None
    right_finish: str | None = None
    # completion tokens so far per side (with finish "length": where the reply was cut)
    left_tokens: int = 0
    right_tokens: int = 0

    def cut_at(self) -> tuple[int | None, int | None]:
        """Per side: the token count a finished reply was cut at by the token limit, else None."""
        return (self.left_tokens if self.left_finish == "length" else None,
                self.right_tokens if self.right_finish == "length" else None)

    @property
    def done(self) -> bool:
        return self.left_done and self.right_done


def stream_pair(engine, conv_left: list[dict], conv_right: list[dict], adapter_left: str | None,
                adapter_right: str | None, sampling: SamplingConfig, *, client: str = "arena") -> Iterator[PairUpdate]:
    """Yield cumulative texts for both sides as they grow; the last update has done=True.
    A side that fails (a row the engine could not tokenize or run) ends the battle with a
    UserError; the other voters' battles in the same batch are not affected."""
    t0 = time.perf_counter()
    first = None
    rows = [Row(conv_left, adapter_left, sampling), Row(conv_right, adapter_right, sampling)]
    for left, right in _pairs(engine.stream_rows(rows, client=client)):
        now = time.perf_counter() - t0
        if first is None and (left.text or right.text):
            first = now
        for s in (left, right):
            if s.finish_reason == "error":
                raise UserError(f"The models could not answer this prompt ({s.error}). Edit it and send again.")
        yield PairUpdate(left.text, right.text, left.done, right.done, first, now,
                         left.finish_reason, right.finish_reason, left.tokens, right.tokens)


def _pairs(states_iter):
    for states in states_iter:
        yield states[0], states[1]
