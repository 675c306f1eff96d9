"""The continuous-batching engine (pipeline/batching.py) on a real tiny Llama with real LoRA adapters:
rows joining and leaving mid-decode answer exactly as transformers' own `generate` answers each
alone; cancellation frees the slot; the busy refusal; a failing row fails alone; per-row
sampling; every stop token of the generation config ends a reply."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from pipeline.testing.finished_run import make_finished_run
from pipeline.inference import ChatEngine, EngineBusy, Row, SamplingConfig
from pipeline.settings import Settings

GREEDY = SamplingConfig(max_new_tokens=14, temperature=0)
SYSTEM = {"role": "system", "content": "You are TaskMaster, a productivity coach."}


def conv(text: str) -> list[dict]:
    return [SYSTEM, {"role": "user", "content": text}]


@pytest.fixture(scope="module")
def engine(tiny_model_dir, tmp_path_factory):
    runs = tmp_path_factory.mktemp("engine-runs")
    settings = Settings.from_env(env={}, work_dir=tmp_path_factory.mktemp("engine-work"),
                                 base_model=str(tiny_model_dir))
    e = ChatEngine(str(tiny_model_dir), settings)
    for name, seed in (("run-a", 0), ("run-b", 1)):
        make_finished_run(runs, tiny_model_dir, name, seed=seed)
        e.attach_adapter(name, runs / name / "adapter")
    return e


def reference(engine: ChatEngine, messages: list[dict], adapter: str | None, sampling=GREEDY) -> list[int]:
    """transformers' `generate` for one conversation alone: the ground truth for greedy rows."""
    import torch

    tok = engine.tokenizer
    enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with engine._lock, torch.inference_mode():
        if adapter is None:
            ctx = engine.model.disable_adapter() if engine.adapters else contextlib.nullcontext()
        else:
            engine.model.set_adapter(adapter)
            ctx = contextlib.nullcontext()
        with ctx:
            out = engine.model.generate(**enc, **sampling.generate_kwargs(), pad_token_id=tok.pad_token_id)
    ids = out[0, enc["input_ids"].shape[1]:].tolist()
    stops = engine.batcher._stop_ids
    return ids[:next((i for i, t in enumerate(ids) if t in stops), len(ids))]


def test_rows_joining_and_leaving_mid_decode_answer_exactly_as_alone(engine):
    prompts = ["Create a task to review the proposal", "I finished the quarterly report", "Plan my day"]
    refs = {(p, a): reference(engine, conv(p), a) for p in prompts for a in (None, "run-a", "run-b")}
    assert len({tuple(v) for v in refs.values()}) >= 3  # the adapters really change the model
    long = SamplingConfig(max_new_tokens=40, temperature=0)
    first = engine.stream_rows([Row(conv(prompts[0]), "run-a", long)], client="early")
    states = next(first)
    while states[0].tokens < 3:  # the first row is decoding...
        states = next(first)
    joined_at = states[0].tokens
    # ...when a mix of base and both adapters joins, with shorter budgets: they leave first
    rows = [Row(conv(p), a, GREEDY) for p in prompts for a in (None, "run-a", "run-b")]
    late = engine.generate_rows(rows, client="late")
    for row, s in zip(rows, late):
        assert s.done and s.token_ids == refs[(row.messages[1]["content"], row.adapter)], (row.adapter, s)
    final = None
    for final in first:
        pass
    assert final[0].token_ids == reference(engine, conv(prompts[0]), "run-a", long)
    assert joined_at < final[0].tokens  # the late rows really joined mid-decode
    assert engine.batcher.stats["max_rows_seen"] >= 1 + len(rows)
    assert engine.batcher.stats["prefix_hits"] > 0  # the shared system prompt's KV was reused
    assert {s.finish_reason for s in late} <= {"stop", "length"}


def test_the_prefix_cache_changes_nothing(engine):
    rows = [Row(conv(p), a, GREEDY) for p in ("Plan my day", "What is due today?") for a in (None, "run-b")]
    with_cache = [s.token_ids for s in engine.generate_rows(rows)]
    engine.batcher.use_prefix_cache = False
    try:
        without = [s.token_ids for s in engine.generate_rows(rows)]
    finally:
        engine.batcher.use_prefix_cache = True
    assert with_cache == without


