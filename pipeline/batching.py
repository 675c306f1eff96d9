"""Continuous batching: one decode loop per loaded base model, shared by every caller.

Every generation (Arena battles, evaluation replies, `python -m pipeline serve`, a package's
sample replies) becomes rows submitted to one `Batcher`. Its worker thread runs:

    loop:  admit waiting rows (round-robin over clients, up to `max_rows` running and about
           `max_prefill_tokens` new prompt tokens per step: a wave of arrivals is prefilled in chunks)
           prefill the new rows in one batched forward (the shared system prompt's KV reused)
           merge them into the running batch's KV cache
           one decode step for every running row, each row with its own adapter and sampling
           hand each row its new token; drop rows that stopped, ran out or were cancelled

so a request joins the running batch at the next step instead of waiting for it to finish.
On a CPU (and a GPU at small batch) a decode step reads every weight once whatever the
batch size, so k rows in one step cost far less than k steps.

Layout of the KV cache: one tensor per layer, [rows, kv_heads, columns, head_dim]. Rows are
left-padded to a common number of columns; a 4D additive mask hides each row's padding and
every row's position ids are its own token count, so a row's numbers do not depend on its
neighbours (padding contributes exp(-inf) = 0 to attention). When rows leave, the columns no
remaining row uses are trimmed. The running batch's cache has room for the next columns
(`_grow_layer`): a decode step writes its one new column in place, where transformers'
DynamicLayer concatenates, i.e. copies every row's whole cache on every step; only a join or a
leave copies the cache.

Per-row adapters: every LoRA adapter present in the batch is active at once and its scale is a
per-row tensor (the adapter's scale on its rows, 0 elsewhere), so `base(x) + B(A(x)) * 0` is
the base output exactly and each adapter row gets exactly its own adapter (docs/benchmarks.md:
PEFT's gather/scatter `adapter_names` path cost ~10 ms a token; it stays the fallback for
LoRA variants such as DoRA, which do not read `scaling` that way).

Prefix cache: the persona's system prompt starts every request. Its KV (per adapter: LoRA on
k/v projections changes it) is computed once, kept in a small LRU, and copied in front of each
new row, so a prefill only computes the user's turn. A request with task context (its system
message is the persona prompt and then the context) reuses the longest token prefix it shares
with a cached one.

Isolation: a row that fails to tokenize fails alone at submit; a batched prefill that raises is
retried row by row, and so is a decode step that raises, so only the failing row ends with
finish_reason "error" and its neighbours complete (issue 18: one bad request used to fail every
battle in its batch).
"""

from __future__ import annotations

import functools
import itertools
import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Iterator

from .errors import UserError

log = logging.getLogger(__name__)


class EngineBusy(UserError):
    """The queue is full: the caller should retry in a few seconds (HTTP 429 in `serve`)."""


@dataclass
class Row:
    """One reply to generate: a conversation (or prompt token ids), the adapter (None = base),
    and its own sampling settings (`pipeline.inference.SamplingConfig`)."""

    messages: list[dict] | None = None
    adapter: str | None = None
    sampling: object = None
    prompt_ids: list[int] | None = None  # instead of messages (already tokenized)


@dataclass
class RowState:
    """What a consumer sees of one row: the text so far (decoded), and how it ended."""

    text: str = ""
    done: bool = False
    finish_reason: str | None = None  # "stop" (a stop token), "length" (max_new_tokens), "cancelled", "error"
    tokens: int = 0  # completion tokens so far
    prompt_tokens: int = 0
    error: str | None = None
    token_ids: list[int] = field(default_factory=list)


@dataclass(eq=False)
class _Req:
    index: int
    group: "_Group"
    adapter: str | None
    sampling: object
    prompt_ids: list[int]
    prefix_len: int = 0  # leading tokens covered by the prefix cache (0: none)
    prefix_kv: list | None = None  # their per-layer KV, held from lookup to prefill (the LRU may evict it)
    max_new: int = 0
    out_ids: list[int] = field(default_factory=list)
    finish: str | None = None
    error: str | None = None
    generator: object = None
    seen: object = None  # tensor of prompt + generated ids, for the repetition penalty


class _Group:
    """Rows submitted together: admitted in the same step (an Arena battle's two sides advance
    in the same decode steps) and reported through one queue."""

    _ids = itertools.count()

    def __init__(self, client: str):
        self.id = next(self._ids)
        self.client = client
        self.reqs: list[_Req] = []
        self.events: queue.Queue = queue.Queue()
        self.cancelled = False
        self.submitted = time.perf_counter()
        self.on_event = None  # called (in the worker thread) after events were put: wakes an async reader

    def put(self, item) -> None:
        self.events.put(item)
        if self.on_event is not None:
            self.on_event()

    def cancel(self) -> None:
        self.cancelled = True


