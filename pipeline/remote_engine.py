"""The engine interface over any OpenAI-compatible server: set TASKMASTER_ENGINE_URL.

    TASKMASTER_ENGINE_URL=http://gpu-box:8000/v1 TASKMASTER_ENGINE_API_KEY=... make studio

The Arena and evaluation then generate through that server instead of loading the base model
here: the project's own `python -m pipeline serve`, or vLLM serving the base with the adapters
(docs/serving.md). Model names follow `serve`: `taskmaster-base` for the base, and
`taskmaster-<run>` for a run's adapter (a vLLM server names them with
`--served-model-name taskmaster-base --lora-modules taskmaster-<run>=<folder>`).

Each row is one streaming request, all rows of a call in flight at once (the server batches
them). Both sides of an Arena battle are sent together, but a remote server decides its own
steps: they stream side by side, not necessarily in lockstep. A 429 from the server becomes
EngineBusy ("busy, retry"); any other failure ends that row alone with finish_reason "error".
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Iterator

from .batching import EngineBusy, Row, RowState
from .inference import EngineCalls
from .serve import served_name


def run_id_of(name: str, folder: str | Path) -> str:
    """The run id behind an attached adapter: runs/<id>/adapter -> <id> (evaluation attaches its
    candidate under a fixed name; the server knows it by its run)."""
    folder = Path(folder)
    return folder.parent.name if folder.name == "adapter" else name


class RemoteEngine(EngineCalls):
    def __init__(self, base_url: str, api_key: str | None = None, *, base_name: str = "remote",
                 timeout_s: float = 300):
        from openai import OpenAI

        self.base_name = base_name
        self.base_url = base_url
        # the SDK's own retries stay on for connection hiccups; a 429 is surfaced as busy
        self.client = OpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout_s, max_retries=1)
        self.adapters: dict[str, str] = {}
        self._models: dict[str, str] = {}

    def attach_adapter(self, name: str, folder: str | Path) -> None:
        """Nothing to load here: remember which served model answers as `name`."""
        self.adapters[name] = str(folder)
        self._models[name] = served_name(run_id_of(name, folder))

    def model_for(self, adapter: str | None) -> str:
        if adapter is None:
            return served_name(None)
        if adapter not in self._models:
            raise KeyError(f"adapter {adapter!r} is not attached; attached: {sorted(self.adapters)}")
        return self._models[adapter]

    def stream_rows(self, rows: list[Row], *, client: str = "default", block: bool = False) -> Iterator[list[RowState]]:
        models = [self.model_for(r.adapter) for r in rows]  # unknown adapters fail before any request
        events: queue.Queue = queue.Queue()
        cancelled = threading.Event()
        threads = [threading.Thread(target=self._one, args=(i, r, m, client, events, cancelled), daemon=True)
                   for i, (r, m) in enumerate(zip(rows, models))]
        for t in threads:
            t.start()
        states = [RowState() for _ in rows]
        left = len(rows)
        try:
            while left:
                item = events.get()
                batch = [item]
                while True:
                    try:
                        batch.append(events.get_nowait())
                    except queue.Empty:
                        break
                for i, update in batch:
                    if isinstance(update, EngineBusy):
                        raise update
                    s = states[i]
                    was_done = s.done
                    for k, v in update.items():
                        setattr(s, k, v)
                    if s.done and not was_done:
                        left -= 1
                yield [RowState(**vars(s)) for s in states]
        finally:
            cancelled.set()  # the consumer left (or a row was refused): stop every request

    def generate_rows(self, rows: list[Row], *, client: str = "default") -> list[RowState]:
        last = []
        for last in self.stream_rows(rows, client=client):
            pass
        return last

    def _one(self, i: int, row: Row, model: str, client: str, events: queue.Queue, cancelled: threading.Event):
        import openai

        s = row.sampling
        extra = {}
        if float(s.repetition_penalty) != 1.0:
            extra["repetition_penalty"] = float(s.repetition_penalty)  # vLLM's and serve's extension
        text, tokens, prompt_tokens = "", 0, 0
        try:
            stream = self.client.chat.completions.create(
                model=model, messages=row.messages, stream=True, max_tokens=int(s.max_new_tokens),
                temperature=float(s.temperature), top_p=float(s.top_p), seed=int(s.seed), user=client,
                stream_options={"include_usage": True}, extra_body=extra or None)
            finish = None
            with stream:
                for chunk in stream:
                    if cancelled.is_set():
                        events.put((i, {"done": True, "finish_reason": "cancelled"}))
                        return
                    if chunk.usage is not None:
                        tokens, prompt_tokens = chunk.usage.completion_tokens, chunk.usage.prompt_tokens
                    for c in chunk.choices:
                        if c.delta and c.delta.content:
                            text += c.delta.content
                            events.put((i, {"text": text, "tokens": tokens}))
                        if c.finish_reason:
                            finish = c.finish_reason
            events.put((i, {"text": text, "done": True, "finish_reason": finish or "stop", "tokens": tokens,
                            "prompt_tokens": prompt_tokens}))
        except openai.RateLimitError as exc:
            events.put((i, EngineBusy(f"The engine at {self.base_url} is busy: retry in a few seconds ({exc.message}).")))
        except Exception as exc:  # this row only
            events.put((i, {"text": text, "done": True, "finish_reason": "error",
                            "error": f"{type(exc).__name__}: {exc}"[:500]}))
