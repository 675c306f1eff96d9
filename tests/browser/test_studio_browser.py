"""The studio in a real browser (Debian's Chromium through Playwright), on the tiny model.

1. every tab opens and shows its help and its own controls; the Persona tab validates an edit;
2. a short training run starts from the Train tab, its loss plot updates, and a page refresh
   re-attaches to the running job;
3. with an admin password: an anonymous visitor sees only the Arena, the Gradio API refuses an
   anonymous call to start training (or a push), and logging in through the page shows every tab.

The Arena battle in a browser is tests/browser/test_arena_browser.py (the Arena's own tests).
"""

from __future__ import annotations

import re

import pytest

from .conftest import TAB_LABELS, login, open_studio, open_tab, visible_tabs

PASSWORD = "browser-test-password"


def _progress(page) -> str:
    return page.locator("#train-progress").inner_text()


def _step(text: str) -> int:
    m = re.search(r"step (\d+)/", text)
    return int(m.group(1)) if m else 0


def _api_names(client) -> set[str]:
    info = client.view_api(print_info=False, return_format="dict")
    return {name.lstrip("/") for name in info["named_endpoints"]}


def test_walk_every_tab(studio_server, page):
    server = studio_server()
    open_studio(page, server.url)
    assert visible_tabs(page) == list(TAB_LABELS)
    header = page.locator("#studio-header")
    assert "Base model" in header.inner_text() and "Device" in header.inner_text()
    assert "No API key" in header.inner_text(), "the header says what is not configured"
    for label in TAB_LABELS:
        open_tab(page, label)
        help_line = page.locator(f"#help-{label.lower()}")
        help_line.wait_for(state="visible")
        assert help_line.inner_text().strip(), f"{label} has no help line"
    # Persona: the editor is filled on load, the preview is rendered, a broken edit is named.
    open_tab(page, "Persona")
    page.locator("#persona-preview").get_by_text("TaskMaster Persona Specification").wait_for()
    editor = page.locator("#persona-spec .cm-content")
    assert "name: taskmaster" in editor.inner_text()
    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.type("\ntrait_typo: oops\n")
    page.locator("#persona-validate").click()
    toast = page.get_by_text(re.compile(r"trait_typo: unknown field"))
    toast.first.wait_for(timeout=30_000)
    page.locator("#persona-reload").click()
    # The editor remounts on reload (undo stops at the file), so it is briefly absent: wait for the new one.
    page.wait_for_function("() => { const e = document.querySelector('#persona-spec .cm-content');"
                           " return e !== null && !e.innerText.includes('trait_typo'); }")


SHOWN_TABS_AT_LEAST = "(n) => [...document.querySelectorAll('[role=tab]')].filter(b => b.innerText.trim()).length >= n"


def test_admin_password_shows_only_the_arena_and_the_api_refuses(studio_server, page):
    server = studio_server(admin_password=PASSWORD)
    open_studio(page, server.url)
    assert visible_tabs(page) == ["Arena"], "an anonymous visitor sees only the Arena"
    assert PASSWORD not in page.content()
    client = server.client()
    assert "train_start" in _api_names(client)
    form = ["smoke", server.env["TASKMASTER_BASE_MODEL"], "taskmaster", "", 8, 16, 0.0, ["q_proj", "v_proj"], 1, 2, 1,
            2e-4, 512, 0, 5, "grouped", 0]
    with pytest.raises(Exception, match="Admin login required"):
        client.predict(*form, api_name="/train_start")
    with pytest.raises(Exception, match="Admin login required"):
        client.predict("runs/x", "", "someone/repo", "", True, False, api_name="/publish_push")
    jobs_dir = server.work_dir / "state" / "jobs"
    assert not jobs_dir.exists() or not any(jobs_dir.iterdir()), "a refused call must not start a job"
    # Logging in through the page shows every tab, and survives a refresh (signed cookie).
    # The login shows the tabs, sets the cookie and reloads the page (studio/access.py); check the
    # reloaded page, whose load handler shows the tabs again (hidden tabs keep an empty button,
    # hence the text check).
    with page.expect_navigation(timeout=30_000):
        login(page, PASSWORD)
    page.get_by_text("Logged in as admin").first.wait_for(timeout=30_000)
    page.wait_for_function(SHOWN_TABS_AT_LEAST, arg=len(TAB_LABELS), timeout=30_000)
    assert visible_tabs(page) == list(TAB_LABELS)
    page.reload()
    open_studio(page, server.url)
    page.get_by_text("Logged in as admin").first.wait_for()
    page.wait_for_function(SHOWN_TABS_AT_LEAST, arg=len(TAB_LABELS), timeout=30_000)
    assert visible_tabs(page) == list(TAB_LABELS)


def test_train_a_short_run_and_watch_the_loss_plot_update(studio_server, page):
    server = studio_server()
    open_studio(page, server.url)
    open_tab(page, "Train")
    steps = page.locator("#train-maxsteps input")
    steps.fill("12")
    steps.press("Tab")
    page.locator("#train-plan").get_by_text(re.compile("MB|parameters", re.I)).first.wait_for(timeout=60_000)
    page.locator("#train-start").click()
    # Running, with a first logged loss: the plot has data.
    page.wait_for_function("""() => /running: step [1-9]/.test(document.querySelector('#train-progress').innerText)
                              || /finished/.test(document.querySelector('#train-progress').innerText)""",
                           timeout=180_000)
    first_step = _step(_progress(page))
    plot = page.locator("#train-loss")
    before = plot.screenshot()
    # A page refresh re-attaches to the running job (the job lives in files, not in the page).
    page.reload()
    open_studio(page, server.url)
    open_tab(page, "Train")
    page.wait_for_function("(n) => { const m = /step (\\d+)\\//.exec(document.querySelector('#train-progress').innerText);"
                           " return m && +m[1] > n; }", arg=first_step, timeout=180_000)
    page.locator("#train-progress b").get_by_text("finished").wait_for(timeout=240_000)
    assert _step(_progress(page)) == 12
    page.wait_for_timeout(2500)  # one more poll so the plot holds the last points
    after = plot.screenshot()
    assert before != after, "the loss plot did not change while training ran"
    assert "step 12/12" in _progress(page)