class Collector:
    """Turns a group's token events into `RowState`s (decoding in the reader's thread, not in
    the engine's loop)."""

    def __init__(self, group: _Group, tokenizer):
        self.group = group
        self.tokenizer = tokenizer
        self.ids: list[list[int]] = [[] for _ in group.reqs]
        self.states = [RowState(prompt_tokens=len(r.prompt_ids)) for r in group.reqs]
        self.left = len(group.reqs)

    def drain(self, block: bool = True) -> bool:
        """Apply every waiting event (waiting for one first when `block`); True if any."""
        batch = []
        try:
            batch.append(self.group.events.get(block=block))
        except queue.Empty:
            return False
        while True:
            try:
                batch.append(self.group.events.get_nowait())
            except queue.Empty:
                break
        for i, new_ids, finish, error in batch:
            self.ids[i].extend(new_ids)
            s = self.states[i]
            if finish is not None and not s.done:
                s.done, s.finish_reason, s.error = True, finish, error
                self.left -= 1
        for i, s in enumerate(self.states):
            s.tokens = len(self.ids[i])
            s.token_ids = list(self.ids[i])
            s.text = self.tokenizer.decode(self.ids[i], skip_special_tokens=True) if self.ids[i] else ""
        return True

    def snapshot(self) -> list[RowState]:
        return [RowState(**{**vars(s), "token_ids": list(s.token_ids)}) for s in self.states]

    @property
    def done(self) -> bool:
        return self.left == 0


