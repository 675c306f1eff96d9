"""Battles: sides drawn per battle, blindness until the vote, multi-turn with the same sides,
limits, and both sides streamed at once from one base model (a mixed-adapter batch)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from pipeline.arena import Arena, ArenaSession, Limits, new_battle
from pipeline.arena.battle import voter_id
from pipeline.testing.finished_run import make_finished_run
from pipeline.errors import UserError
from pipeline.inference import ChatEngine, SamplingConfig
from pipeline.settings import Settings


def test_sides_are_random_per_battle_and_replayable_from_the_seed():
    sides = Counter(new_battle(["base", "run-a"], seed=s).left for s in range(200))
    assert set(sides) == {"base", "run-a"} and 70 < sides["base"] < 130  # ~binomial(200, 1/2)
    a, b = new_battle(["base", "run-a", "run-b"], seed=42), new_battle(["base", "run-a", "run-b"], seed=42)
    assert (a.left, a.right) == (b.left, b.right) and a.id != b.id  # ids are opaque, not derived from the seed
    pairs = Counter(frozenset(new_battle(["base", "run-a", "run-b"], seed=s).models) for s in range(300))
    assert len(pairs) == 3  # any two of the pool meet
    with pytest.raises(UserError, match="needs two models"):
        new_battle(["base"])


def test_public_view_hides_models_until_the_vote():
    b = new_battle(["base", "run-secret"], seed=1)
    limits = Limits(max_turns=2)
    b.add_user_turn("hi", limits)
    with pytest.raises(UserError, match="still answering"):
        b.add_user_turn("again", limits)
    with pytest.raises(UserError, match="both replies"):
        b.cast_vote("left")
    b.finish_turn("hello from one", "hello from two")
    assert "run-secret" not in json.dumps(b.public()) and "base" not in json.dumps(b.public())
    with pytest.raises(UserError, match="after you vote"):
        b.reveal()
    b.add_user_turn("second", limits)
    b.finish_turn("x", "y")
    with pytest.raises(UserError, match="at most 2 turns"):
        b.add_user_turn("third", limits)
    b.cast_vote("right")
    assert b.reveal() == {"left": b.left, "right": b.right, "vote": "right", "winner": b.right}
    with pytest.raises(UserError, match="already voted"):
        b.cast_vote("left")
    row = b.vote_row("anon:x")
    assert row["turns"] == 2 and len(row["conversation_left"]) == 4


def test_abort_drops_the_unanswered_turn():
    b = new_battle(["base", "run-a"], seed=3)
    b.add_user_turn("hi", Limits())
    b.abort_turn()
    assert b.state == "open" and b.conv_left == [] and b.conv_right == []


def test_rate_limit_and_voter_ids():
    s = ArenaSession()
    limits = Limits(turns_per_minute=2)
    s.check_rate(limits, now=100.0)
    s.check_rate(limits, now=110.0)
    with pytest.raises(UserError, match="at most 2 turns a minute"):
        s.check_rate(limits, now=120.0)
    s.check_rate(limits, now=161.0)  # the first turn left the window
    salt = b"s" * 32
    assert voter_id("alice", "sess", salt) == "hf:alice"
    anon = voter_id(None, "sess", salt)
    assert anon.startswith("anon:") and "sess" not in anon
    assert anon == voter_id(None, "sess", salt) != voter_id(None, "sess", b"t" * 32)
    assert Limits.from_env({"TASKMASTER_ARENA_MAX_NEW_TOKENS": "16"}).max_new_tokens == 16
    with pytest.raises(UserError, match="whole number"):
        Limits.from_env({"TASKMASTER_ARENA_MAX_TURNS": "many"})


# ---- with a real tiny model and a real adapter ----------------------------------------------------

@pytest.fixture(scope="module")
def tiny_arena(tiny_model_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("arena-work")
    settings = Settings.from_env(env={}, work_dir=work, base_model=str(tiny_model_dir))
    make_finished_run(settings.runs_dir, tiny_model_dir, "run-a")
    engine = ChatEngine(str(tiny_model_dir), settings)
    return settings, engine


def test_mixed_batch_stream_equals_separate_greedy_generation(tiny_arena):
    settings, engine = tiny_arena
    engine.attach_adapter("run-a", settings.runs_dir / "run-a" / "adapter")
    conv = [{"role": "system", "content": "You are TaskMaster."}, {"role": "user", "content": "Create a task"}]
    greedy = SamplingConfig(max_new_tokens=12, temperature=0)
    updates = list(engine.stream_batch([conv, conv], [None, "run-a"], greedy))
    # a slow reader sees fewer, larger updates (the engine never waits for it); the last has both done
    assert updates and updates[-1][1] == [True, True]
    base_text, adapter_text = updates[-1][0]
    assert base_text.strip() == engine.generate(conv, None, greedy)
    assert adapter_text.strip() == engine.generate(conv, "run-a", greedy)
    assert base_text != adapter_text  # the adapter really changes the model
    # texts only grow: a streamed prefix is never rewritten
    for (prev, _), (cur, _) in zip(updates, updates[1:]):
        assert cur[0].startswith(prev[0].rstrip("\ufffd")) and cur[1].startswith(prev[1].rstrip("\ufffd"))
    with pytest.raises(KeyError):
        list(engine.stream_batch([conv, conv], [None, "nope"], greedy))


def test_a_batch_of_two_adapters_and_the_base_equals_separate_generation(tiny_arena, tmp_path):
    """One adapter per batch takes the row-masked path; two different adapters fall back to PEFT's
    mixed-adapter batches. Both must answer each row exactly as a single `generate` would, and
    leave the adapters' scales as they were."""
    settings, engine = tiny_arena
    engine.attach_adapter("run-a", settings.runs_dir / "run-a" / "adapter")
    # outside the studio's runs/ so the Arena tests below still see only base and run-a as contenders
    make_finished_run(tmp_path, engine.base_name, "run-b", seed=1)
    engine.attach_adapter("run-b", tmp_path / "run-b" / "adapter")
    conv = [{"role": "system", "content": "You are TaskMaster."}, {"role": "user", "content": "Plan my day"}]
    greedy = SamplingConfig(max_new_tokens=10, temperature=0)
    alone = {a: engine.generate(conv, a, greedy) for a in (None, "run-a", "run-b")}
    assert len(set(alone.values())) == 3  # three different models
    for rows in ([None, "run-a", "run-b"], ["run-b", None], ["run-a", "run-a", None]):
        texts, done = list(engine.stream_batch([conv] * len(rows), rows, greedy))[-1]
        assert all(done) and [t.strip() for t in texts] == [alone[a] for a in rows], rows
    assert {a: engine.generate(conv, a, greedy) for a in alone} == alone


