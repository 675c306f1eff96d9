"""One loaded base model that answers as the base or as any attached LoRA adapter.

The base weights are loaded once; adapters are attached to the same PEFT model by name and
switched per call (or disabled, for the base). Two models in memory would double RAM for no
gain: an adapter is a few MB beside hundreds of MB (135M) or 16 GB (8B) of base weights.

All generation goes through a lock, because switching the active adapter and generating
must not interleave between threads (Gradio serves requests from a thread pool).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from .models import load_model_and_tokenizer
from .settings import Settings

BASE = None  # adapter name meaning "the base model, no adapter"


@dataclass(frozen=True)
class SamplingConfig:
    """How replies are sampled; recorded beside every batch of replies."""

    max_new_tokens: int = 150  # the seed's usage example
    temperature: float = 0.7  # 0 means greedy decoding
    top_p: float = 0.9
    repetition_penalty: float = 1.1  # small models loop without it
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        how = "greedy" if self.temperature <= 0 else f"temperature {self.temperature:g}, top-p {self.top_p:g}"
        return f"{how}, repetition penalty {self.repetition_penalty:g}, max {self.max_new_tokens} new tokens"

    def generate_kwargs(self) -> dict:
        kw = dict(max_new_tokens=self.max_new_tokens, repetition_penalty=self.repetition_penalty)
        if self.temperature > 0:
            kw.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            kw.update(do_sample=False)
        return kw


SAMPLING_FIELDS = ("max_new_tokens", "temperature", "top_p", "repetition_penalty", "seed")


def default_sampling(base: str, **overrides) -> SamplingConfig:
    """The base model's default decoding (its registry entry, pipeline.models), with `overrides`
    (None values ignored: "not set" means the model's default). Every caller that generates
    replies (evaluation, respond, Arena, serve) starts from here, so a 135M model decodes greedily
    everywhere unless someone chooses otherwise, and what was used is recorded beside the replies."""
    from .models import sampling_defaults

    values = {**sampling_defaults(base)[0], **{k: v for k, v in overrides.items() if v is not None}}
    unknown = set(values) - set(SAMPLING_FIELDS)
    if unknown:
        raise TypeError(f"unknown sampling settings {sorted(unknown)}; known: {', '.join(SAMPLING_FIELDS)}")
    types = {"max_new_tokens": int, "seed": int}
    return SamplingConfig(**{k: types.get(k, float)(v) for k, v in values.items()})


class ChatEngine:
    def __init__(self, base: str, settings: Settings, *, device: str | None = None, model=None, tokenizer=None):
        self.base_name = base
        if model is None:
            model, tokenizer = load_model_and_tokenizer(base, settings, device=device)
        self.model = model
        self.tokenizer = tokenizer
        self.adapters: dict[str, str] = {}  # name -> folder
        self._lock = threading.RLock()

    @property
    def device(self):
        return next(self.model.parameters()).device

    # ---- adapters -------------------------------------------------------------------
    def attach_adapter(self, name: str, folder: str | Path) -> None:
        """Attach a PEFT adapter under `name` (idempotent for the same folder)."""
        folder = str(folder)
        with self._lock:
            if self.adapters.get(name) == folder:
                return
            from peft import PeftModel

            if not self.adapters:
                self.model = PeftModel.from_pretrained(self.model, folder, adapter_name=name)
            else:
                if name in self.adapters:
                    self.model.delete_adapter(name)
                self.model.load_adapter(folder, adapter_name=name)
            self.model.eval()
            self.adapters[name] = folder

    def _activate(self, adapter: str | None):
        """Context manager: the model answering as `adapter` (None = base)."""
        if adapter is None:
            return self.model.disable_adapter() if self.adapters else contextlib.nullcontext()
        if adapter not in self.adapters:
            raise KeyError(f"adapter {adapter!r} is not attached; attached: {sorted(self.adapters)}")
        self.model.set_adapter(adapter)
        return contextlib.nullcontext()

    # ---- generation -----------------------------------------------------------------
    def _encode(self, messages: list[dict]):
        enc = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        return {k: v.to(self.device) for k, v in enc.items()}

    def generate(self, messages: list[dict], adapter: str | None = BASE,
                 sampling: SamplingConfig = SamplingConfig()) -> str:
        return self.generate_batch([messages], adapter, sampling)[0]

    def generate_batch(self, conversations: list[list[dict]], adapter: str | None = BASE,
                       sampling: SamplingConfig = SamplingConfig(), batch_size: int = 8) -> list[str]:
        """Replies for many conversations, left-padded in batches (decoder-only models pad left)."""
        import torch

        out: list[str] = []
        tok = self.tokenizer
        with self._lock:
            old_side = tok.padding_side
            tok.padding_side = "left"
            try:
                for i in range(0, len(conversations), batch_size):
                    chunk = conversations[i:i + batch_size]
                    texts = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in chunk]
                    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
                    torch.manual_seed(sampling.seed + i)
                    with self._activate(adapter), torch.inference_mode():
                        gen = self.model.generate(**enc, **sampling.generate_kwargs(), pad_token_id=tok.pad_token_id)
                    new = gen[:, enc["input_ids"].shape[1]:]
                    out.extend(t.strip() for t in tok.batch_decode(new, skip_special_tokens=True))
            finally:
                tok.padding_side = old_side
        return out

    def stream(self, messages: list[dict], adapter: str | None = BASE,
               sampling: SamplingConfig = SamplingConfig()) -> Iterator[str]:
        """Yield the reply text as it grows (cumulative), token by token."""
        import torch
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        enc = self._encode(messages)
        error: list[BaseException] = []

        def work():
            try:
                with self._lock:
                    torch.manual_seed(sampling.seed)
                    with self._activate(adapter), torch.inference_mode():
                        self.model.generate(**enc, **sampling.generate_kwargs(), streamer=streamer,
                                            pad_token_id=self.tokenizer.pad_token_id)
            except BaseException as exc:  # surface errors in the consumer thread
                error.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        text = ""
        for piece in streamer:
            text += piece
            yield text
        thread.join()
        if error:
            raise error[0]

    def stream_batch(self, conversations: list[list[dict]], adapters: list[str | None],
                     sampling: SamplingConfig = SamplingConfig()) -> Iterator[tuple[list[str], list[bool]]]:
        """Generate replies for several conversations in ONE batched `generate`, each row as its
        own adapter (None = base), and yield (texts so far, finished flags) after every step.

        Added for the Arena (issue 7): one copy of the base weights answers as the base and as
        an adapter in the same forward pass, so both sides stream at once at about the cost of
        one. One adapter among base rows: a per-row LoRA scale (`_row_masked`); several
        adapters: PEFT's mixed-adapter batches (`adapter_names=[...]`, "__base__" for the
        base). Without attached adapters every row must be the base.
        """
        import queue as _queue

        import torch

        if len(conversations) != len(adapters):
            raise ValueError("one adapter (or None) per conversation")
        for a in adapters:
            if a is not None and a not in self.adapters:
                raise KeyError(f"adapter {a!r} is not attached; attached: {sorted(self.adapters)}")
        tok = self.tokenizer
        events: _queue.Queue = _queue.Queue()
        streamer = _BatchStreamer(tok, len(conversations), events)
        error: list[BaseException] = []

        def work():
            try:
                with self._lock:
                    old_side = tok.padding_side
                    tok.padding_side = "left"
                    try:
                        texts = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
                                 for c in conversations]
                        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
                    finally:
                        tok.padding_side = old_side
                    kw = {}
                    masked = self._row_masked(adapters)
                    if masked is None and self.adapters:
                        kw["adapter_names"] = ["__base__" if a is None else a for a in adapters]
                    torch.manual_seed(sampling.seed)
                    with masked or contextlib.nullcontext(), torch.inference_mode():
                        self.model.generate(**enc, **sampling.generate_kwargs(), streamer=streamer,
                                            pad_token_id=tok.pad_token_id, **kw)
            except BaseException as exc:  # surface errors in the consumer thread
                error.append(exc)
            finally:
                events.put(None)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        while True:
            item = events.get()
            if item is None:
                break
            # Drain whatever else is ready so a slow consumer shows the latest state at once.
            while True:
                try:
                    nxt = events.get_nowait()
                except _queue.Empty:
                    break
                if nxt is None:
                    events.put(None)
                    break
                item = nxt
            yield item
        thread.join()
        if error:
            raise error[0]
        yield streamer.snapshot(final=True)

    def _row_masked(self, adapters: list[str | None]):
        """A context in which ONE adapter answers for its rows and the base for the others, or None.

        PEFT's mixed-adapter batches (`adapter_names`) gather and scatter the adapter's rows in
        every LoRA layer; for the Arena's usual pair (base + one adapter) that indexing cost
        ~10 ms per decoded token on the 2-core CPU, a battle side streaming at 77% of plain
        `generate` instead of ~90% (docs/benchmarks.md). With a single adapter in the batch, the
        adapter can stay active for every row and its LoRA scale be a per-row tensor, 0 for the
        base rows: `base(x) + B(A(x)) * 0` is the base output exactly. Only plain LoRA layers
        qualify (variants such as DoRA do not read `scaling` the same way)."""
        import torch
        from peft.tuners.lora import LoraLayer

        named = {a for a in adapters if a is not None}
        if len(named) != 1:
            return None
        (name,) = named
        layers = [m for m in self.model.modules() if isinstance(m, LoraLayer) and name in m.scaling]
        if not layers or any(name in getattr(m, "lora_variant", {}) or name not in m.lora_A for m in layers):
            return None
        rows = torch.tensor([a == name for a in adapters], device=self.device)

        @contextlib.contextmanager
        def masked():
            saved = [(m, m.scaling[name]) for m in layers]
            try:
                for m, scale in saved:
                    dtype = m.lora_A[name].weight.dtype
                    m.scaling[name] = (rows.to(dtype) * scale).view(-1, 1, 1)
                with self._activate(name):
                    yield
            finally:
                for m, scale in saved:
                    m.scaling[name] = scale

        return masked()

    def timed_generate(self, messages: list[dict], adapter: str | None = BASE,
                       sampling: SamplingConfig = SamplingConfig()) -> tuple[str, float]:
        t0 = time.perf_counter()
        text = self.generate(messages, adapter, sampling)
        return text, time.perf_counter() - t0


class _BatchStreamer:
    """A transformers streamer for a batch: `put()` gets the prompt ids once, then one new
    token id per row per step; each row is decoded on its own and stops at its EOS."""

    def __init__(self, tokenizer, rows: int, events):
        self.tokenizer = tokenizer
        self.ids: list[list[int]] = [[] for _ in range(rows)]
        self.done = [False] * rows
        self.events = events
        self._prompt_seen = False
        eos = tokenizer.eos_token_id
        self._stop = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()

    def put(self, value) -> None:
        if not self._prompt_seen:  # the first call carries the whole prompt batch
            self._prompt_seen = True
            return
        flat = value.reshape(len(self.ids), -1)[:, -1].tolist()
        for i, t in enumerate(flat):
            if self.done[i]:
                continue
            if t in self._stop:
                self.done[i] = True
            else:
                self.ids[i].append(int(t))
        self.events.put(self.snapshot())

    def end(self) -> None:
        self.done = [True] * len(self.done)

    def snapshot(self, final: bool = False):
        texts = [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in self.ids]
        return texts, ([True] * len(texts) if final else list(self.done))
