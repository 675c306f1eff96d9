"""The Arena's public edge under abuse (issue 18): odd text is normalised before any model
sees it, endpoints called out of order answer with a message, and one client opening many
sessions cannot stuff the ballot."""

from __future__ import annotations

import pytest

from pipeline.arena import stats
from pipeline.arena.battle import ArenaSession, Limits, new_battle
from pipeline.arena.service import Arena
from pipeline.errors import UserError
from pipeline.text_input import clean_user_text


def test_clean_user_text_removes_what_a_tokenizer_chokes_on():
    assert clean_user_text("add task \ud800 now") == "add task \ufffd now"
    assert clean_user_text("a\x00b\x1bc\r\nd\te") == "abc\nd\te"
    assert clean_user_text("Cafe\u0301") == "Caf\u00e9"  # NFC
    assert clean_user_text("\ud83d\ude00 ok") == "\U0001F600 ok", "a valid surrogate pair is joined, not dropped"
    assert clean_user_text("x\u202ey") == "xy", "bidi overrides cannot reorder what the other voter sees"
    with pytest.raises(UserError, match="text"):
        clean_user_text(["not", "text"])  # type: ignore[arg-type]
    clean_user_text("add task \ud800 now").encode("utf-8")  # encodable: never a UnicodeEncodeError later


def _arena(settings, **limits):
    return Arena(settings, lambda: None, limits=Limits(**limits))


def _ready_battle(s: ArenaSession, limits: Limits):
    s.battle = new_battle(["base", "run-a"])
    s.battle.add_user_turn("Plan my day", limits)
    s.battle.finish_turn("left reply", "right reply")


def test_traits_before_any_battle_is_a_message_not_an_attribute_error(settings):
    arena = _arena(settings)
    for state in (None, "garbage", ArenaSession()):
        with pytest.raises(UserError, match="Vote on the battle first"):
            arena.traits(state, {"trait:encouraging": "left"})


def test_many_sessions_from_one_client_are_capped(settings):
    arena = _arena(settings, votes_per_client_hour=5, votes_per_address_hour=8)
    stored, refused = 0, 0
    for i in range(12):  # 12 fresh sessions, one browser (same address and user agent)
        s = arena.session(None, None, f"fresh-{i}", address="203.0.113.5", client="Mozilla/5.0 X")
        _ready_battle(s, arena.limits)
        try:
            arena.vote(s, "left")
            stored += 1
        except UserError as exc:
            assert "votes this hour" in str(exc)
            refused += 1
    assert (stored, refused) == (5, 7)
    # Another browser behind the same address (an office NAT) gets the rest of the address cap.
    for i in range(5):
        s = arena.session(None, None, f"other-{i}", address="203.0.113.5", client="Other browser")
        _ready_battle(s, arena.limits)
        try:
            arena.vote(s, "right")
            stored += 1
        except UserError:
            refused += 1
    assert stored == 8 and arena.store.count() == 8
    # A refused vote leaves the battle votable later (nothing half-recorded).
    assert s.battle.state == "ready"


def test_results_say_how_many_votes_came_from_how_many_addresses(settings):
    arena = _arena(settings)
    for i, addr in enumerate(["198.51.100.1", "198.51.100.1", "198.51.100.2"]):
        s = arena.session(None, None, f"s{i}", address=addr, client="ua")
        _ready_battle(s, arena.limits)
        arena.vote(s, "left")
    r = arena.results(judge=[])
    assert r["voters"]["votes"] == 3 and r["voters"]["voters"] == 3 and r["voters"]["addresses"] == 2
    assert "from 2 distinct addresses" in stats.voters_line(r["voters"])
    rows = arena.store.votes()
    assert all(row["address_id"] and "198.51" not in row["address_id"] for row in rows), "a salted hash, never the IP"