class Batcher:
    def __init__(self, model, tokenizer, lock: threading.RLock, *, max_rows: int = 48, max_waiting: int = 256,
                 max_rows_per_client: int | None = None, prefix_cache_size: int = 8,
                 max_prefill_tokens: int = 256):
        self.model = model  # replaced by ChatEngine when the first adapter wraps it in a PeftModel
        self.tokenizer = tokenizer
        self.lock = lock  # ChatEngine's: attaching an adapter waits for the current step only
        self.max_rows = max_rows
        self.max_waiting = max_waiting
        # One client (an evaluation run, a script) holds at most this many rows while others wait.
        self.max_rows_per_client = max_rows_per_client or max(1, max_rows // 2)
        self.prefix_cache_size = prefix_cache_size
        # Chunked admission: one step prefills at most this many new tokens (past the cached
        # system prompt; at least one group), then every running row decodes, then the next chunk.
        # A room of voters arriving at once then sees first tokens chunk by chunk instead of all
        # after one long prefill (40 rows x ~17 tokens: ~1 s on 2 cores, 2-5 s when the LM head
        # still took a strided input, see _contiguous_lm_head_input), and rows already
        # streaming stall for one chunk, not for the whole wave.
        self.max_prefill_tokens = max_prefill_tokens
        self._cond = threading.Condition()
        self._waiting: "OrderedDict[str, deque[_Group]]" = OrderedDict()  # client -> groups, round-robin
        self._n_waiting = 0
        self._running: list[_Req] = []
        self._cache = None  # the running rows' KV: a transformers cache of `_grow_layer`s, or None
        self._mask = None  # [rows, columns] bool: which cache columns a row attends to
        self._prefix: "OrderedDict[tuple, list]" = OrderedDict()  # (adapter, prefix ids) -> per-layer KV
        self._system_ids: dict[str, list[int]] = {}  # system prompt text -> its template's tokens
        self.use_prefix_cache = True
        self._lora: list | None = None  # the model's LoRA layers, found once per attached adapter
        self._cache_kw: str | None = None  # the forward's name for the KV cache (differs across transformers)
        self._worker: threading.Thread | None = None
        self._closed = False
        self.admitted: deque = deque(maxlen=1000)  # (client, group id) in admission order, for tests
        self.stats = {"steps": 0, "max_rows_seen": 0, "prefills": 0, "prefix_hits": 0, "rejected": 0,
                      "row_errors": 0, "cancelled": 0, "slot_reuses": 0, "appends": 0, "compactions": 0}
        self._stop_ids = stop_token_ids(model, tokenizer)
        cfg = getattr(model, "config", None)
        self.max_positions = getattr(cfg, "max_position_embeddings", None) or 1 << 30

    # ---- the caller's side ----------------------------------------------------------------------
    def submit(self, rows: list[Row], *, client: str = "default", block: bool = False) -> _Group:
        """Queue `rows` as one group. Rows that cannot be tokenized end at once with
        finish_reason "error" (their neighbours go ahead). Raises EngineBusy when the queue is
        full, unless `block` (batch jobs wait for room instead)."""
        group = _Group(client)
        for i, row in enumerate(rows):
            req = _Req(i, group, row.adapter, row.sampling, [])
            try:
                req.prompt_ids = self._tokenize(row)
                req.prefix_len = self._system_prefix_len(row, req.prompt_ids)
                if len(req.prompt_ids) >= self.max_positions:
                    raise ValueError(f"the prompt has {len(req.prompt_ids)} tokens; the model reads at most "
                                     f"{self.max_positions}: shorten the conversation")
                req.max_new = max(1, min(int(row.sampling.max_new_tokens), self.max_positions - len(req.prompt_ids)))
            except Exception as exc:  # this row only
                req.finish, req.error = "error", _describe(exc)
            group.reqs.append(req)
        live = [r for r in group.reqs if r.finish is None]
        with self._cond:
            if self._closed:
                raise RuntimeError("the engine is closed")
            if not block and self._n_waiting + len(live) > self.max_waiting:
                self.stats["rejected"] += 1
                raise EngineBusy(f"The model is busy ({self._n_waiting} requests waiting): retry in a few seconds.")
            while block and self._n_waiting and self._n_waiting + len(live) > self.max_waiting:
                self._cond.wait(0.5)
            for r in group.reqs:
                if r.finish is not None:
                    self.stats["row_errors"] += 1
                    group.put((r.index, [], r.finish, r.error))
            if live:
                self._waiting.setdefault(client, deque()).append(group)
                self._n_waiting += len(live)
                self._ensure_worker()
                self._cond.notify_all()
        return group

    def stream(self, rows: list[Row], *, client: str = "default", block: bool = False) -> Iterator[list[RowState]]:
        """Yield the state of every row after each step that changed one, until all are done.
        Closing the iterator early (a client went away) cancels the rows: their slots are free
        at the next step."""
        group = self.submit(rows, client=client, block=block)
        c = Collector(group, self.tokenizer)
        try:
            while not c.done:
                c.drain()  # a slow consumer sees the latest state at once
                yield c.snapshot()
        finally:
            if not c.done:
                self.cancel(group)

    def cancel(self, group: _Group) -> None:
        group.cancel()
        with self._cond:
            self._cond.notify_all()

    def close(self, timeout: float = 30.0) -> None:
        """Cancel what is still queued or running and stop the worker thread. A process must not
        exit with the worker alive: finalising torch under a live thread aborts the interpreter
        ("terminate called without an active exception", exit 134) after the work is written."""
        with self._cond:
            self._closed = True
            for groups in self._waiting.values():
                for g in groups:
                    g.cancel()
            for r in self._running:
                r.group.cancel()
            self._cond.notify_all()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)
            if worker.is_alive():
                log.warning("the engine worker did not stop within %.0f s", timeout)

    def generate(self, rows: list[Row], *, client: str = "default", block: bool = True) -> list[RowState]:
        last = None
        for last in self.stream(rows, client=client, block=block):
            pass
        return last or []

    def _tokenize(self, row: Row) -> list[int]:
        if row.prompt_ids is not None:
            return [int(t) for t in row.prompt_ids]
        tok = self.tokenizer
        text = tok.apply_chat_template(row.messages, add_generation_prompt=True, tokenize=False)
        return tok(text, add_special_tokens=False)["input_ids"]

    def _system_prefix_len(self, row: Row, ids: list[int]) -> int:
        """Tokens of the leading system message, or 0: the template rendered for the system
        message alone must be a token prefix of the whole prompt (Llama 3.1's template, say,
        may render it differently; then nothing is cached), and leave at least one token."""
        msgs = row.messages or []
        if not msgs or msgs[0].get("role") != "system":
            return 0
        key = msgs[0].get("content")
        sys_ids = self._system_ids.get(key)
        if sys_ids is None:
            tok = self.tokenizer
            text = tok.apply_chat_template([msgs[0]], add_generation_prompt=False, tokenize=False)
            sys_ids = tok(text, add_special_tokens=False)["input_ids"]
            if len(self._system_ids) > 64:
                self._system_ids.clear()
            self._system_ids[key] = sys_ids
        n = len(sys_ids)
        return n if 0 < n < len(ids) and ids[:n] == sys_ids else 0

    # ---- the worker ---------------------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._loop, name="engine-batcher", daemon=True)
            self._worker.start()

    def _loop(self) -> None:
        import torch

        torch.set_grad_enabled(False)
        while True:
            with self._cond:
                while not self._running and not self._n_waiting and not self._closed:
                    self._cond.wait()
                if self._closed and not self._running and not self._n_waiting:
                    return
                new = self._admit()
            try:
                with self.lock, torch.inference_mode():
                    self._drop_cancelled()
                    if new:
                        self._prefill(new)
                        self._compact()  # rows that stopped at their first token
                    if self._running:
                        self._decode()
            except Exception as exc:  # a bug or an out-of-memory in a step: the rows fail, the engine lives on
                log.exception("engine step failed")
                for r in self._running:
                    if r.finish is None:
                        self._finish(r, "error", _describe(exc))
                self._running, self._cache, self._mask = [], None, None
            with self._cond:
                self._retire()
                self._cond.notify_all()

    def _admit(self) -> list[_Req]:
        """Take waiting groups round-robin over clients while rows are free (called with the lock)."""
        live = [r for r in self._running if r.finish is None]
        free = self.max_rows - len(live)
        per_client: dict[str, int] = {}
        for r in live:
            per_client[r.group.client] = per_client.get(r.group.client, 0) + 1
        taken: list[_Req] = []
        budget = self.max_prefill_tokens
        progress = True
        while free > 0 and budget > 0 and self._waiting and progress:
            progress = False
            for client in list(self._waiting):
                groups = self._waiting[client]
                g = groups[0]
                live = [r for r in g.reqs if r.finish is None]
                if g.cancelled:
                    groups.popleft()
                    self._n_waiting -= len(live)
                    for r in live:
                        self._finish(r, "cancelled")
                    progress = True
                elif len(live) <= free and (per_client.get(client, 0) + len(live) <= self.max_rows_per_client
                                            or len(self._waiting) == 1 or not per_client.get(client)):
                    tokens = sum(len(r.prompt_ids) - r.prefix_len for r in live)
                    if taken and tokens > budget:
                        budget = 0  # this chunk is full; the group leads the next one
                        break
                    budget -= tokens
                    groups.popleft()
                    self._n_waiting -= len(live)
                    taken += live
                    self.admitted.append((client, g.id))
                    free -= len(live)
                    per_client[client] = per_client.get(client, 0) + len(live)
                    progress = True
                    self._waiting.move_to_end(client)  # the next admission starts with another client
                if not groups:
                    del self._waiting[client]
                if free <= 0:
                    break
        return taken

    # ---- model steps -------------------------------------------------------------------------------
    def _prefill(self, new: list[_Req]) -> None:
        """Batched prefill of the new rows (grouped by cached prefix), then merge into the batch."""
        self.stats["prefills"] += 1
        for r in new:
            r.prefix_len = self._prefix_for(r)
        by_prefix: dict[int, list[_Req]] = {}
        for r in new:
            by_prefix.setdefault(r.prefix_len, []).append(r)
        for plen, reqs in by_prefix.items():
            try:
                kv, mask, logits = self._forward_prompts(reqs, plen)
            except Exception as exc:
                if len(reqs) == 1:
                    self._finish(reqs[0], "error", _describe(exc))
                    self.stats["row_errors"] += 1
                    continue
                # one row may be at fault: each row alone, so only the failing one ends
                log.warning("batched prefill failed (%s); retrying its %d rows one by one", exc, len(reqs))
                for r in reqs:
                    try:
                        kv, mask, logits = self._forward_prompts([r], plen)
                    except Exception as exc1:
                        self._finish(r, "error", _describe(exc1))
                        self.stats["row_errors"] += 1
                        continue
                    self._join([r], kv, mask, logits)
                continue
            self._join(reqs, kv, mask, logits)

    def _join(self, reqs: list[_Req], kv, mask, logits) -> None:
        import torch

        for r in reqs:
            r.prefix_kv = None  # in the batch's cache now
            r.seen = torch.tensor(r.prompt_ids, dtype=torch.long, device=logits.device)
            r.generator = _generator(r.sampling, r.prompt_ids, logits.device)
        self._sample(reqs, logits)
        # rows that already stopped at their first token are merged too; _compact drops them
        self._merge(reqs, kv, mask)

    def _forward_prompts(self, reqs: list[_Req], plen: int):
        """Run the prompts (past their cached prefix of `plen` tokens) in one left-padded batch."""
        import torch

        dev = self._device()
        tails = [r.prompt_ids[plen:] for r in reqs]
        L = max(len(t) for t in tails)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(reqs), L), pad, dtype=torch.long, device=dev)
        cols = torch.zeros((len(reqs), plen + L), dtype=torch.bool, device=dev)
        pos = torch.zeros((len(reqs), L), dtype=torch.long, device=dev)
        for i, t in enumerate(tails):
            ids[i, L - len(t):] = torch.tensor(t, dtype=torch.long, device=dev)
            cols[i, :plen] = True
            cols[i, plen + L - len(t):] = True
            pos[i, L - len(t):] = torch.arange(plen, plen + len(t), device=dev)
        cache = self._new_cache()
        if plen:
            for li, layer in enumerate(cache.layers):
                ks = torch.cat([r.prefix_kv[li][0] for r in reqs], 0)
                vs = torch.cat([r.prefix_kv[li][1] for r in reqs], 0)
                _set_layer(layer, ks, vs)
        logits = self._forward(ids, pos, cols, cache, [r.adapter for r in reqs])
        kv = [[layer.keys, layer.values] for layer in cache.layers]
        return kv, cols, logits

    def _decode(self) -> None:
        import torch

        dev = self._device()
        rows = self._running
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.tensor([[r.out_ids[-1] if r.out_ids else pad] for r in rows], dtype=torch.long, device=dev)
        pos = torch.tensor([[max(0, len(r.prompt_ids) + len(r.out_ids) - 1)] for r in rows], dtype=torch.long,
                           device=dev)
        self._mask = torch.cat([self._mask, torch.ones((len(rows), 1), dtype=torch.bool, device=dev)], 1)
        filled = [layer.n for layer in self._cache.layers]
        try:
            logits = self._forward(ids, pos, self._mask, self._cache, [r.adapter for r in rows])
        except Exception as exc:
            if len(rows) == 1:
                raise
            # one row may be at fault (its adapter, its sampling): each row alone, so only the
            # failing one ends; the layers the failed step already wrote are rolled back
            log.warning("batched decode step failed (%s); retrying its %d rows one by one", exc, len(rows))
            for layer, n in zip(self._cache.layers, filled):
                layer.truncate(n)
            logits = self._decode_rows_alone(ids, pos)
            rows = self._running
        self.stats["steps"] += 1
        self.stats["max_rows_seen"] = max(self.stats["max_rows_seen"], sum(r.finish is None for r in rows))
        self._sample(rows, logits)

    def _decode_rows_alone(self, ids, pos):
        """The decode step row by row (after the batched step failed); rows that fail again end
        with finish_reason "error", the others go on in a batch rebuilt from their own caches.
        Returns the survivors' logits; `_running`, `_cache` and `_mask` then hold only them."""
        import torch
        from transformers import DynamicCache

        layer_cls = _grow_layer()
        keep, caches, logits = [], [], []
        for i, r in enumerate(self._running):
            if r.finish is not None:
                continue
            cache = DynamicCache(config=_base_config(self.model))
            cache.layers = [layer_cls(layer.keys[i:i + 1], layer.values[i:i + 1], 1) for layer in self._cache.layers]
            try:
                out = self._forward(ids[i:i + 1], pos[i:i + 1], self._mask[i:i + 1], cache, [r.adapter])
            except Exception as exc:
                self._finish(r, "error", _describe(exc))
                self.stats["row_errors"] += 1
                continue
            keep.append(i)
            caches.append(cache)
            logits.append(out)
        idx = torch.tensor(keep, dtype=torch.long, device=self._mask.device)
        self._mask = self._mask.index_select(0, idx)
        self._running = [self._running[i] for i in keep]
        if not keep:
            self._cache = None
            return torch.empty((0, 0))
        self._cache = self._running_cache([[torch.cat([c.layers[li].keys for c in caches], 0),
                                            torch.cat([c.layers[li].values for c in caches], 0)]
                                           for li in range(len(caches[0].layers))])
        return torch.cat(logits, 0)

    def _forward(self, ids, pos, cols, cache, adapters: list[str | None]):
        """One forward pass; returns float32 logits of each row's last position."""
        import torch

        q = ids.shape[1]
        T = cols.shape[1]
        # causal inside the new block, and each row's own valid columns before it
        causal = torch.ones((q, q), dtype=torch.bool, device=ids.device).tril()
        allowed = cols[:, None, :].expand(-1, q, -1).clone()
        allowed[:, :, T - q:] &= causal
        dtype = self._dtype()
        mask = torch.zeros(allowed.shape, dtype=dtype, device=ids.device)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        kw = {}
        if self._lora is None:
            self._lora = _lora_layers(self.model)
            # here, not in __init__: the model may have been swapped (model_changed) since
            _contiguous_lm_head_input(self.model)
        with _AdapterRows(self._lora, adapters) as fallback:
            if fallback is not None:
                kw["adapter_names"] = fallback
            if self._cache_kw is None:
                self._cache_kw = _cache_kwarg(self.model)
            kw[self._cache_kw] = cache
            out = self.model(input_ids=ids, attention_mask=mask[:, None], position_ids=pos,
                             use_cache=True, logits_to_keep=1, **kw)
        return out.logits[:, -1, :].to(torch.float32)

    def _sample(self, rows: list[_Req], logits) -> None:
        """Choose each row's next token with its own sampling settings and report it."""
        import torch

        for i, r in enumerate(rows):
            if r.finish is not None:
                continue
            try:
                tok = _next_token(logits[i], r)
            except Exception as exc:
                self._finish(r, "error", _describe(exc))
                continue
            if r.group.cancelled:
                self._finish(r, "cancelled")
                continue
            if tok in self._stop_ids:
                self._finish(r, "stop")
                continue
            r.out_ids.append(tok)
            r.seen = torch.cat([r.seen, torch.tensor([tok], dtype=torch.long, device=r.seen.device)])
            done = len(r.out_ids) >= r.max_new
            if done:
                self._finish(r, "length", new=[tok])
            else:
                r.group.put((r.index, [tok], None, None))

    def _finish(self, r: _Req, reason: str, error: str | None = None, new: list[int] | None = None) -> None:
        if reason == "cancelled":
            self.stats["cancelled"] += 1
        r.finish, r.error = reason, error
        r.group.put((r.index, new or [], reason, error))

    # ---- the KV cache -------------------------------------------------------------------------------
    def _merge(self, reqs: list[_Req], kv, mask) -> None:
        """Put prefilled rows into the running batch. A row goes into the slot of a finished row
        when its columns fit (a copy of that row only); the rest are appended, which copies the
        whole cache once (and drops the finished rows while at it). At 40 rows the cache of the
        embedded model is ~0.7 GB: appending on every join cost about a decode step each time."""
        import torch

        live = [j for j, r in enumerate(reqs) if r.finish is None]  # rows that stopped at their first token are done
        if not live:
            return
        if len(live) < len(reqs):
            idx = torch.tensor(live, dtype=torch.long, device=mask.device)
            reqs = [reqs[j] for j in live]
            kv = [[k.index_select(0, idx), v.index_select(0, idx)] for k, v in kv]
            mask = mask.index_select(0, idx)
        if not self._running:
            return self._start_batch(reqs, kv, mask)
        T_old, T_new = self._mask.shape[1], mask.shape[1]
        free = [i for i, r in enumerate(self._running) if r.finish is not None]
        placed = 0
        if T_new <= T_old:
            for j, slot in enumerate(free[:len(reqs)]):
                for layer, (k1, v1) in zip(self._cache.layers, kv):
                    layer.put_row(slot, k1[j], v1[j])
                self._mask[slot] = False
                self._mask[slot, T_old - T_new:] = mask[j]
                self._running[slot] = reqs[j]
                placed += 1
            self.stats["slot_reuses"] += placed
        if placed == len(reqs):
            return
        reqs, mask = reqs[placed:], mask[placed:]
        kv = [[k[placed:], v[placed:]] for k, v in kv]
        self._compact(force=True)
        if not self._running:
            return self._start_batch(reqs, kv, mask)
        T_old = self._mask.shape[1]
        T = max(T_old, T_new)
        parts = [([layer.keys for layer in self._cache.layers], [layer.values for layer in self._cache.layers]),
                 ([k for k, _ in kv], [v for _, v in kv])]
        room = self._room(self._running + reqs)
        self._cache = self._stacked_cache(parts, T, room)
        self._mask = torch.cat([_left_pad(self._mask, T), _left_pad(mask, T)], 0)
        self._running = self._running + list(reqs)
        self.stats["appends"] += 1

    def _start_batch(self, reqs: list[_Req], kv, mask) -> None:
        self._running, self._mask = list(reqs), mask
        self._cache = self._running_cache(kv)

    def _drop_cancelled(self) -> None:
        for r in self._running:
            if r.finish is None and r.group.cancelled:
                self._finish(r, "cancelled")
        self._compact()

    def _retire(self) -> None:
        self._compact()

    def _compact(self, force: bool = False) -> None:
        """Drop finished rows from the batch once they are a quarter of it (or `force`): until
        then their slots wait for new rows (see `_merge`), since dropping a row copies the whole
        cache and a finished row only costs its share of a decode step. Leading columns no live
        row reads are dropped at every call; that is a view, not a copy."""
        import torch

        keep = [i for i, r in enumerate(self._running) if r.finish is None]
        if not keep:
            self._running, self._cache, self._mask = [], None, None
            return
        dead = len(self._running) - len(keep)
        if dead and (force or 4 * dead >= len(self._running)):
            idx = torch.tensor(keep, dtype=torch.long, device=self._mask.device)
            mask = self._mask.index_select(0, idx)
            first = _first_used(mask)
            self._mask = mask[:, first:]
            self._running = [self._running[i] for i in keep]
            self._cache = self._running_cache([[layer.keys.index_select(0, idx)[:, :, first:],
                                                layer.values.index_select(0, idx)[:, :, first:]]
                                               for layer in self._cache.layers])
            self.stats["compactions"] += 1
            return
        live_mask = self._mask if not dead else self._mask[torch.tensor(keep, device=self._mask.device)]
        first = _first_used(live_mask)
        if first:
            for layer in self._cache.layers:
                layer.trim(first)
            self._mask = self._mask[:, first:]

    def _room(self, rows: list[_Req]) -> int:
        """Free columns to allocate after the filled ones: as many as the longest remaining reply,
        at most GROW_COLUMNS at a time (an 8B model's cache is ~128 KB a row and token)."""
        left = max((r.max_new - len(r.out_ids) for r in rows if r.finish is None), default=1)
        return max(1, min(left, GROW_COLUMNS))

    def _stacked_cache(self, parts, T: int, room: int):
        """A running cache whose rows are `parts` ([per-layer keys], [per-layer values]) stacked,
        each right-aligned to T columns, written once into buffers with `room` free columns."""
        from transformers import DynamicCache

        cache = DynamicCache(config=_base_config(self.model))
        layer_cls = _grow_layer()
        cache.layers = [layer_cls.stacked([p[0][li] for p in parts], [p[1][li] for p in parts], T, room)
                        for li in range(len(parts[0][0]))]
        return cache

    def _running_cache(self, kv: list[list]):
        """A cache over `kv` (per layer [keys, values]) with room for the running rows' next tokens."""
        from transformers import DynamicCache

        cache = DynamicCache(config=_base_config(self.model))
        layer_cls = _grow_layer()
        room = self._room(self._running)
        cache.layers = [layer_cls(k, v, room) for k, v in kv]
        return cache

    # ---- the prefix cache ---------------------------------------------------------------------------
    def _pkey(self, r: _Req) -> tuple:
        return (r.adapter, tuple(r.prompt_ids[:r.prefix_len]))

    def _prefix_for(self, r: _Req) -> int:
        """Length of this row's cached system-prompt prefix (computing it on first use), or 0."""
        plen = r.prefix_len
        if not self.use_prefix_cache or plen <= 0 or plen >= len(r.prompt_ids):
            return 0
        key = self._pkey(r)
        if key in self._prefix:
            self._prefix.move_to_end(key)
            self.stats["prefix_hits"] += 1
            r.prefix_kv = self._prefix[key]
            return plen
        shared = self._shared_prefix(r)
        if shared:
            return shared
        import torch

        dev = self._device()
        ids = torch.tensor([r.prompt_ids[:plen]], dtype=torch.long, device=dev)
        pos = torch.arange(plen, device=dev)[None]
        cols = torch.ones((1, plen), dtype=torch.bool, device=dev)
        cache = self._new_cache()
        try:
            self._forward(ids, pos, cols, cache, [r.adapter])
        except Exception:  # the row's own prefill will report the problem
            r.prefix_len = 0
            return 0
        r.prefix_kv = self._prefix[key] = [[layer.keys, layer.values] for layer in cache.layers]
        while len(self._prefix) > self.prefix_cache_size:
            self._prefix.popitem(last=False)
        return plen

    def _shared_prefix(self, r: _Req) -> int:
        """Reuse the longest token prefix this row shares with a cached prefix of its adapter.

        A request with task context has its own system message (the persona prompt, then the
        Task API context), so its whole system prefix is never cached; its first part, the
        persona prompt, is. Keys and values at a position depend only on the tokens up to it,
        so the first n columns of any cached prefix are exactly the KV of its first n tokens."""
        best, source = 0, None
        for (adapter, ids), kv in self._prefix.items():
            if adapter != r.adapter:
                continue
            n = 0
            for a, b in zip(ids, r.prompt_ids):
                if a != b:
                    break
                n += 1
            if n > best:
                best, source = n, kv
        best = min(best, len(r.prompt_ids) - 1)  # at least one token for the prefill
        if best < MIN_SHARED_PREFIX:
            return 0
        r.prefix_len = best
        key = self._pkey(r)
        if key not in self._prefix:  # the shared part is a prefix of its own for the next requests
            self._prefix[key] = [[k[:, :, :best], v[:, :, :best]] for k, v in source]
        self._prefix.move_to_end(key)
        r.prefix_kv = self._prefix[key]
        while len(self._prefix) > self.prefix_cache_size:
            self._prefix.popitem(last=False)
        self.stats["prefix_hits"] += 1
        return best

    def model_changed(self, model, adapter: str | None = None) -> None:
        """An adapter was attached (the model may now be a PeftModel): its LoRA layers are found
        again and the prefixes cached for that adapter name dropped. Call with `lock` held."""
        self.model = model
        self._lora = None
        self.forget_prefixes(adapter)

    def forget_prefixes(self, adapter: str | None = None) -> None:
        """Drop cached prefixes (an adapter was re-attached from another folder)."""
        for key in [k for k in self._prefix if adapter is None or k[0] == adapter]:
            del self._prefix[key]

    # ---- helpers -------------------------------------------------------------------------------------
    def _device(self):
        return next(self.model.parameters()).device

    def _dtype(self):
        return next(self.model.parameters()).dtype

    def _new_cache(self):
        from transformers import DynamicCache

        return DynamicCache(config=_base_config(self.model))

    def pending(self) -> dict:
        with self._cond:
            return {"running": sum(r.finish is None for r in self._running), "waiting": self._n_waiting}


