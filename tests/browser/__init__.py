"""Browser tests: the real studio (`python app.py` in a subprocess) driven by Debian's Chromium.

Fixtures live in `tests/browser/conftest.py`: `studio_server` (a factory that launches the
studio with environment overrides), `browser` and `page` (Playwright on /usr/bin/chromium),
and helpers `open_studio(page, url)` / `open_tab(page, label)` / `visible_tabs(page)` /
`login(page, password)` / `train_adapter(server)` (a real tiny adapter in the server's runs/).
Screenshots for the README: `python -m tests.browser.screenshots --run runs/<id>`.
"""
