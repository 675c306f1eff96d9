"""Shared fixtures for the browser tests: the real studio in a subprocess, driven by Chromium.

    def test_something(studio_server, page):
        server = studio_server()                       # open studio, tiny model, temp work dir
        admin = studio_server(admin_password="s3cret")  # a second, restricted studio
        open_studio(page, server.url)
        open_tab(page, "Train")
        client = server.client()                       # gradio_client.Client on the same app

* `studio_server(**overrides)` launches `python app.py` on a free port with
  TASKMASTER_WORK_DIR in a temp folder, TASKMASTER_BASE_MODEL = the tiny random Llama
  (seconds to train) and, optionally, TASKMASTER_ADMIN_PASSWORD. The shipped `data/` is
  copied into a temp TASKMASTER_ROOT so a test that edits a persona or a dataset never
  touches the repository. Servers are shared across the session per set of overrides
  (starting one costs ~10 s of CPU) and stopped at the end of the session.
* `browser` is one Chromium for the session; `page` a fresh context + page per test
  (so cookies/logins never leak between tests), with a screenshot and the server log
  attached to the failure message when a test fails.
* Nothing is skipped silently: without /usr/bin/chromium the tests FAIL saying `make browser`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..conftest import REPO

CHROMIUM = Path(os.environ.get("TASKMASTER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
START_TIMEOUT_S = 600  # import torch + transformers + gradio on 2 busy (loaded CI) cores can take minutes
TAB_LABELS = ("Persona", "Data", "Train", "Evaluate", "Arena", "Publish")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class StudioServer:
    """One running studio (`python app.py`) and where its files are."""

    url: str
    port: int
    root: Path        # TASKMASTER_ROOT: a copy of the shipped data/
    work_dir: Path    # TASKMASTER_WORK_DIR: runs/, state/ (jobs, databases)
    env: dict
    proc: subprocess.Popen
    log_path: Path
    admin_password: str | None = None
    _clients: list = field(default_factory=list)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def client(self, **kwargs):
        """A gradio_client.Client on this studio (anonymous unless you log in through the API)."""
        from gradio_client import Client

        c = Client(self.url, verbose=False, **kwargs)
        self._clients.append(c)
        return c

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        for c in self._clients:
            try:
                c.close()
            except Exception:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _wait_ready(server: StudioServer, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not server.alive():
            raise RuntimeError(f"the studio exited with code {server.proc.returncode} before serving:\n"
                               f"{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/config", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the studio did not answer on {server.url} within {timeout:.0f} s:\n{server.log_tail()}")


def launch_studio(base_dir: Path, *, base_model: str | None, admin_password: str | None = None,
                  extra_env: dict | None = None, copy_data: bool = True) -> StudioServer:
    """Start `python app.py` with an isolated root/work dir; return once it serves /config."""
    base_dir.mkdir(parents=True, exist_ok=True)
    root = base_dir / "root"
    if copy_data:
        shutil.copytree(REPO / "data", root / "data", dirs_exist_ok=True)
    else:
        root = REPO
    work = base_dir / "work"
    work.mkdir(exist_ok=True)
    port = free_port()
    env = dict(os.environ)
    for var in ("TASKMASTER_ADMIN_PASSWORD", "SPACE_ID", "OPENAI_API_KEY", "OPENAI_BASE_URL", "HF_TOKEN",
                "TASKMASTER_JUDGE_API_KEY", "TASKMASTER_JUDGE_BASE_URL"):
        env.pop(var, None)
    env.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1",
               TASKMASTER_ROOT=str(root), TASKMASTER_WORK_DIR=str(work),
               TASKMASTER_CACHE_DIR=str(REPO / ".cache"))
    if base_model:
        env["TASKMASTER_BASE_MODEL"] = str(base_model)
    if admin_password:
        env["TASKMASTER_ADMIN_PASSWORD"] = admin_password
    env.update(extra_env or {})
    log_path = base_dir / "studio.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    server = StudioServer(url=f"http://127.0.0.1:{port}", port=port, root=root, work_dir=work, env=env, proc=proc,
                          log_path=log_path, admin_password=admin_password)
    try:
        _wait_ready(server, START_TIMEOUT_S)
    except Exception:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def studio_server(tmp_path_factory, tiny_model_dir):
    """Factory: `studio_server(admin_password=None, base_model=<tiny>, env=None, fresh=False)`.

    Same arguments -> the same running server (unless `fresh=True`), so several tests share
    one launch. Every server is stopped at the end of the session."""
    servers: dict[tuple, StudioServer] = {}
    extra: list[StudioServer] = []

    def make(admin_password: str | None = None, base_model: str | Path | None = None,
             env: dict | None = None, fresh: bool = False) -> StudioServer:
        model = str(base_model or tiny_model_dir)
        key = (admin_password, model, tuple(sorted((env or {}).items())))
        if not fresh and key in servers and servers[key].alive():
            return servers[key]
        server = launch_studio(tmp_path_factory.mktemp("studio"), base_model=model,
                               admin_password=admin_password, extra_env=env)
        if fresh:
            extra.append(server)
        else:
            servers[key] = server
        return server

    yield make
    for s in [*servers.values(), *extra]:
        s.stop()


@pytest.fixture(scope="session")
def browser():
    """One headless Debian Chromium for the whole session (Playwright's own download fails offline)."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"{CHROMIUM} not found: the browser tests need Debian's Chromium; run `make browser` "
                    f"(or set TASKMASTER_CHROMIUM to a Chromium binary)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def page(browser, request, tmp_path_factory):
    """A fresh browser context (no cookies) and page; on failure a full-page screenshot and the
    page errors are saved under pytest's temp folder (`browser-artifacts/`, path printed)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    pg = context.new_page()
    console: list[str] = []
    pg.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
    yield pg
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        out = Path(os.environ.get("TASKMASTER_TEST_ARTIFACTS") or tmp_path_factory.getbasetemp() / "browser-artifacts")
        out.mkdir(parents=True, exist_ok=True)
        print(f"browser artifacts of {request.node.name}: {out}")
        try:
            pg.screenshot(path=str(out / f"{request.node.name}.png"), full_page=True)
        except Exception:
            pass
        if console:
            (out / f"{request.node.name}.console.txt").write_text("\n".join(console))
    context.close()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


# ---- page helpers ------------------------------------------------------------------------

def open_studio(page, url: str, timeout_ms: int = 60_000) -> None:
    """Load the studio and wait until Gradio has rendered the tab bar."""
    page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
    page.get_by_role("tab").first.wait_for(state="visible", timeout=timeout_ms)


def tab_button(page, label: str):
    return page.get_by_role("tab", name=label, exact=True)


def visible_tabs(page) -> list[str]:
    """Labels of the tab buttons a visitor can see (hidden tabs are not rendered as buttons)."""
    return [t.strip() for t in page.get_by_role("tab").all_inner_texts() if t.strip()]


def open_tab(page, label: str) -> None:
    """Click a tab and wait until its panel is shown."""
    btn = tab_button(page, label)
    btn.click()
    page.wait_for_function(
        """(label) => [...document.querySelectorAll('[role=tab]')]
            .some(b => b.textContent.trim() === label && b.getAttribute('aria-selected') === 'true')""",
        arg=label)


def login(page, password: str) -> None:
    """Log in as admin through the studio's login form (see studio/access.py); the page reloads
    with the login cookie set, and the status line then says so."""
    field = page.locator("#admin-password input, #admin-password textarea").first
    if not field.is_visible():
        page.locator("#admin-panel").get_by_text("Admin login").first.click()
    field.fill(password)
    page.locator("#admin-login-button").click()
    page.get_by_text("Logged in as admin").first.wait_for(timeout=30_000)


def train_adapter(server: StudioServer, run_name: str = "fixture-run", preset: str = "smoke",
                  timeout: float = 300) -> Path:
    """Train a tiny adapter into the server's runs/ with the real CLI (seconds on the tiny model),
    so that the Arena has two contenders. Returns the run folder; reuses it when already trained."""
    out = server.work_dir / "runs" / run_name
    if (out / "adapter" / "adapter_config.json").is_file():
        return out
    r = subprocess.run([sys.executable, "-m", "pipeline", "train", "--preset", preset, "--base",
                        server.env["TASKMASTER_BASE_MODEL"], "--out", str(out), "--quiet"],
                       cwd=REPO, env=server.env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"training the fixture adapter failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return out
