"""The Arena through the real app and gradio_client: blind until the vote, vote stored once in
SQLite, multi-turn with the same sides, user mistakes as warnings (never a traceback)."""

from __future__ import annotations

import json

import pytest

from pipeline.testing.finished_run import make_finished_run
from pipeline.arena.votes import VoteStore, votes_path
from pipeline.settings import Settings

from .conftest import launched

RUN_ID = "run-arena-secret"  # distinctive, so a leak cannot hide among ordinary words


@pytest.fixture(scope="module")
def app(tiny_model_dir, tmp_path_factory):
    import os

    from studio.app import build_app

    old = {k: os.environ.get(k) for k in ("TASKMASTER_ARENA_MAX_NEW_TOKENS", "TASKMASTER_ARENA_MAX_TURNS")}
    os.environ.update(TASKMASTER_ARENA_MAX_NEW_TOKENS="8", TASKMASTER_ARENA_MAX_TURNS="2")
    settings = Settings.from_env(env={}, work_dir=tmp_path_factory.mktemp("arena-app"),
                                 base_model=str(tiny_model_dir))
    make_finished_run(settings.runs_dir, tiny_model_dir, RUN_ID)
    try:
        with launched(build_app(settings), queue={"default_concurrency_limit": 1, "max_size": 64}) as url:
            yield settings, url
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _client(url):
    from gradio_client import Client

    return Client(url, verbose=False)


def _arena_tab_config(url: str) -> str:
    """The page config (props and initial values) of every component inside the Arena tab.

    Other tabs may list run ids (the Evaluate tab's run picker): that tells a visitor which
    runs exist, not which side is which; the Arena's own components must not name a model."""
    import urllib.request

    cfg = json.loads(urllib.request.urlopen(f"{url}/config").read().decode())
    by_id = {c["id"]: c for c in cfg["components"]}

    def find(node):
        if by_id.get(node["id"], {}).get("props", {}).get("elem_id") == "tab-arena":
            return node
        return next((hit for ch in node.get("children", []) if (hit := find(ch))), None)

    def ids(node):
        yield node["id"]
        for ch in node.get("children", []):
            yield from ids(ch)

    tab = find(cfg["layout"])
    assert tab is not None, "no Arena tab in the page config"
    comps = [by_id[i] for i in ids(tab) if i in by_id]
    assert any(c.get("props", {}).get("elem_id") == "arena-left" for c in comps)
    return json.dumps(comps)


def _send(client, text):
    """All streamed outputs of one send, and the final one."""
    job = client.submit(text, api_name="/arena_send")
    streamed = [json.dumps(o, default=str) for o in job]
    final = job.result()
    return streamed, final


def _texts(chat) -> list[str]:
    out = []
    for m in chat:
        c = m["content"]
        out.append(c if isinstance(c, str) else " ".join(p.get("text", "") for p in c))
    return out


def test_battle_is_blind_until_the_vote_and_the_vote_is_stored_once(app):
    settings, url = app
    client = _client(url)
    seen = []
    streamed, final = _send(client, "Create a task to review the marketing proposal")
    seen += streamed + [json.dumps(final, default=str)]
    left, right = final[0], final[1]
    assert _texts(left)[0] == _texts(right)[0] == "Create a task to review the marketing proposal"
    assert len(left) == len(right) == 2 and _texts(left)[1] != _texts(right)[1]
    # The tiny model never stops by itself: both replies hit the 8-token limit and say so.
    assert all("cut at 8 tokens" in _texts(chat)[1] for chat in (left, right))
    # a follow-up goes to the same two models, in the same seats
    streamed, final = _send(client, "And set it for tomorrow")
    seen += streamed + [json.dumps(final, default=str)]
    assert len(final[0]) == 4 and _texts(final[0])[:2] == _texts(left)
    # every other endpoint a voter can call before voting, too
    seen.append(json.dumps(client.predict(api_name="/arena_draw"), default=str))
    seen.append(_arena_tab_config(url))
    for blob in seen:
        assert RUN_ID not in blob and "adapter from run" not in blob and "base model (" not in blob
    assert VoteStore(votes_path(settings)).count() == 0

    reveal = client.predict(api_name="/arena_vote_right")[0]
    assert RUN_ID in reveal and "base" in reveal and "Right is better" in reveal
    rows = VoteStore(votes_path(settings)).votes()
    assert len(rows) == 1
    row = rows[0]
    assert row["vote"] == "right" and row["turns"] == 2 and {row["model_left"], row["model_right"]} == {"base", RUN_ID}
    assert row["winner"] == row["model_right"] and row["voter_id"].startswith("anon:")
    assert f"Model A (left) was **{'adapter from run ' + RUN_ID if row['model_left'] == RUN_ID else 'base model'}" \
        in reveal
    # a second vote on the same battle is refused with a warning and stores nothing
    client.predict(api_name="/arena_vote_left")
    assert VoteStore(votes_path(settings)).count() == 1
    # optional per-trait answers attach to the stored battle
    client.predict("Left", "Neither", api_name="/arena_traits")
    assert VoteStore(votes_path(settings)).votes()[0]["traits"] == {"trait:encouraging": "left",
                                                                     "boundary_crossed": "neither"}
    summary = client.predict(api_name="/arena_results")[0]
    assert "1 vote" in summary and RUN_ID in summary and "Wilson 95% CI" in summary


def test_user_mistakes_are_warnings_and_change_nothing(app):
    settings, url = app
    client = _client(url)
    before = VoteStore(votes_path(settings)).count()
    # voting with no battle, an empty prompt, an over-long prompt: warnings, nothing stored
    client.predict(api_name="/arena_vote_left")
    _, final = _send(client, "   ")
    _, final2 = _send(client, "x" * 5000)
    assert VoteStore(votes_path(settings)).count() == before
    # the session is still usable afterwards
    _, ok = _send(client, "What are my high priority tasks?")
    assert len(ok[0]) == 2
    client.predict(api_name="/arena_vote_tie")
    assert VoteStore(votes_path(settings)).count() == before + 1
