"""`serve` over real HTTP on 127.0.0.1 with the official `openai` client: models, streaming and
not, concurrent clients, a client leaving mid-stream, auth on and off, the busy refusal, the LLM
judge scoring through it, and the Arena / evaluation using it as their engine
(TASKMASTER_ENGINE_URL)."""

from __future__ import annotations

import socket
import threading
import time

import openai
import pytest

from pipeline.testing.finished_run import make_finished_run
from pipeline.inference import ChatEngine, SamplingConfig
from pipeline.prompting import with_persona_system
from pipeline.settings import Settings

SYSTEM = "You are TaskMaster, a productivity coach."
GREEDY = dict(temperature=0, max_tokens=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`pipeline.serve.create_app` under a real uvicorn server in a thread."""

    def __init__(self, engine, adapters, *, api_key=None, system_prompt=SYSTEM):
        import uvicorn

        from pipeline.serve import create_app

        self.port = _free_port()
        app = create_app(engine, adapters, api_key=api_key, system_prompt=system_prompt)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)
        assert self.server.started
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("serve-work")
    settings = Settings.from_env(env={}, work_dir=work, base_model=str(tiny_model_dir))
    make_finished_run(settings.runs_dir, tiny_model_dir, "run-a")
    engine = ChatEngine(str(tiny_model_dir), settings)
    adapters = {"run-a": settings.runs_dir / "run-a" / "adapter"}
    with Server(engine, lambda: adapters) as srv:
        yield srv, engine, settings


def local(engine, text: str, adapter=None, max_new_tokens=10) -> str:
    conv = with_persona_system([{"role": "user", "content": text}], SYSTEM)
    return engine.generate(conv, adapter, SamplingConfig(max_new_tokens=max_new_tokens, temperature=0))


def test_models_and_a_reply_with_and_without_streaming(served):
    srv, engine, _ = served
    client = openai.OpenAI(base_url=srv.base_url, api_key="anything", max_retries=0)
    assert [m.id for m in client.models.list()] == ["taskmaster-base", "taskmaster-run-a"]
    engine.attach_adapter("run-a", served[2].runs_dir / "run-a" / "adapter")
    for model, adapter in (("taskmaster-base", None), ("taskmaster-run-a", "run-a")):
        r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Create a task"}],
                                           **GREEDY)
        expected = local(engine, "Create a task", adapter)
        assert r.choices[0].message.content.strip() == expected
        assert r.choices[0].finish_reason in ("stop", "length") and r.usage.completion_tokens > 0
        chunks = list(client.chat.completions.create(model=model, stream=True, stream_options={"include_usage": True},
                                                     messages=[{"role": "user", "content": "Create a task"}], **GREEDY))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.strip() == expected
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
        assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens
    with pytest.raises(openai.NotFoundError, match="taskmaster-run-a"):
        client.chat.completions.create(model="taskmaster-nope", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="taskmaster-base", messages=[])


def test_concurrent_streaming_clients_each_get_their_own_exact_reply(served):
    srv, engine, settings = served
    engine.attach_adapter("run-a", settings.runs_dir / "run-a" / "adapter")
    prompts = [f"Plan task {i}" for i in range(8)]
    out: dict[int, str] = {}

    def one(i):
        client = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        model = "taskmaster-run-a" if i % 2 else "taskmaster-base"
        stream = client.chat.completions.create(model=model, stream=True, user=f"client-{i}",
                                                messages=[{"role": "user", "content": prompts[i]}], **GREEDY)
        out[i] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    steps = engine.batcher.stats["max_rows_seen"]
    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i in range(8):
        assert out[i].strip() == local(engine, prompts[i], "run-a" if i % 2 else None), i
    assert engine.batcher.stats["max_rows_seen"] >= max(steps, 2)  # they shared decode steps


def test_a_client_leaving_mid_stream_frees_its_slot(served):
    srv, engine, _ = served
    client = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
    cancelled = engine.batcher.stats["cancelled"]
    stream = client.chat.completions.create(model="taskmaster-base", stream=True, max_tokens=1500, temperature=1.0,
                                            messages=[{"role": "user", "content": "Tell me a long story"}])
    it = iter(stream)
    next(it)
    next(it)
    stream.close()  # the client goes away after two chunks
    deadline = time.time() + 20
    while engine.batcher.stats["cancelled"] == cancelled and time.time() < deadline:
        time.sleep(0.05)
    assert engine.batcher.stats["cancelled"] > cancelled
    while engine.batcher.pending()["running"] and time.time() < deadline:
        time.sleep(0.05)
    assert engine.batcher.pending() == {"running": 0, "waiting": 0}


def test_auth_on(tiny_model_dir):
    engine = ChatEngine(str(tiny_model_dir), Settings.from_env(env={}))
    with Server(engine, lambda: {}, api_key="s3cret-key") as srv:
        ok = openai.OpenAI(base_url=srv.base_url, api_key="s3cret-key", max_retries=0)
        assert ok.chat.completions.create(model="taskmaster-base", messages=[{"role": "user", "content": "hi"}],
                                          max_tokens=2).choices[0].message.content is not None
        bad = openai.OpenAI(base_url=srv.base_url, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError, match="Bearer") as e:
            bad.models.list()
        assert "s3cret" not in str(e.value)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="taskmaster-base", messages=[{"role": "user", "content": "hi"}])
        import urllib.request

        assert b'"ok"' in urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/health").read()  # no key needed


def test_a_full_queue_answers_429_busy(tiny_model_dir):
    engine = ChatEngine(str(tiny_model_dir), Settings.from_env(env={}), max_rows=1, max_waiting=1)
    with Server(engine, lambda: {}) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        results, errors = [], []

        def one():
            try:
                results.append(client.chat.completions.create(
                    model="taskmaster-base", messages=[{"role": "user", "content": "hi"}], max_tokens=3))
            except openai.RateLimitError as exc:
                errors.append(exc)

        with engine._lock:  # the model is busy: requests pile up
            threads = [threading.Thread(target=one) for _ in range(5)]
            for t in threads:
                t.start()
            deadline = time.time() + 20
            while not errors and time.time() < deadline:
                time.sleep(0.05)
        for t in threads:
            t.join(60)
        assert errors and "busy" in str(errors[0]) and "retry" in str(errors[0])
        assert errors[0].response.headers.get("retry-after") == "1"
        assert results  # the accepted ones were answered


@pytest.mark.slow  # two 2.6k-token prompts decoded 150 tokens each: ~10 s quiet, minutes on a loaded CPU
def test_the_llm_judge_scores_through_serve(tiny_model_dir, tmp_path):
    """pipeline/judges/llm.py through pipeline/llm_client.py against a real model server: every
    item is sent, answered by the model, and (the tiny random model writes no JSON verdict)
    counted as a judge failure, never as a score. The judge's rubric prompt is ~8k tokens of the
    tiny model's 512-token vocabulary: a copy of it reads 16k positions (RoPE needs no new weights)."""
    import json
    import shutil
    from pipeline.judges.base import JudgeItem
    from pipeline.judges.llm import LLMJudge
    from pipeline.llm_client import ClientConfig, LLMClient
    from pipeline.settings import Endpoint
    from pipeline.spec import load_persona
    from tests.conftest import PERSONA_DIR

    model_dir = tmp_path / "tiny-16k"
    shutil.copytree(tiny_model_dir, model_dir)
    cfg = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**cfg, "max_position_embeddings": 16384}))
    spec = load_persona(PERSONA_DIR).spec
    engine = ChatEngine(str(model_dir), Settings.from_env(env={}))
    with Server(engine, lambda: {}, system_prompt=None) as srv:
        client = LLMClient(ClientConfig(Endpoint(base_url=srv.base_url, api_key="k", model="taskmaster-base"),
                                        max_retries=0, timeout_s=600, price_per_1k_input=0, price_per_1k_output=0))
        judge = LLMJudge(spec, client)
        items = [JudgeItem(f"i{k}", [{"role": "user", "content": "I finished the report"}], "Nice work! What's next?")
                 for k in range(2)]
        verdicts = judge.judge_batch(items)
    assert judge.name.startswith("llm:taskmaster-base:")
    assert len(verdicts) == 2 and all(v.judge == judge.name for v in verdicts)
    assert client.stats["requests_sent"] >= 2 and client.stats["completion_tokens"] > 0
    for v in verdicts:
        assert not v.ok and v.overall is None and "judge failed" in v.error


