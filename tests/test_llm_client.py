"""The LLM client against the project's real OpenAI-compatible HTTP server (pipeline.testing).

The real `openai` SDK talks HTTP to a server on 127.0.0.1; faults are injected by the server."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from pipeline.errors import UserError
from pipeline.llm_client import ClientConfig, ClientFailure, LLMClient, extract_json, validate_schema
from pipeline.settings import Endpoint, Settings
from pipeline.testing.openai_server import OpenAIServer

KEY = "sk-test-SECRET-123"
NO_TORCH = {"TASKMASTER_BASE_MODEL": "smollm2-135m"}  # naming the base model skips the CUDA probe (a torch import)
MSG = [{"role": "user", "content": "Add a task to call mom"}]
VERDICT_SCHEMA = {"type": "object", "required": ["score", "verdict"],
                  "properties": {"score": {"type": "integer", "minimum": 0, "maximum": 10},
                                 "verdict": {"enum": ["pass", "fail"]}}}


def make_client(srv: OpenAIServer, tmp_path=None, **kw) -> LLMClient:
    kw.setdefault("timeout_s", 0.5)
    kw.setdefault("backoff_base_s", 0.01)
    kw.setdefault("backoff_max_s", 0.05)
    return LLMClient(ClientConfig(Endpoint(srv.base_url, "test-model", KEY),
                                  cache_dir=(tmp_path / "cache") if tmp_path else None, **kw))


def test_retries_every_injected_fault_then_succeeds(tmp_path):
    with OpenAIServer(faults=["429", "500", "malformed", "timeout"], timeout_sleep_s=1.0, retry_after_s=0.3) as srv:
        client = make_client(srv, tmp_path)
        t0 = time.perf_counter()
        r = client.chat(MSG)
        elapsed = time.perf_counter() - t0
    assert r.text.startswith(("Got it", "Nice work", "Done", "On it")) and not r.cached
    assert r.attempts == 5
    assert srv.faults_injected() == {"429": 1, "500": 1, "malformed": 1, "timeout": 1}
    s = client.stats
    assert (s["requests_sent"], s["retries"], s["failures"]) == (5, 4, 0)
    assert s["prompt_tokens"] > 0 and s["completion_tokens"] > 0 and s["est_cost_usd"] > 0
    # Retry-After: 0.3 s was honoured (backoff alone would be <= 0.05 s per retry), plus the 0.5 s timeout.
    assert elapsed >= 0.3 + 0.5
    # The real SDK sent the key as a bearer token, and our own retries are the only ones.
    assert all(req["headers"]["authorization"] == f"Bearer {KEY}" for req in srv.requests)


def test_gives_up_with_reason_after_max_retries():
    with OpenAIServer(faults=["500"] * 10) as srv:
        client = make_client(srv, max_retries=2)
        with pytest.raises(ClientFailure) as ei:
            client.chat(MSG)
    assert "server error (HTTP 500)" in ei.value.reason and "3 attempts" in ei.value.reason
    assert srv.count() == 3 and client.stats["failures"] == 1


def test_non_retryable_error_fails_at_once_naming_the_fix():
    with OpenAIServer(require_key="another-key") as srv:
        client = make_client(srv)
        with pytest.raises(ClientFailure) as ei:
            client.chat(MSG)
    assert srv.count() == 1
    assert "HTTP 401" in ei.value.reason and "OPENAI_API_KEY" in ei.value.reason
    assert KEY not in ei.value.reason


def test_cache_makes_a_rerun_free_and_never_stores_the_key(tmp_path):
    with OpenAIServer() as srv:
        first = make_client(srv, tmp_path)
        reqs = [{"messages": [{"role": "user", "content": f"task {i}"}]} for i in range(6)]
        a = first.chat_many(reqs)
        assert srv.count() == 6
        second = make_client(srv, tmp_path)  # a fresh process would build a fresh client
        b = second.chat_many(reqs)
        assert srv.count() == 6  # zero new requests
    assert [x.text for x in a] == [x.text for x in b] and all(x.cached for x in b)
    assert second.stats["cache_hits"] == 6 and second.stats["requests_sent"] == 0
    files = list((tmp_path / "cache").rglob("*.json"))
    assert len(files) == 6
    for f in files:
        assert KEY not in f.read_text() and "authorization" not in f.read_text().lower()
    # Different sampling parameters are a different request.
    assert first.request_key(MSG, temperature=0.7) != first.request_key(MSG, temperature=0.0)


def test_json_reply_takes_last_object_and_retries_invalid_json(tmp_path):
    replies = iter([
        "I think it is fine.",  # no JSON at all
        'Reasoning: good. {"score": 11, "verdict": "pass"}',  # fails the schema (maximum 10)
        'Reasoning {"draft": true} ... final: ```json\n{"score": 8, "verdict": "pass"}\n```',
    ])
    with OpenAIServer(responder=lambda body: next(replies)) as srv:
        client = make_client(srv, tmp_path)
        r = client.chat(MSG, json_schema=VERDICT_SCHEMA)
    assert r.data == {"score": 8, "verdict": "pass"} and r.attempts == 3
    assert srv.count() == 3


def test_invalid_json_every_time_fails_with_the_schema_problem():
    with OpenAIServer(responder=lambda body: '{"score": "high"}') as srv:
        client = make_client(srv, max_retries=1)
        with pytest.raises(ClientFailure) as ei:
            client.chat(MSG, json_schema=VERDICT_SCHEMA)
    assert "invalid JSON" in ei.value.reason and "$.score: expected integer" in ei.value.reason
    assert srv.count() == 2


def test_request_cap_fails_without_sending(tmp_path):
    with OpenAIServer() as srv:
        client = make_client(srv, tmp_path, max_requests=2)
        out = client.chat_many([{"messages": [{"role": "user", "content": f"t{i}"}]} for i in range(4)])
    assert srv.count() == 2
    fails = [r for r in out if isinstance(r, ClientFailure)]
    assert len(fails) == 2 and all("budget exhausted: max_requests=2" in f.reason for f in fails)


def test_spend_cap_reserves_before_sending():
    # $1 per 1k output tokens and max_tokens=100: each request reserves >= $0.10, so a $0.25 cap
    # allows two requests and refuses the rest, even when they are all in flight together.
    with OpenAIServer(latency_s=0.05) as srv:
        client = make_client(srv, max_cost_usd=0.25, price_per_1k_input=0.0, price_per_1k_output=1.0)
        out = client.chat_many([{"messages": [{"role": "user", "content": f"t{i}"}], "max_tokens": 100}
                                for i in range(5)])
    ok = [r for r in out if not isinstance(r, ClientFailure)]
    assert len(ok) == 2 and srv.count() == 2
    assert client.stats["est_cost_usd"] <= 0.25
    assert "max_cost_usd" in next(r for r in out if isinstance(r, ClientFailure)).reason


def test_concurrency_limit_and_order():
    in_flight, peak, lock = [0], [0], threading.Lock()

    def responder(body):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.1)
        with lock:
            in_flight[0] -= 1
        return "reply to " + body["messages"][-1]["content"]

    with OpenAIServer(responder=responder) as srv:
        client = make_client(srv, max_concurrency=4, timeout_s=5)
        seen = []
        out = client.chat_many([{"messages": [{"role": "user", "content": f"n{i}"}]} for i in range(12)],
                               on_result=lambda i, r: seen.append(i))
    assert [r.text for r in out] == [f"reply to n{i}" for i in range(12)]
    assert peak[0] == 4 and sorted(seen) == list(range(12))


def test_sync_wrapper_works_inside_a_running_loop():
    with OpenAIServer() as srv:
        client = make_client(srv)

        async def inside():
            return client.chat(MSG)  # e.g. called from an async Gradio callback

        # In a thread of its own: an earlier test in the same process (Gradio's app tests) can
        # leave the main thread marked as running a loop, which would make asyncio.run refuse.
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            r = pool.submit(asyncio.run, inside()).result(timeout=60)
    assert r.text


def test_from_settings_needs_an_endpoint(tmp_path):
    s = Settings.from_env(env=NO_TORCH, work_dir=tmp_path, cache_dir=tmp_path / "c")
    with pytest.raises(UserError) as ei:
        LLMClient.from_settings(s, role="judge")
    assert "OPENAI_API_KEY" in str(ei.value)
    s = Settings.from_env(env={**NO_TORCH, "OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}, work_dir=tmp_path,
                          cache_dir=tmp_path / "c")
    c = LLMClient.from_settings(s, role="generator", max_concurrency=3)
    assert c.config.cache_dir == tmp_path / "c" / "llm" and c.config.max_concurrency == 3


def test_config_reports_every_problem_at_once():
    with pytest.raises(UserError) as ei:
        LLMClient(ClientConfig(Endpoint(None, "m"), max_concurrency=0, timeout_s=0, max_retries=-1))
    msg = str(ei.value)
    for field in ("endpoint", "max_concurrency", "timeout_s", "max_retries"):
        assert field in msg


def test_streaming_and_models_list_with_the_real_sdk():
    from openai import OpenAI

    with OpenAIServer(model="persona-gen") as srv:
        oc = OpenAI(base_url=srv.base_url, api_key=KEY, max_retries=0)
        assert [m.id for m in oc.models.list()] == ["persona-gen"]
        stream = oc.chat.completions.create(model="persona-gen", messages=MSG, stream=True)
        streamed = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
        plain = oc.chat.completions.create(model="persona-gen", messages=MSG).choices[0].message.content
    assert streamed == plain and "call mom" in plain


def test_extract_json_and_validator():
    assert extract_json('a {"x": "}"} b {"y": [1, {"z": 2}]} tail') == {"y": [1, {"z": 2}]}
    assert extract_json("{broken") is None
    assert validate_schema({"score": True, "verdict": "meh"}, VERDICT_SCHEMA) == [
        "$.score: expected integer, got bool", "$.verdict: 'meh' is not one of ['pass', 'fail']"]
    assert validate_schema({}, VERDICT_SCHEMA) == ["$: missing required field 'score'",
                                                   "$: missing required field 'verdict'"]
    assert json.dumps(VERDICT_SCHEMA)  # schema itself is plain JSON (it is part of the cache key)
