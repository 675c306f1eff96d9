"""An Arena battle in a real browser (Debian's Chromium through Playwright), tiny model:
send a prompt, wait for both replies, check that no model name is in the page before the
vote, vote, see the reveal, and find the vote in the SQLite database."""

from __future__ import annotations

import json

from pipeline.testing.finished_run import make_finished_run
from pipeline.arena.votes import VoteStore

from .conftest import open_studio, open_tab

RUN_ID = "run-browser-blind"  # distinctive: a leak cannot hide among ordinary words
PROMPT = "I have too many tasks and don't know where to start"
NAMES = (RUN_ID, "adapter from run", "base model (")  # the ids and the reveal's names
WAITING = "…"


def _page_data(page) -> str:
    """Everything the page holds: the DOM and Gradio's config (components' values and props)."""
    config = page.evaluate("() => JSON.stringify(window.gradio_config || {})")
    assert "arena-left" in config, "Gradio's page config was not found: the check below would be vacuous"
    return page.content() + config


def test_blind_battle_vote_reveal_and_stored(studio_server, page, tiny_model_dir):
    # Short replies keep the battle fast on the tiny model; a server of its own (different env).
    server = studio_server(env={"TASKMASTER_ARENA_MAX_NEW_TOKENS": "12"})
    make_finished_run(server.work_dir / "runs", tiny_model_dir, RUN_ID)
    store_path = server.work_dir / "state" / "arena" / "votes.sqlite"
    open_studio(page, server.url)
    open_tab(page, "Arena")
    assert page.locator("#arena-vote-left").is_disabled(), "no vote before a battle"

    page.locator("#arena-prompt textarea").fill(PROMPT)
    page.locator("#arena-send").click()
    page.wait_for_function("() => !document.querySelector('#arena-vote-left').disabled", timeout=120_000)
    for side in ("#arena-left", "#arena-right"):
        text = page.locator(side).inner_text()
        assert PROMPT in text, f"{side} does not show the prompt"
        bubbles = page.locator(f"{side} .message").all_inner_texts() or [text]
        assert bubbles[-1].strip() and bubbles[-1].strip() != WAITING, f"{side} has no finished reply"
    for button in ("#arena-vote-right", "#arena-vote-tie", "#arena-vote-both-bad"):
        assert page.locator(button).is_enabled()

    before = _page_data(page)
    for name in NAMES:
        assert name not in before, f"{name!r} is in the page before the vote"
    assert not store_path.exists() or VoteStore(store_path).count() == 0

    page.locator("#arena-vote-left").click()
    reveal = page.locator("#arena-reveal")
    reveal.get_by_text("You voted").wait_for(timeout=30_000)
    text = reveal.inner_text()
    assert RUN_ID in text and "base model (" in text and "Left is better" in text
    page.wait_for_function("() => document.querySelector('#arena-vote-left').disabled")

    rows = VoteStore(store_path).votes()
    assert len(rows) == 1
    row = rows[0]
    assert row["vote"] == "left" and row["winner"] == row["model_left"]
    assert {row["model_left"], row["model_right"]} == {"base", RUN_ID}
    assert row["conversation_left"][0] == {"role": "user", "content": PROMPT}
    assert row["conversation_right"][0] == {"role": "user", "content": PROMPT}
    # the reveal names the side the database recorded
    left_name = f"adapter from run {RUN_ID}" if row["model_left"] == RUN_ID else "base model ("
    assert text.index(left_name) < text.index("Model B"), json.dumps(row)[:300]
