"""`python -m pipeline serve`: the engine behind an OpenAI-compatible HTTP API.

    GET  /health                 liveness and the engine's queue (no key needed)
    GET  /v1/models              taskmaster-base and taskmaster-<run> for every finished run
    POST /v1/chat/completions    JSON, or `"stream": true` server-sent events

Any OpenAI client talks to it:

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="EMPTY")
    client.chat.completions.create(model="taskmaster-base", messages=[{"role": "user", "content": "hi"}])

Model names: `taskmaster-base` is the base model; `taskmaster-<run>` is the adapter of the
finished run `runs/<run>/` (attached on first use), or of a package folder given with
`--adapter NAME=FOLDER`. Every request goes through the one continuous-batching engine
(pipeline/batching.py): concurrent clients share decode steps; a full queue answers HTTP 429
"busy, retry"; a client that disconnects mid-stream frees its slot at the next step. The
persona's system prompt frames every conversation, as in training, evaluation and the Arena
(`--no-system-prompt` to send conversations as they are).

The optional bearer key (`--api-key` or TASKMASTER_SERVE_API_KEY) is compared in constant
time and never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Callable

from .batching import Collector, EngineBusy, Row
from .inference import SamplingConfig, default_sampling
from .prompting import with_persona_system

log = logging.getLogger(__name__)

MODEL_PREFIX = "taskmaster-"
BASE_MODEL_NAME = MODEL_PREFIX + "base"
API_KEY_ENV = "TASKMASTER_SERVE_API_KEY"


def served_name(adapter: str | None) -> str:
    """The OpenAI model name of the base (None) or of an adapter / run id."""
    return BASE_MODEL_NAME if adapter is None else MODEL_PREFIX + adapter


def adapter_of(model: str) -> str | None:
    """The adapter (run id) a model name means; None for the base. Inverse of `served_name`."""
    if model == BASE_MODEL_NAME:
        return None
    return model[len(MODEL_PREFIX):] if model.startswith(MODEL_PREFIX) else model


def finished_adapters(settings, base_model: str | None = None) -> dict[str, Path]:
    """run id -> adapter folder for every finished run trained on `base_model` (pipeline/runs.py,
    as the Arena picks its contenders)."""
    from .arena.service import finished_runs

    return finished_runs(Path(settings.runs_dir), base_model)


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.headers = status, message, kind, code, headers or {}


def create_app(engine, adapters: Callable[[], dict[str, Path]], *, api_key: str | None = None,
               system_prompt: str | None = None):
    """The Starlette app. `engine` is a loaded `ChatEngine`; `adapters()` lists the servable
    adapters (name -> folder) at request time, so a run that finishes later is served too."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    def error(e: _HTTPError) -> JSONResponse:
        log.info("HTTP %d: %s", e.status, e.message)  # messages name settings, never the key
        return JSONResponse({"error": {"message": e.message, "type": e.kind, "code": e.code}},
                            status_code=e.status, headers=e.headers)

    def check_key(request: Request) -> None:
        if not api_key:
            return
        got = request.headers.get("authorization", "")
        scheme, _, token = got.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise _HTTPError(401, "Invalid or missing API key: send 'Authorization: Bearer <key>' with the key "
                                  f"the server was started with (--api-key or {API_KEY_ENV}).",
                             code="invalid_api_key")

    def model_names() -> list[str]:
        return [BASE_MODEL_NAME] + [served_name(a) for a in sorted(adapters())]

    async def health(request: Request):
        return JSONResponse({"status": "ok", "base_model": engine.base_name, **engine.batcher.pending()})

    async def models(request: Request):
        try:
            check_key(request)
        except _HTTPError as e:
            return error(e)
        now = int(time.time())
        return JSONResponse({"object": "list", "data": [{"id": m, "object": "model", "created": now,
                                                         "owned_by": "taskmaster"} for m in model_names()]})

    async def chat(request: Request):
        try:
            check_key(request)
            try:
                body = await request.json()
            except ValueError:
                raise _HTTPError(400, "The request body is not JSON.") from None
            row, model = _parse(body, engine, adapters, system_prompt)
            client = str(body.get("user") or (request.client.host if request.client else "anon"))
            group = engine.batcher.submit([row], client=client)
        except _HTTPError as e:
            return error(e)
        except EngineBusy as exc:
            return error(_HTTPError(429, f"{exc} (busy, retry)", "server_busy", "busy", {"Retry-After": "1"}))
        stops = _stops(body.get("stop"))
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(_sse(engine, group, cid, created, model, stops, include_usage, request),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        try:
            text, state = await _collect(engine, group, stops)
        except BaseException:
            engine.batcher.cancel(group)
            raise
        if state.finish_reason == "error":
            return error(_HTTPError(400, f"The model could not answer this request: {state.error}",
                                    code="generation_failed"))
        return JSONResponse({
            "id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": _finish(state.finish_reason)}],
            "usage": _usage(state)})

    return Starlette(routes=[Route("/health", health), Route("/v1/models", models),
                             Route("/v1/chat/completions", chat, methods=["POST"])])