def test_arena_multi_turn_keeps_sides_and_records_the_vote(tiny_arena):
    settings, engine = tiny_arena
    arena = Arena(settings, lambda: engine, limits=Limits(max_new_tokens=6, max_turns=2))
    s = arena.session(None, None, "session-1")
    list(arena.send(s, "Create a task to review the proposal"))
    b = s.battle
    sides = (b.left, b.right)
    assert b.state == "ready" and b.turns == 1
    list(arena.send(s, "And tomorrow?"))
    assert s.battle is b and (b.left, b.right) == sides and b.turns == 2
    assert [m["role"] for m in b.conv_left] == ["user", "assistant", "user", "assistant"]
    with pytest.raises(UserError, match="at most 2 turns"):
        list(arena.send(s, "third"))
    with pytest.raises(UserError, match="at most"):
        list(arena.send(s, "x" * 5000))
    r = arena.vote(s, "tie")
    assert {r["left"], r["right"]} == {"base", "run-a"}
    row = arena.store.get(b.id)
    assert row["vote"] == "tie" and row["turns"] == 2 and row["voter_id"].startswith("anon:")
    assert (row["model_left"], row["model_right"]) == sides
    # the persona system prompt is applied at generation, not stored as part of the user's conversation
    assert row["conversation_left"][0] == {"role": "user", "content": "Create a task to review the proposal"}
    assert arena.traits(s, {"trait:encouraging": "left"}) == 1
    # Both sides decoded the same way, the base model's default (greedy for a small model), recorded.
    assert row["sampling"] == {k: v for k, v in arena.sampling.to_dict().items() if k != "seed"}
    assert row["sampling"]["temperature"] == 0 and row["sampling"]["max_new_tokens"] == 6