# ---- free functions -------------------------------------------------------------------------------------

def stop_token_ids(model, tokenizer) -> set[int]:
    """Every token that ends a reply: the generation config's eos list (Llama 3.1: <|end_of_text|>,
    <|eom_id|>, <|eot_id|>) and the tokenizer's eos."""
    ids: set[int] = set()
    for source in (getattr(getattr(model, "generation_config", None), "eos_token_id", None),
                   getattr(getattr(model, "config", None), "eos_token_id", None), tokenizer.eos_token_id):
        if source is None:
            continue
        ids.update(int(t) for t in (source if isinstance(source, (list, tuple, set)) else [source]))
    return ids


def _contiguous_lm_head_input(model) -> None:
    """Make the LM head's input contiguous. With `logits_to_keep=1` a prefill hands it the last
    position of every row, a strided view [rows, 1, hidden]; torch 2.13's matmul does not fold
    that into one mm but expands the head's weight to [rows, hidden, vocab] and runs a bmm:
    for SmolLM2 (49,152 x 576) that is a 113 MB copy per row, 0.7 s of a 14-row prefill's 1.1 s.
    A contiguous copy of the input (rows x hidden floats) takes one mm. Idempotent."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None or getattr(head, "_taskmaster_contiguous", False):
        return
    head.register_forward_pre_hook(lambda _module, args: (args[0].contiguous(), *args[1:]))
    head._taskmaster_contiguous = True


def _cache_kwarg(model) -> str:
    """The forward argument that takes the KV cache: transformers 5.24 renamed `past_key_values`
    to `cache` (the old name warns until 5.40); the GPU stack's 5.17 only knows the old one."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(type(base).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _base_config(model):
    cfg = model.config
    return cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg


