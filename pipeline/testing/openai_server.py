"""The project's own OpenAI-compatible test server: a real HTTP server on 127.0.0.1.

It speaks enough of the OpenAI API for the real `openai` client to run unmodified:

    POST /v1/chat/completions   non-streaming JSON, or `"stream": true` server-sent events
    GET  /v1/models             the one model it pretends to serve

Replies come from `responder(request_json) -> str` (default: a deterministic in-persona
reply, and a well-formed training example when asked by the generate stage's prompt).
Latency and faults are configurable, so retries, timeouts and throughput can be measured:

    with OpenAIServer(latency_s=0.25, fault_rate=0.3, seed=1) as srv:
        client = AsyncOpenAI(base_url=srv.base_url, api_key="k")
        ...
        srv.count()            # requests received on /v1/chat/completions
        srv.requests[0]        # {"path", "body", "headers", "fault", "time"}

Fault kinds: "429" (with Retry-After), "500", "timeout" (sleeps `timeout_sleep_s`, past the
client's timeout, then answers), "malformed" (HTTP 200 whose body is not JSON), "bad_json"
(HTTP 200, valid envelope, but the message content is not the JSON asked for).
`faults=[...]` scripts the first requests in order (None = answer normally); `fault_rate`
then injects faults at random (seeded) among `fault_kinds`; `fault_fn(body, n)` decides
per request when given (used to make faults depend on the request, not on arrival order).

Manual runs: `python -m pipeline.testing.openai_server --port 8099 --latency 0.25`, then
`OPENAI_BASE_URL=http://127.0.0.1:8099/v1 OPENAI_API_KEY=anything python -m pipeline data generate`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

FAULT_KINDS = ("429", "500", "timeout", "malformed")
# The generate stage's prompt carries this marker so the default responder can answer it.
GENERATOR_MARKER = "Return exactly one JSON object"


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)  # ~4 characters per token, as the client estimates too


def default_responder(body: dict) -> str:
    """Deterministic replies built from the request (same request -> same reply)."""
    msgs = body.get("messages") or []
    text = "\n".join(str(m.get("content", "")) for m in msgs)
    last_user = next((str(m.get("content", "")) for m in reversed(msgs) if m.get("role") == "user"), "")
    h = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    if GENERATOR_MARKER in text:
        return _generated_example(text, h)
    # An in-persona reply: acknowledge, deliver, propel (the seed's pattern).
    topic = re.sub(r"\s+", " ", last_user).strip()[:60] or "that"
    opens = ["Got it!", "Nice work!", "Done!", "On it!"]
    nexts = ["What's next on your list?", "Want to set a due date?", "Ready to tackle the next one?"]
    return (f"{opens[h % len(opens)]} I've captured \"{topic}\" and added it to your list. "
            f"{nexts[(h >> 8) % len(nexts)]}")


_TOPICS = ("the budget review", "my dentist appointment", "the client slides", "renewing my passport",
           "the team offsite", "grocery shopping", "the quarterly taxes", "fixing the leaky tap",
           "the hiring plan", "my thesis chapter", "the product demo", "booking flights", "the vet visit",
           "piano practice", "the newsletter draft", "the security audit", "moving the gym session",
           "the invoice for Acme", "cleaning the garage", "the podcast edit")
_OPENERS = ("Nice work!", "Great choice!", "Got it.", "Let's tackle this.", "You're on track.", "Done.",
            "Good call.", "That's a solid step.")
_MIDDLES = ("I've saved {t} and kept the details together so nothing slips.",
            "{T} is in your list now, right where you can see it.",
            "I've logged {t}; it sits next to your other open items.",
            "{T} is tracked, and the rest of your list is untouched.",
            "I've set up {t} exactly as you described it.")
_CLOSERS = ("Ready for what's next?", "Want a due date on it?", "Should it be high priority?",
            "Which one do you want to tackle first?", "Want me to break it into smaller steps?",
            "Shall I remind you the day before?")
_USER_STYLES = ("{s}: {t}", "pls help, {t} - {s}", "ok so {t}. {s}?", "hey quick one: {s} for {t}",
                "{s} ({t}) thx", "ugh. {t}. {s}")


def _generated_example(prompt: str, h: int) -> str:
    """A plausible, varied example for the generate stage's prompt (scenario, variant, style)."""
    m = re.search(r"Scenario:\s*(.+)", prompt)
    scenario = m.group(1).strip() if m else "a task request"
    rng = random.Random(h)
    t1, t2 = rng.sample(_TOPICS, 2)
    user = rng.choice(_USER_STYLES).format(s=scenario.lower(), t=t1)
    middle = rng.choice(_MIDDLES).format(t=t1, T=t1[0].upper() + t1[1:])
    assistant = (f"{rng.choice(_OPENERS)} {middle} You've been steady with {t2} too, which helps. "
                 f"{rng.choice(_CLOSERS)}")
    return json.dumps({"context": None, "user": user, "assistant": assistant})


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client that gave up (timeout, killed job): expected in fault tests
        super().handle_error(request, client_address)


