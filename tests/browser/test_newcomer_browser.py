"""Issue 19 in a real browser: what only a browser shows.

Bug 4: the persona editor was filled by a value set from outside after it had mounted, which
CodeMirror records as an undoable edit; a second Ctrl+Z then blanked persona.yaml. The editor is
now mounted with its text, so undo stops at the file as loaded.
"""

from __future__ import annotations

from .conftest import open_studio, open_tab


def test_persona_undo_never_blanks_the_file(studio_server, page):
    server = studio_server()
    open_studio(page, server.url)
    open_tab(page, "Persona")
    editor = page.locator("#persona-spec .cm-content")
    editor.wait_for(timeout=60_000)
    page.wait_for_function("document.querySelector('#persona-spec .cm-content')?.innerText.includes('name: taskmaster')",
                           timeout=60_000)
    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.type("\n# a note")
    assert "# a note" in editor.inner_text()
    for _ in range(4):  # more undos than edits
        page.keyboard.press("Control+z")
    assert "# a note" not in editor.inner_text()
    page.keyboard.press("Control+Home")  # the editor renders only the lines in view
    assert "name: taskmaster" in editor.inner_text(), "undo went past the file as loaded"
    page.keyboard.press("Control+End")
    page.keyboard.press("Control+Shift+z")  # redo brings the edit back
    assert "# a note" in editor.inner_text()


def test_data_overview_redraws_when_a_background_stage_ends(studio_server, page):
    """Bug 3, for the background stages: a Balance job (it generates, so it runs as a job) ends and
    the overview and charts show its output without a Refresh click. The generator is the
    project's OpenAI-compatible server on 127.0.0.1."""
    from pipeline.testing.openai_server import OpenAIServer

    with OpenAIServer() as srv:
        server = studio_server(env={"OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "sk-test"}, fresh=True)
        open_studio(page, server.url)
        open_tab(page, "Data")
        summary = page.locator("#data-summary")
        page.wait_for_function("document.querySelector('#data-summary')?.innerText.includes('Candidate set')",
                               timeout=120_000)
        assert "stage outputs: none yet" in summary.inner_text()
        open_tab(page, "Balance")
        page.locator("#data-target input").fill("1")
        page.locator("#data-balance").click()
        page.wait_for_function("document.querySelector('#data-job')?.innerText.match(/finished|failed|stopped/)",
                               timeout=300_000)
        assert "finished" in page.locator("#data-job").inner_text(), page.locator("#data-log textarea").input_value()
        # No Refresh click: the tick that saw the job end redraws the summary (and the charts with it).
        page.wait_for_function(
            "document.querySelector('#data-summary')?.innerText.match(/stage outputs: [^·]*balanced/)",
            timeout=60_000)
        assert "balanced.jsonl" in summary.inner_text(), summary.inner_text()


def test_validation_fix_column_fits_at_1280(studio_server, page):
    """The Publish tab's validation findings at 1280 px: the table does not scroll sideways and
    the "fix" column ends inside the window (a package missing most files: long problems, long fixes)."""
    server = studio_server()
    run = server.work_dir / "runs" / "fix-column"
    (run / "package").mkdir(parents=True)
    (run / "package" / "README.md").write_text("# a package missing almost everything\n")
    page.set_viewport_size({"width": 1280, "height": 900})
    open_studio(page, server.url)
    open_tab(page, "Publish")
    box = page.locator("#publish-run input")
    box.fill(str(run))
    box.press("Enter")
    page.locator("#publish-validate").click()
    page.wait_for_function("document.querySelector('#publish-verdict')?.innerText.includes('Validation')",
                           timeout=120_000)
    table = page.locator("#publish-findings")
    rows = table.locator(".virtual-body [role=row]")  # Gradio 6 draws the body rows as divs
    rows.nth(2).wait_for(timeout=30_000)  # several findings drawn
    fix = table.get_by_role("columnheader").filter(has_text="fix").first
    edge = fix.evaluate("el => el.getBoundingClientRect().right")
    assert edge <= 1280, f"the fix column ends at {edge:.0f} px, past the 1280 px window"
    widths = table.evaluate("""el => [...el.querySelectorAll('*')]
        .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX.match(/auto|scroll/))
        .map(e => [e.className, e.scrollWidth, e.clientWidth])""")
    assert widths == [], f"the findings table scrolls sideways: {widths}"
    cells = rows.first.locator("[role=gridcell]").all()
    assert len(cells) == 4, [c.inner_text() for c in cells]
    last = cells[-1].evaluate("el => el.getBoundingClientRect().right")
    assert last <= 1280 and "" != cells[-1].inner_text().strip(), (last, cells[-1].inner_text())