def _parse(body: dict, engine, adapters, system_prompt) -> tuple[Row, str]:
    if not isinstance(body, dict):
        raise _HTTPError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if not model:
        raise _HTTPError(400, "'model' is required: taskmaster-base or taskmaster-<run> (see GET /v1/models).")
    adapter = adapter_of(model)
    if adapter is not None:
        folder = adapters().get(adapter)
        if folder is None:
            names = ", ".join([BASE_MODEL_NAME] + [served_name(a) for a in sorted(adapters())])
            raise _HTTPError(404, f"Unknown model {model!r}; this server has: {names}.", code="model_not_found")
        engine.attach_adapter(adapter, folder)  # a no-op, without waiting, once attached
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _HTTPError(400, "'messages' must be a non-empty list of {role, content}.")
    msgs = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "developer"):
            raise _HTTPError(400, f"messages[{i}]: each message needs a role (system, user or assistant) and content.")
        content = m.get("content")
        if isinstance(content, list):  # content parts: only text is understood
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if not isinstance(content, str):
            raise _HTTPError(400, f"messages[{i}].content must be text.")
        msgs.append({"role": "system" if m["role"] == "developer" else m["role"], "content": content})
    if (body.get("n") or 1) != 1:
        raise _HTTPError(400, "'n' must be 1 (one reply per request); send several requests instead.")
    d = default_sampling(engine.base_name)  # the base model's defaults for whatever the request leaves out
    try:
        max_new = body.get("max_completion_tokens") or body.get("max_tokens") or d.max_new_tokens
        sampling = SamplingConfig(
            max_new_tokens=int(max_new),
            temperature=float(d.temperature if body.get("temperature") is None else body["temperature"]),
            top_p=float(d.top_p if body.get("top_p") is None else body["top_p"]),
            repetition_penalty=float(body.get("repetition_penalty") or d.repetition_penalty),
            seed=int(body["seed"]) if body.get("seed") is not None else d.seed)
    except (TypeError, ValueError):
        raise _HTTPError(400, "max_tokens, temperature, top_p, repetition_penalty and seed must be numbers.") from None
    if sampling.max_new_tokens < 1 or sampling.temperature < 0 or not 0 < sampling.top_p <= 1:
        raise _HTTPError(400, "max_tokens must be at least 1, temperature 0 or more, top_p in (0, 1].")
    if system_prompt is not None:
        msgs = with_persona_system(msgs, system_prompt)
    return Row(msgs, adapter, sampling), model


def _stops(stop) -> list[str]:
    if not stop:
        return []
    return [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str) and s][:4]


def _cut(text: str, stops: list[str]) -> tuple[str, bool]:
    """Text up to the first stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def _finish(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


def _usage(state) -> dict:
    return {"prompt_tokens": state.prompt_tokens, "completion_tokens": state.tokens,
            "total_tokens": state.prompt_tokens + state.tokens}


async def _wait(group) -> None:
    """Until the engine has put an event for this group (woken from the engine's thread)."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    group.on_event = lambda: loop.call_soon_threadsafe(ready.set)
    if group.events.empty():
        await ready.wait()
    group.on_event = None


async def _collect(engine, group, stops: list[str]):
    c = Collector(group, engine.tokenizer)
    while not c.done:
        if not c.drain(block=False):
            await _wait(group)
            continue
        text, hit = _cut(c.states[0].text, stops)
        if hit:
            engine.batcher.cancel(group)
            state = c.snapshot()[0]
            state.finish_reason = "stop"
            return text, state
    state = c.snapshot()[0]
    return _cut(state.text, stops)[0], state


async def _sse(engine, group, cid: str, created: int, model: str, stops: list[str], include_usage: bool, request):
    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> str:
        payload = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else []}
        if usage is not None:
            payload["usage"] = usage
        return f"data: {json.dumps(payload)}\n\n"

    c = Collector(group, engine.tokenizer)
    sent = ""
    hold = max((len(s) for s in stops), default=1) - 1
    try:
        yield chunk({"role": "assistant", "content": ""})
        while True:
            if not c.drain(block=False):
                if await request.is_disconnected():
                    return
                await _wait(group)
                continue
            state = c.states[0]
            text, hit = _cut(state.text, stops)
            if state.finish_reason == "error":
                yield f"data: {json.dumps({'error': {'message': f'generation failed: {state.error}', 'type': 'server_error'}})}\n\n"
                return
            done = state.done or hit
            # hold back an incomplete character (U+FFFD) and what could be the start of a stop string
            ready = text if done else text.rstrip("\ufffd")
            if not done and hold:
                ready = ready[:max(len(sent), len(ready) - hold)]
            if len(ready) > len(sent):
                yield chunk({"content": ready[len(sent):]})
                sent = ready
            if done:
                if hit and not state.done:
                    engine.batcher.cancel(group)
                yield chunk({}, "stop" if hit else _finish(state.finish_reason))
                if include_usage:
                    yield chunk({}, usage=_usage(state))
                yield "data: [DONE]\n\n"
                return
    finally:
        if not c.done:
            engine.batcher.cancel(group)  # the client went away: its slot is free at the next step


def serve(engine, adapters, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          system_prompt: str | None = None, log_level: str = "warning") -> None:
    import uvicorn

    app = create_app(engine, adapters, api_key=api_key, system_prompt=system_prompt)
    # uvicorn's access log prints method, path and status only: never headers, so never the key
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=2)
