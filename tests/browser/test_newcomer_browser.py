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