def test_arena_and_respond_use_a_remote_engine(served, monkeypatch):
    """TASKMASTER_ENGINE_URL: the Arena and evaluation generate through any OpenAI-compatible
    server (here our own serve) and get the replies the local engine gives."""
    from pipeline.arena import Arena, Limits
    from pipeline.evaluation.evalset import EvalPrompt
    from pipeline.evaluation.respond import generate_replies
    from pipeline.inference import load_engine
    from pipeline.remote_engine import RemoteEngine

    srv, engine, settings = served
    monkeypatch.setenv("TASKMASTER_ENGINE_URL", srv.base_url)
    remote = load_engine(str(settings.base_model), settings)
    assert isinstance(remote, RemoteEngine)
    greedy = SamplingConfig(max_new_tokens=8, temperature=0)
    prompts = [EvalPrompt(id=f"p{i}", messages=[{"role": "user", "content": t}])
               for i, t in enumerate(["Create a task", "Plan my day"])]
    remote.attach_adapter("candidate", settings.runs_dir / "run-a" / "adapter")  # as evaluation does
    engine.attach_adapter("candidate", settings.runs_dir / "run-a" / "adapter")
    for adapter in (None, "candidate"):
        far = generate_replies(remote, prompts, adapter, greedy, SYSTEM)
        near = generate_replies(engine, prompts, adapter, greedy, SYSTEM)
        assert [r["reply"] for r in far] == [r["reply"] for r in near]
    arena = Arena(settings, lambda: remote, limits=Limits(max_new_tokens=6))
    s = arena.session(None, None, "remote-voter")
    updates = list(arena.send(s, "Create a task to review the proposal"))
    assert updates[-1].done and s.battle.state == "ready"
    assert arena.vote(s, "tie")["left"] in ("base", "run-a")
