"""The one OpenAI-compatible chat client (OpenAI, vLLM, Ollama, TGI, LM Studio...).

    client = LLMClient.from_settings(settings, role="generator")        # or ClientConfig(...)
    r = client.chat([{"role": "user", "content": "hi"}])                 # sync, any thread
    r = await client.achat(messages, json_schema=SCHEMA)                 # r.data: validated dict
    results = await client.achat_many([{"messages": m1}, {"messages": m2, "temperature": 0.7}])
    client.stats -> {"requests_sent", "cache_hits", "retries", "failures", "prompt_tokens",
                     "completion_tokens", "est_cost_usd"}

What it does so callers don't have to:
- Concurrency limit (an asyncio semaphore per event loop) and order-keeping batches.
- Retries with exponential backoff and full jitter on 429, 5xx, timeouts, connection errors
  and unparseable bodies, honouring `Retry-After`; the `openai` SDK's own retries are off
  (`max_retries=0`) so every attempt is counted and capped here.
- Structured replies: the last `{...}` block of the reply is parsed (judges write reasoning
  first, then the JSON verdict) and validated against a JSON schema; invalid -> retry.
- Hard caps per client: `max_requests` HTTP attempts and `max_cost_usd` estimated spend.
  A call that would pass a cap fails with `ClientFailure("budget exhausted: ...")` without
  sending anything.
- A disk cache: one JSON file per request key, written atomically. The key is the sha256 of
  (model, messages, sampling parameters, schema), so rerunning a finished job makes zero
  requests and a killed job resumes without repeating a completed call.
The API key is handed to the SDK only: it is never part of a cache key, a cache file, a
log line or a failure reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import UserError
from .jsonl import atomic_write_text
from .settings import Endpoint, Settings

log = logging.getLogger(__name__)

CACHE_VERSION = 1
# USD per 1,000 tokens (input, output), from the providers' price pages (Nov 2026 list prices).
# A model not listed is priced like gpt-4o-mini so that `max_cost_usd` still bounds a job;
# pass explicit prices in ClientConfig for anything else (0 for a free local server).
PRICES_PER_1K: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.00015, 0.0006),
    "gpt-4o": (0.0025, 0.01),
    "gpt-4.1-mini": (0.0004, 0.0016),
    "gpt-4.1-nano": (0.0001, 0.0004),
    "gpt-4.1": (0.002, 0.008),
}
DEFAULT_PRICE = PRICES_PER_1K["gpt-4o-mini"]
# A request's cost is reserved before it is sent so concurrent calls cannot overshoot the cap:
# ~4 characters per token for the prompt, and max_tokens (or this many) for the reply.
CHARS_PER_TOKEN = 4
RESERVED_COMPLETION_TOKENS = 512
NO_KEY = "EMPTY"  # local servers (vLLM, Ollama) accept any key; the SDK insists on one


def price_for(model: str) -> tuple[float, float]:
    # Longest matching prefix first, so "gpt-4o-mini-2024-07-18" is not priced as "gpt-4o".
    for name in sorted(PRICES_PER_1K, key=len, reverse=True):
        if model.startswith(name):
            return PRICES_PER_1K[name]
    return DEFAULT_PRICE


@dataclass
class ClientConfig:
    endpoint: Endpoint
    max_concurrency: int = 8
    max_requests: int | None = None  # HTTP attempts (retries included: they are billed too)
    max_cost_usd: float | None = None
    timeout_s: float = 60
    max_retries: int = 5  # attempts after the first, per call
    cache_dir: Path | None = None
    price_per_1k_input: float | None = None  # None: from PRICES_PER_1K by model name
    price_per_1k_output: float | None = None
    backoff_base_s: float = 0.5  # delay before retry n is uniform(0, min(max, base * 2**n))
    backoff_max_s: float = 20.0
    max_retry_after_s: float = 60.0  # a longer Retry-After is clipped to this

    def __post_init__(self) -> None:
        if self.cache_dir is not None:
            self.cache_dir = Path(self.cache_dir)
        default_in, default_out = price_for(self.endpoint.model)
        if self.price_per_1k_input is None:
            self.price_per_1k_input = default_in
        if self.price_per_1k_output is None:
            self.price_per_1k_output = default_out

    def problems(self) -> list[str]:
        """Every setting that is wrong, each naming what to change."""
        p = []
        if not self.endpoint.model:
            p.append("model: empty; set TASKMASTER_GENERATOR_MODEL / TASKMASTER_JUDGE_MODEL")
        if not self.endpoint.configured:
            p.append("endpoint: not configured; set OPENAI_API_KEY (and OPENAI_BASE_URL for a local server)")
        if self.max_concurrency < 1:
            p.append(f"max_concurrency: {self.max_concurrency}; must be at least 1")
        if self.max_requests is not None and self.max_requests < 0:
            p.append(f"max_requests: {self.max_requests}; must be 0 or more (or unset for no cap)")
        if self.max_cost_usd is not None and self.max_cost_usd < 0:
            p.append(f"max_cost_usd: {self.max_cost_usd}; must be 0 or more (or unset for no cap)")
        if self.timeout_s <= 0:
            p.append(f"timeout_s: {self.timeout_s}; must be positive")
        if self.max_retries < 0:
            p.append(f"max_retries: {self.max_retries}; must be 0 or more")
        if (self.price_per_1k_input or 0) < 0 or (self.price_per_1k_output or 0) < 0:
            p.append("price_per_1k_input/output: must be 0 or more")
        return p


@dataclass
class ChatResult:
    text: str
    data: dict | None  # the parsed, schema-valid JSON object when a schema was given
    usage: dict  # prompt_tokens, completion_tokens (zeros for a cache hit's *new* cost)
    cached: bool
    request_key: str
    attempts: int = 1
    model: str = ""


class ClientFailure(Exception):
    """A call that did not produce a usable reply; `.reason` says why (no secrets in it)."""

    def __init__(self, reason: str, *, request_key: str = "", attempts: int = 0, retryable: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.request_key = request_key
        self.attempts = attempts
        self.retryable = retryable

    def to_dict(self) -> dict:
        return {"reason": self.reason, "request_key": self.request_key, "attempts": self.attempts}


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


# ---------------------------------------------------------------- JSON extraction/validation
def extract_json(text: str) -> dict | None:
    """The last top-level `{...}` block in `text` that parses as a JSON object, or None.

    Judges reason first and give the verdict last, and models wrap JSON in ``` fences or
    add a sentence after it, so we scan for balanced braces (skipping braces in strings)."""
    blocks: list[tuple[int, int]] = []
    depth, start, in_str, esc = 0, -1, False, False
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"' and depth > 0:
            in_str = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                blocks.append((start, i + 1))
    for s, e in reversed(blocks):
        try:
            obj = json.loads(text[s:e])
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float), "null": (type(None),),
}


def validate_schema(value: Any, schema: dict, path: str = "$") -> list[str]:
    """A small JSON-schema subset (type, enum, const, required, properties,
    additionalProperties, items, min/max, minItems/maxItems, minLength); `jsonschema` is not
    a dependency of this project. Returns every problem found, each with its JSON path."""
    errs: list[str] = []
    t = schema.get("type")
    if t is not None:
        names = t if isinstance(t, list) else [t]
        ok = False
        for name in names:
            py = _TYPES.get(name, (object,))
            if isinstance(value, bool) and name in ("integer", "number"):
                continue  # JSON true is not a number
            if isinstance(value, py):
                ok = True
                break
        if not ok:
            return [f"{path}: expected {'/'.join(names)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errs.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        errs.append(f"{path}: must be {schema['const']!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errs.append(f"{path}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errs.append(f"{path}: {value} > maximum {schema['maximum']}")
    if isinstance(value, str) and "minLength" in schema and len(value) < schema["minLength"]:
        errs.append(f"{path}: shorter than {schema['minLength']} characters")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errs.append(f"{path}: missing required field {key!r}")
        props = schema.get("properties", {})
        for key, sub in props.items():
            if key in value:
                errs.extend(validate_schema(value[key], sub, f"{path}.{key}"))
        extra = schema.get("additionalProperties", True)
        for key in value:
            if key in props:
                continue
            if extra is False:
                errs.append(f"{path}: unexpected field {key!r}")
            elif isinstance(extra, dict):
                errs.extend(validate_schema(value[key], extra, f"{path}.{key}"))
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errs.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errs.append(f"{path}: more than {schema['maxItems']} items")
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                errs.extend(validate_schema(item, schema["items"], f"{path}[{i}]"))
    return errs


# ---------------------------------------------------------------- the client
@dataclass
class _LoopState:
    client: Any
    semaphore: asyncio.Semaphore


@dataclass
class _Stats:
    requests_sent: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    est_cost_usd: float = 0.0
    calls: int = 0
    reserved_usd: float = 0.0  # cost reserved by requests in flight
    failure_reasons: dict[str, int] = field(default_factory=dict)


class LLMClient:
    def __init__(self, config: ClientConfig):
        problems = config.problems()
        if problems:
            raise UserError("LLM client settings:\n  " + "\n  ".join(problems))
        self.config = config
        self._stats = _Stats()
        self._lock = threading.Lock()  # stats are shared by the sync wrapper's threads
        # The SDK's HTTP pool and the semaphore belong to one event loop; `chat()` may run a
        # fresh loop per call, so this state is kept per loop and dropped with it.
        self._loops: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState]" = weakref.WeakKeyDictionary()

    @classmethod
    def from_settings(cls, settings: Settings, role: str = "generator", **overrides) -> "LLMClient":
        if role not in ("generator", "judge"):
            raise ValueError(f"role must be 'generator' or 'judge', not {role!r}")
        endpoint: Endpoint = getattr(settings, role)
        if not endpoint.configured:
            env = "OPENAI_API_KEY" if role == "generator" else "TASKMASTER_JUDGE_API_KEY or OPENAI_API_KEY"
            raise UserError(
                f"No {role} endpoint is configured: set {env} (and OPENAI_BASE_URL for a local "
                f"OpenAI-compatible server such as vLLM or Ollama), or use the offline path.")
        overrides.setdefault("cache_dir", settings.cache_dir / "llm")
        return cls(ClientConfig(endpoint=endpoint, **overrides))

    # ---- public API -----------------------------------------------------------------
    @property
    def model(self) -> str:
        return self.config.endpoint.model

    @property
    def stats(self) -> dict:
        with self._lock:
            s = self._stats
            return {
                "requests_sent": s.requests_sent, "cache_hits": s.cache_hits, "retries": s.retries,
                "failures": s.failures, "prompt_tokens": s.prompt_tokens,
                "completion_tokens": s.completion_tokens, "est_cost_usd": round(s.est_cost_usd, 6),
                "calls": s.calls, "failure_reasons": dict(s.failure_reasons),
            }

    def request_key(self, messages: list[dict], *, temperature: float = 0.0, max_tokens: int | None = None,
                    json_schema: dict | None = None, seed: int | None = None) -> str:
        # base_url and api_key are deliberately not part of the key: the same model behind
        # another URL answers the same question, and a key must never reach a file.
        payload = {"v": CACHE_VERSION, "model": self.model, "messages": messages, "temperature": temperature,
                   "max_tokens": max_tokens, "seed": seed, "schema": json_schema}
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    async def achat(self, messages: list[dict], *, temperature: float = 0.0, max_tokens: int | None = None,
                    json_schema: dict | None = None, seed: int | None = None) -> ChatResult:
        """One chat completion, from the cache or the endpoint; raises ClientFailure."""
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
        key = self.request_key(messages, temperature=temperature, max_tokens=max_tokens,
                               json_schema=json_schema, seed=seed)
        with self._lock:
            self._stats.calls += 1
        cached = self._cache_get(key, json_schema)
        if cached is not None:
            with self._lock:
                self._stats.cache_hits += 1
            return cached
        state = self._loop_state()
        async with state.semaphore:
            try:
                return await self._call_with_retries(state, key, messages, temperature, max_tokens, json_schema, seed)
            except ClientFailure as f:
                with self._lock:
                    self._stats.failures += 1
                    kind = f.reason.split(":", 1)[0]
                    self._stats.failure_reasons[kind] = self._stats.failure_reasons.get(kind, 0) + 1
                raise

    async def achat_many(self, requests: list[dict],
                         on_result: Callable[[int, "ChatResult | ClientFailure"], None] | None = None,
                         ) -> list["ChatResult | ClientFailure"]:
        """Run many `achat(**request)` calls under the concurrency limit; results keep the
        order of `requests`, a failed call is its ClientFailure. `on_result(i, result)` is
        called as each finishes (to write progress files)."""

        async def one(i: int, req: dict):
            req = dict(req)
            msgs = req.pop("messages")
            try:
                res: ChatResult | ClientFailure = await self.achat(msgs, **req)
            except ClientFailure as f:
                res = f
            if on_result is not None:
                on_result(i, res)
            return res

        return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))

    def chat(self, messages: list[dict], **kw) -> ChatResult:
        """Sync wrapper; works in plain code and inside a running event loop (e.g. Gradio)."""
        return self.run(self.achat(messages, **kw))

    def chat_many(self, requests: list[dict], on_result=None) -> list["ChatResult | ClientFailure"]:
        return self.run(self.achat_many(requests, on_result=on_result))

    def run(self, coro):
        """Run a coroutine that uses this client from sync code, on a fresh event loop, and
        close the HTTP connections it opened before that loop goes away."""

        async def wrapped():
            try:
                return await coro
            finally:
                await self.aclose()

        return run_sync(wrapped())

    async def aclose(self) -> None:
        """Close the HTTP pool this client opened on the running loop (if any)."""
        st = self._loops.pop(asyncio.get_running_loop(), None)
        if st is not None:
            await st.client.close()

    # ---- internals ------------------------------------------------------------------
    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        st = self._loops.get(loop)
        if st is None:
            from openai import AsyncOpenAI

            ep = self.config.endpoint
            client = AsyncOpenAI(base_url=ep.base_url or None, api_key=ep.api_key or NO_KEY,
                                 max_retries=0, timeout=self.config.timeout_s)
            st = _LoopState(client, asyncio.Semaphore(self.config.max_concurrency))
            self._loops[loop] = st
        return st

    def _reserve(self, key: str, messages: list[dict], max_tokens: int | None) -> float:
        """Count one request against the caps before sending it; raise if a cap would be passed."""
        c = self.config
        prompt_chars = sum(len(m["content"]) for m in messages)
        reserve = (prompt_chars / CHARS_PER_TOKEN) / 1000 * c.price_per_1k_input + \
                  (max_tokens or RESERVED_COMPLETION_TOKENS) / 1000 * c.price_per_1k_output
        with self._lock:
            s = self._stats
            if c.max_requests is not None and s.requests_sent >= c.max_requests:
                raise ClientFailure(f"budget exhausted: max_requests={c.max_requests} requests already sent "
                                    f"(raise max_requests to continue; cached replies are reused)", request_key=key)
            if c.max_cost_usd is not None and s.est_cost_usd + s.reserved_usd + reserve > c.max_cost_usd:
                raise ClientFailure(f"budget exhausted: estimated spend ${s.est_cost_usd:.4f} (+${reserve:.4f} for "
                                    f"this request) would pass max_cost_usd=${c.max_cost_usd} (raise it to continue; "
                                    f"cached replies are reused)", request_key=key)
            s.requests_sent += 1
            s.reserved_usd += reserve
        return reserve

    async def _call_with_retries(self, state: _LoopState, key: str, messages: list[dict], temperature: float,
                                 max_tokens: int | None, json_schema: dict | None, seed: int | None) -> ChatResult:
        import openai

        c = self.config
        last = "no attempt made"
        for attempt in range(c.max_retries + 1):
            if attempt:
                with self._lock:
                    self._stats.retries += 1
            reserve = self._reserve(key, messages, max_tokens)
            usage = {"prompt_tokens": 0, "completion_tokens": 0}
            try:
                kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature}
                if max_tokens is not None:
                    kwargs["max_tokens"] = max_tokens
                if seed is not None:
                    kwargs["seed"] = seed
                resp = await state.client.chat.completions.create(**kwargs)
                if resp.usage is not None:
                    usage = {"prompt_tokens": resp.usage.prompt_tokens or 0,
                             "completion_tokens": resp.usage.completion_tokens or 0}
                self._account(reserve, usage)
                reserve = 0.0
                text = (resp.choices[0].message.content if resp.choices else None) or ""
                if not text.strip():
                    raise _Retry("empty reply")
                data = None
                if json_schema is not None:
                    data = extract_json(text)
                    if data is None:
                        raise _Retry("invalid JSON: no JSON object found in the reply")
                    errs = validate_schema(data, json_schema)
                    if errs:
                        raise _Retry("invalid JSON: " + "; ".join(errs[:5]))
                result = ChatResult(text=text, data=data, usage=usage, cached=False, request_key=key,
                                    attempts=attempt + 1, model=self.model)
                self._cache_put(key, result)
                return result
            except _Retry as r:
                last, wait = r.reason, None
            except openai.RateLimitError as e:
                last, wait = "rate limited (HTTP 429)", _retry_after(e)
            except openai.APITimeoutError:
                last, wait = f"timeout after {c.timeout_s:g}s", None
            except openai.APIConnectionError as e:
                last, wait = f"connection error: {type(e.__cause__ or e).__name__}", None
            except openai.APIStatusError as e:
                code = e.status_code
                if code >= 500 or code in (408, 409):
                    last, wait = f"server error (HTTP {code})", _retry_after(e)
                else:
                    hint = {401: "check the API key (OPENAI_API_KEY)", 403: "the key lacks access to this model",
                            404: f"check the model name ({self.model!r}) and OPENAI_BASE_URL",
                            400: "the endpoint rejected the request"}.get(code, "not retryable")
                    raise ClientFailure(f"HTTP {code}: {hint}", request_key=key, attempts=attempt + 1) from None
            except (openai.APIResponseValidationError, json.JSONDecodeError, ValueError, TypeError,
                    AttributeError, IndexError) as e:
                last, wait = f"malformed response body: {type(e).__name__}", None
            finally:
                if reserve:
                    self._account(reserve, usage)
            if attempt < c.max_retries:
                delay = self._backoff(attempt, wait)
                log.info("retrying %s in %.2fs after: %s", key[:12], delay, last)
                await asyncio.sleep(delay)
        raise ClientFailure(f"{last} (gave up after {c.max_retries + 1} attempts)", request_key=key,
                            attempts=c.max_retries + 1, retryable=True)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        c = self.config
        if retry_after is not None:
            # The server said when; add up to 10% jitter so clients it throttled together don't return together.
            base = min(retry_after, c.max_retry_after_s)
            return base + random.uniform(0, 0.1 * base)
        return random.uniform(0, min(c.backoff_max_s, c.backoff_base_s * 2 ** attempt))  # "full jitter"

    def _account(self, reserve: float, usage: dict) -> None:
        c = self.config
        cost = usage["prompt_tokens"] / 1000 * c.price_per_1k_input + usage["completion_tokens"] / 1000 * c.price_per_1k_output
        with self._lock:
            s = self._stats
            s.reserved_usd = max(0.0, s.reserved_usd - reserve)
            s.prompt_tokens += usage["prompt_tokens"]
            s.completion_tokens += usage["completion_tokens"]
            s.est_cost_usd += cost

    # ---- cache ----------------------------------------------------------------------
    def _cache_path(self, key: str) -> Path | None:
        d = self.config.cache_dir
        return None if d is None else d / key[:2] / f"{key}.json"

    def _cache_get(self, key: str, json_schema: dict | None) -> ChatResult | None:
        path = self._cache_path(key)
        if path is None or not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            text = entry["text"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # unreadable entry: ask again (the fresh reply overwrites it)
        data = None
        if json_schema is not None:
            data = extract_json(text)
            if data is None or validate_schema(data, json_schema):
                return None
        return ChatResult(text=text, data=data, usage=entry.get("usage", {}), cached=True, request_key=key,
                          attempts=0, model=entry.get("model", self.model))

    def _cache_put(self, key: str, result: ChatResult) -> None:
        path = self._cache_path(key)
        if path is None:
            return
        entry = {"v": CACHE_VERSION, "key": key, "model": self.model, "text": result.text,
                 "usage": result.usage, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            atomic_write_text(path, json.dumps(entry, ensure_ascii=False))
        except OSError as e:  # a full disk must not lose the reply we already paid for
            log.warning("could not write cache entry %s: %s", key[:12], e)


def _retry_after(exc: Exception) -> float | None:
    resp = getattr(exc, "response", None)
    if resp is None:
        return None
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = resp.headers.get(header)
        if raw:
            try:
                return max(0.0, float(raw) / divisor)
            except ValueError:
                pass
    return None


def run_sync(coro):
    """Run a coroutine to completion from sync code, whether or not this thread has a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside a running loop (a Gradio callback, a notebook): run on a helper thread.
    box: dict[str, Any] = {}

    def runner():
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=runner, name="llm-client-sync")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