class OpenAIServer:
    def __init__(self, *, responder: Callable[[dict], str] | None = None, model: str = "test-model",
                 host: str = "127.0.0.1", port: int = 0, latency_s: float = 0.0,
                 faults: list[str | None] | None = None, fault_rate: float = 0.0,
                 fault_kinds: tuple[str, ...] = FAULT_KINDS, fault_fn: Callable[[dict, int], str | None] | None = None,
                 retry_after_s: float = 0.05, timeout_sleep_s: float = 3.0, seed: int = 0,
                 require_key: str | None = None):
        self.responder = responder or default_responder
        self.model = model
        self.latency_s = latency_s
        self.faults = list(faults or [])
        self.fault_rate = fault_rate
        self.fault_kinds = tuple(fault_kinds)
        self.fault_fn = fault_fn
        self.retry_after_s = retry_after_s
        self.timeout_sleep_s = timeout_sleep_s
        self.require_key = require_key
        self.requests: list[dict] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._n = 0
        self._httpd = _QuietServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True  # a request sleeping in "timeout" must not block shutdown
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "OpenAIServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="openai-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "OpenAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- inspection ------------------------------------------------------------------
    def count(self, path: str = "/v1/chat/completions") -> int:
        """Requests received on `path`; for chat completions only complete ones (a client killed
        mid-request leaves a connection with no body, which is not a request it made)."""
        with self._lock:
            return sum(1 for r in self.requests if r["path"] == path
                       and (path != "/v1/chat/completions" or isinstance((r["body"] or {}).get("messages"), list)))

    def faults_injected(self) -> dict[str, int]:
        with self._lock:
            out: dict[str, int] = {}
            for r in self.requests:
                if r.get("fault"):
                    out[r["fault"]] = out.get(r["fault"], 0) + 1
            return out

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    # ---- behaviour -------------------------------------------------------------------
    def _pick_fault(self, body: dict) -> str | None:
        with self._lock:
            n = self._n
            self._n += 1
            if n < len(self.faults):
                return self.faults[n]
            if self.fault_fn is not None:
                return self.fault_fn(body, n)
            if self.fault_rate and self._rng.random() < self.fault_rate:
                return self._rng.choice(self.fault_kinds)
        return None

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, code: int, payload: bytes, ctype: str = "application/json", headers: dict | None = None):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout); nothing to do

            def _error(self, code: int, message: str, etype: str, headers: dict | None = None):
                body = json.dumps({"error": {"message": message, "type": etype, "code": code}}).encode()
                self._send(code, body, headers=headers)

            def do_GET(self):
                with server._lock:
                    server.requests.append({"path": self.path, "body": None, "headers": {k.lower(): v for k, v in self.headers.items()},
                                            "fault": None, "time": time.time()})
                if self.path.rstrip("/") == "/v1/models":
                    data = {"object": "list", "data": [{"id": server.model, "object": "model", "created": 0,
                                                         "owned_by": "taskmaster-test"}]}
                    self._send(200, json.dumps(data).encode())
                else:
                    self._error(404, f"no route {self.path}", "not_found")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = None
                record = {"path": self.path, "body": body, "headers": {k.lower(): v for k, v in self.headers.items()}, "fault": None,
                          "time": time.time()}
                with server._lock:
                    server.requests.append(record)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._error(404, f"no route {self.path}", "not_found")
                if body is None or not isinstance(body.get("messages"), list):
                    return self._error(400, "body must be JSON with a `messages` list", "invalid_request_error")
                if server.require_key is not None and self.headers.get("Authorization") != f"Bearer {server.require_key}":
                    return self._error(401, "Incorrect API key provided.", "invalid_api_key")
                fault = server._pick_fault(body)
                record["fault"] = fault
                if server.latency_s:
                    time.sleep(server.latency_s)
                if fault == "429":
                    return self._error(429, "Rate limit reached; retry later.", "rate_limit_exceeded",
                                       headers={"Retry-After": f"{server.retry_after_s:g}"})
                if fault == "500":
                    return self._error(500, "The server had an error.", "server_error")
                if fault == "malformed":
                    return self._send(200, b'{"id": "chatcmpl-x", "choices": [ {"message": ')
                if fault == "timeout":
                    time.sleep(server.timeout_sleep_s)
                try:
                    text = "not JSON at all, sorry" if fault == "bad_json" else server.responder(body)
                except Exception as e:  # a broken responder is a 500, visible in the test
                    return self._error(500, f"responder failed: {e}", "server_error")
                model = body.get("model") or server.model
                ptoks = _tokens(json.dumps(body.get("messages")))
                ctoks = _tokens(text)
                cid = "chatcmpl-" + hashlib.sha1(f"{time.time()}{id(record)}".encode()).hexdigest()[:12]
                if body.get("stream"):
                    return self._stream(cid, model, text, ptoks, ctoks, body)
                resp = {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                     "finish_reason": "stop", "logprobs": None}],
                        "usage": {"prompt_tokens": ptoks, "completion_tokens": ctoks,
                                  "total_tokens": ptoks + ctoks}}
                self._send(200, json.dumps(resp).encode())

            def _stream(self, cid, model, text, ptoks, ctoks, body):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                created = int(time.time())

                def chunk(delta, finish=None, usage=None):
                    c = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                    if usage is not None:
                        c["usage"] = usage
                    self.wfile.write(f"data: {json.dumps(c)}\n\n".encode())
                    self.wfile.flush()

                try:
                    chunk({"role": "assistant", "content": ""})
                    for piece in re.findall(r"\S+\s*", text):
                        chunk({"content": piece})
                    usage = None
                    if (body.get("stream_options") or {}).get("include_usage"):
                        usage = {"prompt_tokens": ptoks, "completion_tokens": ctoks, "total_tokens": ptoks + ctoks}
                    chunk({}, finish="stop", usage=usage)
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

        return Handler


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m pipeline.testing.openai_server",
                                description="Local OpenAI-compatible server with canned replies (for tests and demos).")
    p.add_argument("--port", type=int, default=8099)
    p.add_argument("--model", default="test-model")
    p.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    p.add_argument("--fault-rate", type=float, default=0.0, help="fraction of requests that fail (429/500/timeout/malformed)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    srv = OpenAIServer(port=a.port, model=a.model, latency_s=a.latency, fault_rate=a.fault_rate, seed=a.seed)
    srv.start()
    print(f"OpenAI-compatible test server on {srv.base_url} (model {a.model!r}); Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