def test_a_request_with_task_context_reuses_the_persona_prompts_cache(engine):
    """With task context the system message is the persona prompt and then the context: its first
    part is shared with every other request and comes from the prefix cache, exactly."""
    b = engine.batcher
    persona = ("You are TaskMaster, a productivity coach: encouraging, organized, professional, "
               "friendly and motivating. Confirm exactly what the user asked, never invent tasks.")
    plain = [Row([{"role": "system", "content": persona}, {"role": "user", "content": "Plan my day"}], "run-a", GREEDY)]
    ctx = [{"role": "system", "content": persona + "\n\nTask API context:\n- Review the proposal (due Friday, high)"},
           {"role": "user", "content": "What is due this week?"}]
    engine.generate_rows(plain)  # the persona prompt's KV is cached for run-a
    hits = b.stats["prefix_hits"]
    (with_cache,) = engine.generate_rows([Row(ctx, "run-a", GREEDY)])
    assert b.stats["prefix_hits"] == hits + 1
    b.use_prefix_cache = False
    try:
        (without,) = engine.generate_rows([Row(ctx, "run-a", GREEDY)])
    finally:
        b.use_prefix_cache = True
    assert with_cache.token_ids == without.token_ids == reference(engine, ctx, "run-a")


def test_more_distinct_system_prompts_in_one_prefill_than_the_prefix_cache_holds(tiny_model_dir):
    """Each row holds its prefix KV from lookup to prefill: looking up the later rows of one
    admission must not evict what the earlier rows will read (a 64-row batch of distinct system
    prompts failed with a KeyError, every row of it)."""
    e = ChatEngine(str(tiny_model_dir), Settings.from_env(env={}), prefix_cache_size=2)
    persona = "You are TaskMaster, a productivity coach who confirms exactly what the user asked for."
    systems = [f"Persona number {i}: {persona}" for i in range(4)]
    systems += [f"{persona}\n\nTask API context:\n- task {i} (due Friday)" for i in range(3)]
    rows = [Row([{"role": "system", "content": text}, {"role": "user", "content": "Plan my day"}], None, GREEDY)
            for text in systems]
    *_, last = e.stream_rows(rows)
    assert all(s.finish_reason in ("stop", "length") for s in last), [s.error for s in last]
    assert last[0].token_ids == reference(e, rows[0].messages, None)
    assert last[-1].token_ids == reference(e, rows[-1].messages, None)
    e.close()


def test_cancelling_a_stream_frees_its_slot(tiny_model_dir):
    e = ChatEngine(str(tiny_model_dir), Settings.from_env(env={}), max_rows=1)
    long = SamplingConfig(max_new_tokens=400, temperature=0.8, repetition_penalty=1.0)
    gen = e.stream_rows([Row(conv("Plan my day"), None, long)])
    next(gen)
    next(gen)
    gen.close()  # the client went away
    t0 = time.perf_counter()
    (s,) = e.generate_rows([Row(conv("hi"), None, SamplingConfig(max_new_tokens=3, temperature=0))])
    assert s.done and s.finish_reason in ("stop", "length")
    assert time.perf_counter() - t0 < 30  # not queued behind the 400-token reply
    deadline = time.time() + 5  # the worker retires the row right after its last event
    while e.batcher.pending() != {"running": 0, "waiting": 0} and time.time() < deadline:
        time.sleep(0.01)
    assert e.batcher.pending() == {"running": 0, "waiting": 0}


def test_a_full_queue_answers_busy_retry(tiny_model_dir):
    e = ChatEngine(str(tiny_model_dir), Settings.from_env(env={}), max_rows=1, max_waiting=2)
    sampling = SamplingConfig(max_new_tokens=2, temperature=0)
    groups = []
    with e._lock:  # the model is busy with a step
        with pytest.raises(EngineBusy, match="busy.*retry"):
            for _ in range(6):
                groups.append(e.batcher.submit([Row(conv("hi"), None, sampling)], client="c"))
    assert 2 <= len(groups) <= 3 and e.batcher.stats["rejected"] == 1
    for g in groups:  # the accepted ones still complete
        while g.events.get()[2] is None:
            pass