def test_arena_decoding_chosen_by_the_visitor_applies_to_the_next_battle_and_its_vote(tiny_arena):
    settings, engine = tiny_arena
    arena = Arena(settings, lambda: engine, limits=Limits(max_new_tokens=4))
    s = arena.session(None, None, "session-3")
    assert "temperature 0.4" in arena.set_sampling(s, 0.4, 0.8)
    with pytest.raises(UserError, match="Temperature"):
        arena.set_sampling(s, 5, None)
    list(arena.send(s, "Create a task"))
    arena.vote(s, "both_bad")
    row = arena.store.get(s.battle.id)
    assert (row["sampling"]["temperature"], row["sampling"]["top_p"]) == (0.4, 0.8)
    arena.set_sampling(s, None, None)  # back to the default
    assert arena.battle_sampling(s) == arena.sampling


def test_eval_prompt_carries_its_category_and_a_stream_cut_short_drops_the_turn(tiny_arena):
    settings, engine = tiny_arena
    arena = Arena(settings, lambda: engine, limits=Limits(max_new_tokens=6))
    s = arena.session(None, None, "session-2")
    text = arena.draw_prompt(s, rng_seed=0)
    pending = s.pending_prompt
    list(arena.send(s, text))
    assert s.battle.prompt_id == pending["id"] and s.battle.category == pending["category"]
    arena.vote(s, "left")
    gen = arena.send(s, "A new battle after the vote")
    next(gen)
    gen.close()  # the voter left mid-stream
    assert s.battle.state == "open" and s.battle.turns == 0


def test_replies_cut_by_the_token_limit_are_marked_cut(tiny_arena):
    """The engine reports finish "length" when a reply hits max_new_tokens (the random tiny model
    never stops by itself); the battle keeps where each reply was cut and the tab marks it."""
    from studio.tabs.arena import _chats

    settings, engine = tiny_arena
    arena = Arena(settings, lambda: engine, limits=Limits(max_new_tokens=5, max_turns=2))
    s = arena.session(None, None, "session-cut")
    last = list(arena.send(s, "Create a task to review the proposal"))[-1]
    assert (last.left_finish, last.right_finish) == ("length", "length") and last.cut_at() == (5, 5)
    b = s.battle
    assert b.cuts == {"left": {1: 5}, "right": {1: 5}}
    list(arena.send(s, "And tomorrow?"))
    assert b.cuts == {"left": {1: 5, 3: 5}, "right": {1: 5, 3: 5}}
    left, right = _chats(s)
    for chat in (left, right):
        assert [("cut at 5 tokens" in m["content"]) for m in chat] == [False, True, False, True]
    # The mark is the page's, not the conversation's: the stored vote has the replies as generated.
    arena.vote(s, "tie")
    row = arena.store.get(b.id)
    assert all("cut at" not in m["content"] for m in row["conversation_left"] + row["conversation_right"])
    # ...and says where the voter saw a reply cut (a vote between cut replies may be about length).
    assert (row["cut_left"], row["cut_right"], row["cut"]) == ({1: 5, 3: 5}, {1: 5, 3: 5}, "both")


def test_a_reply_that_ended_by_itself_has_no_cut_mark_and_context_turns_keep_their_place():
    from studio.tabs.arena import _chats

    s = ArenaSession(battle=new_battle(["base", "run-a"], seed=5))
    context = [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "an earlier reply"}]
    s.battle.add_user_turn("now", Limits(), context)
    s.battle.finish_turn("left reply", "right reply", None, 7)  # left stopped, right hit the limit
    left, right = _chats(s)
    assert [m["content"] for m in left] == ["earlier", "an earlier reply", "now", "left reply"]
    assert [("cut at" in m["content"]) for m in right] == [False, False, False, True]
    assert right[-1]["content"].startswith("right reply") and "cut at 7 tokens" in right[-1]["content"]