MIN_SHARED_PREFIX = 16  # a shorter shared prefix is not worth a cache entry
GROW_COLUMNS = 128  # cache columns added at a time to the running batch's buffers


@functools.lru_cache(maxsize=None)
def _grow_layer():
    """A transformers cache layer whose keys and values live in a buffer with free columns at the
    end: `update` writes the new columns in place and returns views (DynamicLayer's update is a
    torch.cat, a copy of the whole layer for every decoded token). Built on first use because
    transformers is imported lazily."""
    import torch
    from transformers.cache_utils import DynamicLayer

    class GrowLayer(DynamicLayer):
        # The model reads columns [lo, n) of the buffers; [n, capacity) is free room.
        def __init__(self, keys, values, room: int):
            self._fill([keys], [values], keys.shape[2], room)

        @classmethod
        def stacked(cls, keys: list, values: list, columns: int, room: int):
            """Row blocks stacked into one layer, each right-aligned to `columns` (zeros before)."""
            layer = cls.__new__(cls)
            layer._fill(keys, values, columns, room)
            return layer

        def _fill(self, keys: list, values: list, columns: int, room: int) -> None:
            DynamicLayer.__init__(self)
            self.device, self.dtype = keys[0].device, keys[0].dtype
            self.lo, self.n = 0, columns
            self._k, self._v = (self._stack(xs, columns, room) for xs in (keys, values))
            self.is_initialized = True
            self._views()

        @staticmethod
        def _stack(xs: list, columns: int, room: int):
            """One buffer of `columns + room` columns holding the blocks `xs`, stacked by rows."""
            rows = sum(x.shape[0] for x in xs)
            buf = xs[0].new_empty((rows, xs[0].shape[1], columns + room, xs[0].shape[3]))
            r = 0
            for x in xs:
                b, t = x.shape[0], x.shape[2]
                buf[r:r + b, :, :columns - t] = 0
                buf[r:r + b, :, columns - t:columns] = x
                r += b
            return buf

        def _views(self) -> None:
            self.keys = self._k[:, :, self.lo:self.n]
            self.values = self._v[:, :, self.lo:self.n]

        def update(self, key_states, value_states, *args, **kwargs):
            q = key_states.shape[2]
            if self.n + q > self._k.shape[2]:
                grow = max(q, GROW_COLUMNS)
                filled = self.n - self.lo
                self._k = self._stack([self.keys], filled, grow)
                self._v = self._stack([self.values], filled, grow)
                self.lo, self.n = 0, filled
            self._k[:, :, self.n:self.n + q] = key_states
            self._v[:, :, self.n:self.n + q] = value_states
            self.n += q
            self._views()
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.n - self.lo

        def truncate(self, n: int) -> None:
            """Forget the columns after the first `n` (a failed step's partial writes)."""
            self.n = n
            self._views()

        def trim(self, first: int) -> None:
            """Stop showing the first `first` visible columns (no row reads them any more)."""
            self.lo += first
            self._views()

        def put_row(self, i: int, keys, values) -> None:
            """Row i becomes a new row whose t columns of keys/values end at the last filled column."""
            t = keys.shape[1]
            for buf, x in ((self._k, keys), (self._v, values)):
                buf[i, :, self.lo:self.n - t] = 0
                buf[i, :, self.n - t:self.n] = x

    return GrowLayer