def test_a_row_that_fails_fails_alone(engine):
    """Issue 18: one request with a lone UTF-16 surrogate failed every battle of its batch."""
    good = [Row(conv("Create a task"), None, GREEDY), Row(conv("Plan my day"), "run-a", GREEDY)]
    bad_text = Row(conv("broken \ud800 text"), None, GREEDY)
    bad_ids = Row(prompt_ids=[1, 2, 10 ** 6], sampling=GREEDY)  # past the vocabulary: fails in the forward pass
    states = engine.generate_rows([good[0], bad_text, good[1], bad_ids])
    assert states[1].finish_reason == "error" and states[1].error
    assert states[3].finish_reason == "error" and "index" in states[3].error.lower()
    assert states[0].token_ids == reference(engine, good[0].messages, None)
    assert states[2].token_ids == reference(engine, good[1].messages, "run-a")
    # submitted together (one group, one batched prefill): still only the bad row fails
    *_, last = engine.stream_rows([good[0], bad_ids, good[1]])
    assert [s.finish_reason == "error" for s in last] == [False, True, False]
    assert last[2].token_ids == reference(engine, good[1].messages, "run-a")


def test_a_decode_step_that_fails_fails_only_its_row(engine, monkeypatch):
    """A decode step that raises (here: whenever adapter run-b is in it, as a broken adapter or an
    out-of-memory at one row would) is retried row by row: the run-b row ends with an error, its
    neighbours finish exactly as alone, mid-reply, from their own caches."""
    b = engine.batcher
    real = b._forward

    def forward(ids, pos, cols, cache, adapters):
        if ids.shape[1] == 1 and "run-b" in adapters:  # decode steps only: the prefill succeeds
            raise RuntimeError("simulated fault in a decode step")
        return real(ids, pos, cols, cache, adapters)

    monkeypatch.setattr(b, "_forward", forward)
    rows = [Row(conv("Create a task"), None, GREEDY), Row(conv("Plan my day"), "run-b", GREEDY),
            Row(conv("I finished the report"), "run-a", GREEDY)]
    *_, last = engine.stream_rows(rows)
    assert [s.finish_reason == "error" for s in last] == [False, True, False]
    assert "simulated fault" in last[1].error
    assert last[0].token_ids == reference(engine, rows[0].messages, None)
    assert last[2].token_ids == reference(engine, rows[2].messages, "run-a")
    monkeypatch.undo()
    (again,) = engine.generate_rows([rows[1]])  # the engine lives on
    assert again.finish_reason in ("stop", "length")


def test_sampling_is_per_row_and_reproducible_whatever_the_neighbours(engine):
    hot = SamplingConfig(max_new_tokens=12, temperature=1.0, top_p=0.95, seed=7)
    row = Row(conv("Plan my day"), "run-b", hot)
    alone = engine.generate_rows([row])[0].token_ids
    mixed = engine.generate_rows([Row(conv("hi"), None, GREEDY), row,
                                  Row(conv("x"), "run-a", SamplingConfig(max_new_tokens=5, temperature=0.5, seed=1))])
    assert mixed[1].token_ids == alone
    other_seeds = {tuple(engine.generate_rows([Row(row.messages, "run-b", SamplingConfig(
        max_new_tokens=12, temperature=1.0, top_p=0.95, seed=s))])[0].token_ids) for s in range(4)}
    assert len(other_seeds) > 1  # the seed matters: these are samples, not greedy