def test_battles_join_the_running_batch_and_both_sides_advance_together(tiny_arena):
    """Battles sent while another is decoding join its batch at the next step (continuous
    batching) instead of waiting; each battle's two sides are admitted in the same step and
    every update advances both; each side equals its model answering alone."""
    import threading

    from pipeline.arena.streaming import stream_pair

    settings, engine = tiny_arena
    engine.attach_adapter("run-a", settings.runs_dir / "run-a" / "adapter")
    greedy = SamplingConfig(max_new_tokens=8, temperature=0)
    convs = [[{"role": "user", "content": p}] for p in ("Create a task", "Create a tusk", "Create a tank")]
    results: dict[int, tuple[str, str]] = {}
    steps_before = engine.batcher.stats["steps"]
    long = stream_pair(engine, convs[0], convs[0], "run-a", None, SamplingConfig(max_new_tokens=60, temperature=0))
    first = next(long)

    def battle(i):
        last = None
        for last in stream_pair(engine, convs[i], convs[i], None, "run-a", greedy, client=f"voter-{i}"):
            pass
        results[i] = (last.left, last.right)

    threads = [threading.Thread(target=battle, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    rest = list(long)
    assert sorted(results) == [0, 1, 2]
    assert engine.batcher.stats["max_rows_seen"] >= 4  # the long battle and at least one more, together
    assert rest and not first.done  # the long battle was still decoding while the others ran
    for i in range(3):  # each battle got its own rows: base on the left, the adapter on the right
        assert results[i][0].strip() == engine.generate(convs[i], None, greedy)
        assert results[i][1].strip() == engine.generate(convs[i], "run-a", greedy)
    assert engine.batcher.stats["steps"] > steps_before


def test_the_stream_to_a_voter_is_throttled_but_shows_the_first_text_at_once(tiny_arena, monkeypatch):
    """Each update is Gradio work for the studio's Python, which the engine needs too: the voter
    gets the waiting bubbles, the first text as soon as it exists, then at most one update per
    STREAM_EVERY_S, then the final replies."""
    import time

    from pipeline.arena import service

    settings, engine = tiny_arena
    monkeypatch.setattr(service, "STREAM_EVERY_S", 3600.0)  # nothing in between, whatever the speed
    arena = Arena(settings, lambda: engine, limits=Limits(max_new_tokens=24, max_turns=2))
    s = ArenaSession()
    t0 = time.monotonic()
    updates = list(arena.send(s, "Create a task to review the proposal"))
    assert time.monotonic() - t0 < 3600
    waiting, *between, final = updates
    assert (waiting.left, waiting.right) == ("", "")
    assert len(between) == 1 and (between[0].left or between[0].right)  # the first text, not every token
    assert final.done and len(final.left) >= len(between[0].left)


def test_warm_up_loads_the_contenders_and_their_prefix_caches_before_the_first_voter(tiny_model_dir, tmp_path):
    """app.py warms the Arena at launch: the first battle finds the adapter attached and the
    persona prompt's KV cached for both sides, so it prefills only the voter's turn."""
    settings = Settings.from_env(env={}, work_dir=tmp_path, base_model=str(tiny_model_dir))
    make_finished_run(settings.runs_dir, tiny_model_dir, "run-a")
    engine = ChatEngine(str(tiny_model_dir), settings)
    arena = Arena(settings, lambda: engine, limits=Limits(max_new_tokens=4))
    assert sorted(arena.warm()) == sorted(arena.contenders()) and "run-a" in engine.adapters
    cached = {key[0] for key in engine.batcher._prefix}
    assert cached == {None, "run-a"}, cached
    before = (len(engine.batcher._prefix), engine.batcher.stats["prefix_hits"])
    list(arena.send(arena.session(None, None, "first-voter"), "Create a task to review the proposal"))
    assert len(engine.batcher._prefix) == before[0]  # nothing new to compute
    assert engine.batcher.stats["prefix_hits"] == before[1] + 2  # both sides reused the warm prefix
