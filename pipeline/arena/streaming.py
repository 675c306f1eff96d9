"""Both sides of a battle streaming at once, from one copy of the base weights.

`ChatEngine.stream_batch` puts the two conversations in ONE batched `generate` with PEFT's
mixed-adapter batch (`adapter_names=["__base__", "<run>"]`): every decoding step advances
both replies, so the voter sees them grow side by side and neither side is favoured by
arriving first. The cost is about one generation, not two (batch of 2 on a CPU: the
weights are read once per step for both rows).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

from ..inference import SamplingConfig


@dataclass
class PairUpdate:
    left: str
    right: str
    left_done: bool
    right_done: bool
    first_token_s: float | None  # seconds from the call to the first visible token of either side
    elapsed_s: float

    @property
    def done(self) -> bool:
        return self.left_done and self.right_done


class PairBatcher:
    """Battles that arrive while the model is busy are answered together in the next batch.

    With one base model, battles are served one at a time unless they share a `generate`:
    20 voters pressing Send together would each wait for up to 19 other battles. The batcher's
    worker thread takes every waiting battle (up to `max_battles`), runs ONE mixed-adapter
    `stream_batch` over all their rows (2 per battle), and hands each battle its own two rows as
    they grow. A battle that arrives mid-batch waits for the next one (no row is added to a
    running `generate`). On a CPU a batch of 2k rows costs far less than k batches of 2: the
    weights are read once per step for every row.

    Rows of one batch share the sampling settings (the first battle's seed); battles with other
    settings (another max_new_tokens) go to a later batch.
    """

    def __init__(self, engine_factory, max_battles: int = 8):
        import queue

        self._engine_factory = engine_factory
        self.max_battles = max_battles
        self._queue: queue.Queue = queue.Queue()
        self._worker = None
        self._start_lock = __import__("threading").Lock()
        self.batches: list[int] = []  # battles per batch, for the benchmark and tests (bounded below)
        self.submitted = 0  # battles handed to the queue so far (a test waits on it instead of sleeping)

    def stream(self, conv_left: list[dict], conv_right: list[dict], adapter_left: str | None,
               adapter_right: str | None, sampling: SamplingConfig) -> Iterator[PairUpdate]:
        import queue

        out: queue.Queue = queue.Queue()
        t0 = time.perf_counter()
        self._ensure_worker()
        with self._start_lock:
            self._queue.put(((conv_left, conv_right), (adapter_left, adapter_right), sampling, out))
            self.submitted += 1
        first = None
        while True:
            item = out.get()
            if isinstance(item, BaseException):
                raise item
            texts, done = item
            now = time.perf_counter() - t0
            if first is None and (texts[0] or texts[1]):
                first = now
            update = PairUpdate(texts[0], texts[1], done[0], done[1], first, now)
            yield update
            if update.done:
                return

    def _ensure_worker(self) -> None:
        import threading

        with self._start_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="arena-batcher", daemon=True)
                self._worker.start()

    def _take(self) -> list:
        import queue

        batch = [self._queue.get()]
        key = _sampling_key(batch[0][2])
        later = []
        while len(batch) < self.max_battles:
            try:
                req = self._queue.get_nowait()
            except queue.Empty:
                break
            (batch if _sampling_key(req[2]) == key else later).append(req)
        for req in later:
            self._queue.put(req)
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            self.batches = (self.batches + [len(batch)])[-1000:]
            convs = [c for req in batch for c in req[0]]
            adapters = [a for req in batch for a in req[1]]
            finished = [False] * len(batch)
            try:
                engine = self._engine_factory()
                for texts, done in engine.stream_batch(convs, adapters, batch[0][2]):
                    for i, req in enumerate(batch):
                        if finished[i]:
                            continue
                        pair_done = [done[2 * i], done[2 * i + 1]]
                        req[3].put(([texts[2 * i], texts[2 * i + 1]], pair_done))
                        finished[i] = all(pair_done)
                for i, req in enumerate(batch):
                    if not finished[i]:  # defensive: stream_batch's last item has every row done
                        req[3].put((["", ""], [True, True]))
            except BaseException as exc:  # every waiting battle hears about it; the worker lives on
                for i, req in enumerate(batch):
                    if not finished[i]:
                        req[3].put(exc)


def _sampling_key(s: SamplingConfig) -> tuple:
    return (s.max_new_tokens, s.temperature, s.top_p, s.repetition_penalty)