def _left_pad(mask, columns: int):
    """A row mask left-padded with False to `columns`."""
    import torch

    n = columns - mask.shape[1]
    if n == 0:
        return mask
    return torch.cat([torch.zeros((mask.shape[0], n), dtype=mask.dtype, device=mask.device), mask], 1)


def _first_used(mask) -> int:
    """The first column any row of `mask` reads."""
    used = mask.any(0).nonzero()
    return int(used[0]) if len(used) else 0


def _set_layer(layer, keys, values) -> None:
    if not layer.is_initialized:
        layer.lazy_initialization(keys, values)
    layer.keys, layer.values = keys, values


def _generator(sampling, prompt_ids: list[int], device):
    """A row's own random stream, from its seed and its prompt: a reply does not depend on which
    rows shared its batch, two prompts do not share a stream, and the base and an adapter asked
    the same prompt with the same seed draw the same numbers (a fairer A/B comparison)."""
    import hashlib

    import torch

    h = hashlib.sha256(f"{int(getattr(sampling, 'seed', 0))}:{prompt_ids}".encode()).digest()
    g = torch.Generator(device=device)
    g.manual_seed(int.from_bytes(h[:8], "little") >> 1)
    return g


def _next_token(logits, r: _Req) -> int:
    """transformers' processors, per row: repetition penalty, then greedy or temperature/top-p."""
    import torch

    s = r.sampling
    scores = logits
    penalty = float(getattr(s, "repetition_penalty", 1.0) or 1.0)
    if penalty != 1.0:
        scores = scores.clone()
        picked = scores.gather(0, r.seen)
        picked = torch.where(picked < 0, picked * penalty, picked / penalty)
        scores.scatter_(0, r.seen, picked)
    temperature = float(getattr(s, "temperature", 0) or 0)
    if temperature <= 0:
        return int(scores.argmax())
    scores = scores / temperature
    top_p = float(getattr(s, "top_p", 1.0) or 1.0)
    probs = scores.softmax(-1)
    if top_p < 1.0:
        idx, kept = nucleus(probs, top_p)
        return int(idx[torch.multinomial(kept / kept.sum(), 1, generator=r.generator)])
    return int(torch.multinomial(probs, 1, generator=r.generator))