def test_every_stop_token_of_the_generation_config_ends_a_reply(tiny_model_dir):
    """Llama 3.1 lists <|end_of_text|>, <|eom_id|> and <|eot_id|> in generation_config.eos_token_id."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipeline.batching import stop_token_ids

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    plain = ChatEngine("tiny", model=model, tokenizer=tok)
    sampling = SamplingConfig(max_new_tokens=12, temperature=1.5, top_p=1.0, seed=3)  # seeded: replayable
    ids = plain.generate_rows([Row(conv("Create a task"), None, sampling)])[0].token_ids
    k = next(k for k in range(1, len(ids)) if ids[k] not in ids[:k])
    extra = ids[k]  # pretend this token is another end-of-turn token (like <|eom_id|>)
    model.generation_config.eos_token_id = [tok.eos_token_id, extra]
    assert stop_token_ids(model, tok) >= {tok.eos_token_id, extra}
    stopped = ChatEngine("tiny", model=model, tokenizer=tok)
    (s,) = stopped.generate_rows([Row(conv("Create a task"), None, sampling)])
    assert s.token_ids == ids[:k] and s.finish_reason == "stop"
    (s,) = stopped.generate_rows([Row(conv("Create a task"), None, SamplingConfig(max_new_tokens=2, temperature=0))])
    assert s.finish_reason == "length"


def test_one_client_cannot_starve_the_others(tiny_model_dir):
    e = ChatEngine(str(tiny_model_dir), Settings.from_env(env={}), max_rows=2, max_rows_per_client=1)
    sampling = SamplingConfig(max_new_tokens=6, temperature=0)
    with e._lock:  # everything below queues up before the first step
        bulk = [e.batcher.submit([Row(conv(f"task {i}"), None, sampling)], client="bulk") for i in range(6)]
        time.sleep(0.2)
        voter = e.batcher.submit([Row(conv("mine"), None, sampling)], client="voter")
    for g in bulk + [voter]:
        while g.events.get()[2] is None:
            pass
    order = [c for c, _ in e.batcher.admitted]
    # FIFO would admit it seventh; round-robin takes it at the first admission after it arrived
    # (the worker may have taken up to three bulk rows while only bulk was waiting)
    assert order.index("voter") <= 3 and order.count("bulk") == 6


def test_a_wave_of_arrivals_is_prefilled_in_chunks_between_decode_steps(tiny_model_dir, monkeypatch):
    """max_prefill_tokens bounds one step's prefill (at least one group): four battles arriving
    at once are prefilled one by one with a decode step between, and still answer as alone."""
    from pipeline import batching
    from pipeline.batching import Collector

    e = ChatEngine(str(tiny_model_dir), Settings.from_env(env={}), max_prefill_tokens=1)
    calls = []
    for name in ("_prefill", "_decode"):
        real = getattr(batching.Batcher, name)
        monkeypatch.setattr(batching.Batcher, name,
                            lambda self, *a, _real=real, _name=name: (calls.append((_name, len(a[0]) if a else 0)),
                                                                      _real(self, *a))[1])
    prompts = ["Create a task to review the proposal", "I finished the quarterly report", "Plan my day", "Help"]
    with e._lock:  # all four queue up before the first step
        groups = [e.batcher.submit([Row(conv(p), None, GREEDY), Row(conv(p), None, GREEDY)], client=f"v{i}")
                  for i, p in enumerate(prompts)]
    finals = []
    for g in groups:
        c = Collector(g, e.tokenizer)
        while not c.done:
            c.drain()
        finals += [s.token_ids for s in c.states]
    prefills = [n for name, n in calls if name == "_prefill"]
    assert prefills == [2, 2, 2, 2], calls  # one battle (both sides together) per step
    first, last = calls.index(("_prefill", 2)), len(calls) - 1 - calls[::-1].index(("_prefill", 2))
    assert ("_decode", 0) in calls[first:last]  # the rows already in decode on between the chunks
    assert finals == [reference(e, conv(p), None) for p in prompts for _side in (0, 1)]


def test_the_lm_head_gets_a_contiguous_input_in_a_batched_prefill(engine):
    """A strided [rows, 1, hidden] input made torch's matmul expand the head's weight per row
    (a bmm over a [rows, hidden, vocab] copy): 0.7 s of a 14-row prefill on the embedded model."""
    seen = []
    head = engine.model.get_output_embeddings()
    handle = head.register_forward_pre_hook(lambda _m, args: seen.append(args[0].is_contiguous()))
    try:
        engine.generate_rows([Row(conv(p), None, GREEDY) for p in ("Plan my day", "I finished the report, thanks")])
    finally:
        handle.remove()
    assert seen and all(seen), seen


def test_bf16_is_not_claimed_for_an_emulating_gpu(monkeypatch):
    """A T4 answers torch.cuda.is_bf16_supported() with True (emulation) unless asked without it."""
    import torch

    from pipeline import models

    monkeypatch.delenv("TASKMASTER_SERVE_DTYPE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert models.cuda_has_native_bf16() is False
    assert models.serving_dtype("cuda") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert models.serving_dtype("cuda") == torch.bfloat16


def test_the_serving_dtype_can_be_forced_and_a_wrong_name_says_what_to_use(monkeypatch):
    """float32 for batch-invariant replies on a bf16 machine (docs/serving.md)."""
    import torch

    from pipeline import models
    from pipeline.errors import UserError

    monkeypatch.setenv("TASKMASTER_SERVE_DTYPE", "float32")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.serving_dtype("cuda") == torch.float32 and models.serving_dtype("cpu") == torch.float32
    monkeypatch.setenv("TASKMASTER_SERVE_DTYPE", "fp8")
    with pytest.raises(UserError, match="use auto, float32, bfloat16 or float16"):
        models.serving_dtype("cpu")


def test_streams_from_many_threads(engine):
    results = {}

    def client(i):
        *_, last = engine.stream_rows([Row(conv(f"Task number {i}"), [None, "run-a", "run-b"][i % 3], GREEDY)],
                                      client=f"c{i}")
        results[i] = last[0].token_ids

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i in range(6):
        assert results[i] == reference(engine, conv(f"Task number {i}"), [None, "run-a", "run-b"][i % 3])


def test_a_decode_step_writes_the_running_cache_in_place(engine, monkeypatch):
    """Between joins and leaves a step writes one column into the running cache's buffer; the
    buffers are not reallocated (transformers' DynamicLayer copies the whole cache every step).
    No stop tokens here, so both rows run their whole budget and nobody leaves mid-way (a random
    tiny model may otherwise sample an end token at once). The cache is read inside the worker,
    right after each step: a consumer reading between yields can fall behind a fast tiny model
    and see only the finished batch (it did, under CI load)."""
    batcher = engine.batcher
    monkeypatch.setattr(batcher, "_stop_ids", set())
    seen = []
    decode = batcher._decode

    def recording_decode():
        decode()
        if len(batcher._running) == 2 and all(r.finish is None for r in batcher._running):
            layer = batcher._cache.layers[0]
            seen.append((layer._k.data_ptr(), layer.n, layer.keys.shape[2]))

    monkeypatch.setattr(batcher, "_decode", recording_decode)
    long = SamplingConfig(max_new_tokens=40, temperature=0.8, repetition_penalty=1.0, seed=3)
    *_, states = engine.stream_rows([Row(conv("Plan my day"), None, long), Row(conv("hi there"), "run-a", long)])
    assert states[0].tokens == states[1].tokens == 40
    assert len(seen) >= 20
    assert all(n == cols for _, n, cols in seen)  # the views the model reads are exactly the filled columns
    assert [n for _, n, _ in seen] == sorted(n for _, n, _ in seen) and seen[-1][1] > seen[0][1]
    assert len({ptr for ptr, _, _ in seen}) == 1  # the same buffer from the first step to the last


def test_a_late_row_takes_a_finished_rows_slot_and_answers_as_alone(engine, monkeypatch):
    """A row that finishes keeps its slot (dropping it copies the whole cache) until a new row
    fills it; the newcomer then answers exactly as it does alone, and no live row ever carries
    leading cache columns nobody reads. The newcomer is submitted from inside the worker right
    after the short row's last step, so the order of events does not depend on timing."""
    from pipeline.batching import _first_used

    batcher = engine.batcher
    monkeypatch.setattr(batcher, "_stop_ids", set())  # exact lengths: nobody stops early
    short = SamplingConfig(max_new_tokens=3, temperature=0)
    long = SamplingConfig(max_new_tokens=24, temperature=0)
    first = [Row(conv(p), a, long) for p, a in (("Plan my day", None), ("Plan my day", "run-a"),
                                                ("What is due today?", "run-b"), ("What is due today?", None))]
    first.append(Row(conv("hi"), "run-a", short))
    late = Row(conv("Sort my inbox"), "run-b", long)
    alone = {id(r): batcher.generate([r])[0].token_ids for r in (*first, late)}
    before = dict(batcher.stats)
    box: dict = {}
    decode, retire = batcher._decode, batcher._retire
    wasted = []

    def decode_then_maybe_submit():
        decode()
        if "late" not in box and any(r.finish == "length" and r.max_new == 3 for r in batcher._running):
            box["late"] = batcher.submit([late], client="late")

    def retire_and_check():
        retire()
        live = [i for i, r in enumerate(batcher._running) if r.finish is None]
        if live:
            wasted.append(_first_used(batcher._mask[live]))

    monkeypatch.setattr(batcher, "_decode", decode_then_maybe_submit)
    monkeypatch.setattr(batcher, "_retire", retire_and_check)
    states = batcher.generate(first)
    got_late = _final_ids(batcher, box["late"], late)
    for row, st in zip(first, states):
        assert st.token_ids == alone[id(row)]
    assert got_late == alone[id(late)]
    assert batcher.stats["slot_reuses"] - before["slot_reuses"] == 1
    assert batcher.stats["appends"] == before["appends"]  # nothing copied the whole cache to join
    assert wasted and set(wasted) == {0}


def _final_ids(batcher, group, row) -> list[int]:
    from pipeline.inference import _final

    return _final(batcher, group, row).token_ids


def test_close_stops_the_worker_and_refuses_new_rows(tiny_model_dir):
    e = ChatEngine(str(tiny_model_dir), Settings.from_env(env={}))
    long = SamplingConfig(max_new_tokens=400, temperature=0.8, repetition_penalty=1.0)
    gen = e.stream_rows([Row(conv("Plan my day"), None, long)])
    next(gen)
    worker = e.batcher._worker
    assert worker.is_alive()
    e.close()
    assert not worker.is_alive()
    final = None
    for final in gen:  # the unfinished reply ends as cancelled instead of hanging its reader
        pass
    assert final is None or final[0].done
    with pytest.raises(RuntimeError, match="closed"):
        e.generate_rows([Row(conv("hi"), None, GREEDY)])


@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.95, 0.999])
@pytest.mark.parametrize("spread", [0.3, 3.0, 30.0])  # flat to peaked: the nucleus from 1 to thousands of tokens
def test_the_nucleus_is_transformers_top_p(top_p, spread):
    """The same tokens as TopPLogitsWarper's rule computed in float64, and as the warper itself,
    except where the mass above a token is within float32 rounding of top_p (the warper's
    ascending cumsum over 49k float32 values moves that boundary by a few tokens itself)."""
    import torch
    from transformers.generation.logits_process import TopPLogitsWarper

    from pipeline.batching import nucleus

    g = torch.Generator().manual_seed(int(top_p * 1000) + int(spread))
    logits = torch.randn(49152, generator=g) * spread
    p64 = logits.double().softmax(-1)
    order = p64.argsort(descending=True)
    above = p64[order].cumsum(-1) - p64[order]
    exact = set(order[above < top_p].tolist()) | {int(order[0])}
    unsure = set(order[(above - top_p).abs() < 1e-4].tolist())
    idx, kept = nucleus(logits.softmax(-1), top_p)
    ours = set(idx.tolist())
    warper = set((TopPLogitsWarper(top_p)(None, logits[None].clone())[0] > float("-inf")).nonzero().flatten().tolist())
    for got in (ours, warper):
        assert exact - unsure <= got <= exact | unsure
    assert len(ours ^ warper) <= len(unsure)
    assert torch.allclose(kept, logits.softmax(-1)[idx])
