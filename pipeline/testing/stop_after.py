"""A stop request that arrives after a given number of checks: how tests and benchmarks stop a real
training run at an exact step (`run_training(..., stop_event=StopAfter(n))`), as SIGTERM would."""

from __future__ import annotations

import threading


class StopAfter(threading.Event):
    """Set from the (n+1)-th `is_set()` on. The runner checks once after loading the model, then at
    every optimizer step's end: StopAfter(2) stops after step 2 (a checkpoint to resume from)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def is_set(self) -> bool:
        self.n -= 1
        return self.n < 0 or super().is_set()