def nucleus(probs, top_p: float):
    """(token ids, their probabilities) of the top-p nucleus as transformers' TopPLogitsWarper
    keeps it (a token stays while the mass ranked above it is below top_p; at least one), found
    among the top k, k growing until they hold top_p, instead of a sort of the whole vocabulary:
    sorting 49k probabilities per row was half of a 40-row decode step on CPU."""
    n = probs.shape[-1]
    k = min(64, n)
    while True:
        top, idx = probs.topk(k)
        if float(top.sum()) >= top_p or k == n:
            break
        k = min(4 * k, n)
    keep = (top.cumsum(-1) - top) < top_p
    keep[0] = True
    return idx[keep], top[keep]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


class _AdapterRows:
    """Context: the model's LoRA layers answer each row as its own adapter (None = base).

    All adapters of the batch are active together with per-row scales (0 on the other rows),
    restored on exit. Yields None, or the `adapter_names` list for PEFT's mixed-batch forward
    when a layer is a LoRA variant that ignores `scaling`."""

    def __init__(self, layers: list, adapters: list[str | None]):
        self.layers = layers
        self.adapters = adapters
        self.saved: list = []

    def __enter__(self):
        layers = self.layers
        if not layers:
            if any(a is not None for a in self.adapters):
                raise KeyError(f"adapter(s) {sorted({a for a in self.adapters if a})} requested but none is attached")
            return None
        names = sorted({a for a in self.adapters if a is not None})
        for n in names:
            if not any(n in m.lora_A for m in layers):
                raise KeyError(f"adapter {n!r} is not attached")
        if any(getattr(m, "lora_variant", None) and any(n in m.lora_variant for n in names) for m in layers):
            return ["__base__" if a is None else a for a in self.adapters]
        import torch

        masks = {}
        for m in layers:
            self.saved.append((m, m._active_adapter, {n: m.scaling.get(n) for n in names}))
            present = [n for n in names if n in m.lora_A]
            m._active_adapter = present
            for n in present:
                dtype = m.lora_A[n].weight.dtype
                key = (n, dtype)
                if key not in masks:
                    masks[key] = torch.tensor([a == n for a in self.adapters], dtype=dtype,
                                              device=m.lora_A[n].weight.device).view(-1, 1, 1)
                m.scaling[n] = masks[key] * m.scaling[n]
        return None

    def __exit__(self, *exc):
        for m, active, scales in self.saved:
            m._active_adapter = active
            for n, s in scales.items():
                m.scaling[n] = s
        return False


def _lora_layers(model) -> list:
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:
        return []
    return [m for m in model.modules() if isinstance(m, LoraLayer)]
