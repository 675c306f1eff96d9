"""Admin access: the real studio through gradio_client, plus the token and wrapper rules.

With an admin password configured, an anonymous API client is refused by every handler of
an admin tab (here: the Persona tab's endpoints, and a stub "Train" handler that would start a
job) while public handlers (the Arena's) answer; after `/admin_login` the same client works.
"""

from __future__ import annotations

import types

import gradio as gr
import pytest
from gradio_client import Client

from pipeline.settings import Settings
from studio import app as studio_app
from studio.access import COOKIE, AccessControl
from studio.context import StudioContext

from .conftest import REPO, launched


def _run_async(coro):
    """asyncio.run in a thread of its own: an earlier test (Playwright's sync API, Gradio) may
    leave an event loop running in the main thread, where asyncio.run refuses to start."""
    import asyncio
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


PASSWORD = "correct horse battery staple"


def _stub_tab(label: str, calls: list):
    """A tab module whose button handler records that it ran (stands in for 'start training')."""
    def create_tab(ctx):
        box = gr.Textbox(label=f"{label} input")
        out = gr.Textbox(label=f"{label} output")

        def run(text, request: gr.Request):
            calls.append((label, text, request.session_hash is not None))
            return f"{label} ran {text}"

        def stream(text):
            for i in range(2):
                calls.append((label, f"stream{i}", True))
                yield f"{label} step {i}"

        gr.Button(f"{label} go").click(run, inputs=[box], outputs=[out], api_name=f"{label.lower()}_start")
        gr.Button(f"{label} stream").click(stream, inputs=[box], outputs=[out], api_name=f"{label.lower()}_stream")
    return types.SimpleNamespace(create_tab=create_tab)


@pytest.fixture()
def studio(tmp_path, monkeypatch):
    """The real build_app, with stub Train and Arena tabs, served in-process; yields (url, calls)."""
    import shutil

    shutil.copytree(REPO / "data", tmp_path / "root" / "data")
    settings = Settings.from_env(env={"TASKMASTER_ADMIN_PASSWORD": PASSWORD}, root=tmp_path / "root",
                                 work_dir=tmp_path / "work", cache_dir=REPO / ".cache")
    calls: list = []
    tabs = [(label, _stub_tab(label, calls) if label in ("Train", "Arena") else module)
            for label, module in studio_app.TABS]
    monkeypatch.setattr(studio_app, "TABS", tabs)
    with launched(studio_app.build_app(settings), show_error=False) as url:
        yield url, calls


def test_anonymous_client_is_refused_by_admin_handlers_and_served_by_the_arena(studio):
    url, calls = studio
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="Admin login required"):
        client.predict("x", api_name="/train_start")
    with pytest.raises(Exception, match="Admin login required"):
        client.predict("x", api_name="/train_stream")
    with pytest.raises(Exception, match="Admin login required"):
        client.predict("taskmaster", api_name="/persona_open")
    assert not [c for c in calls if c[0] == "Train"], "a refused handler must not run at all"
    # The Arena is public.
    assert client.predict("vote", api_name="/arena_start") == "Arena ran vote"
    # A wrong password is refused with a message saying what to check.
    with pytest.raises(Exception, match="Wrong admin password"):
        client.predict("nope", api_name="/admin_login")
    with pytest.raises(Exception, match="Admin login required"):
        client.predict("x", api_name="/train_start")


def test_login_through_the_api_unlocks_this_client_only(studio):
    url, calls = studio
    admin = Client(url, verbose=False)
    result = admin.predict(PASSWORD, api_name="/admin_login")
    token = result[0]
    assert token and PASSWORD not in str(result), "the login returns a signed token, never the password"
    assert admin.predict("x", api_name="/train_start") == "Train ran x"
    assert ("Train", "x", True) in calls, "gr.Request still reaches a wrapped handler"
    assert admin.predict("x", api_name="/train_stream") == "Train step 1"
    opened = admin.predict("taskmaster", api_name="/persona_open")
    assert "name: taskmaster" in opened[1]
    # Another (anonymous) client is still refused.
    with pytest.raises(Exception, match="Admin login required"):
        Client(url, verbose=False).predict("y", api_name="/train_start")
    # The cookie token works for a client that carries it (a browser after a refresh).
    with_cookie = Client(url, verbose=False, headers={"Cookie": f"{COOKIE}={token}"})
    assert with_cookie.predict("z", api_name="/train_start") == "Train ran z"
    forged = Client(url, verbose=False, headers={"Cookie": f"{COOKIE}=9999999999.{'0' * 64}"})
    with pytest.raises(Exception, match="Admin login required"):
        forged.predict("z", api_name="/train_start")


def test_the_page_config_hides_admin_tabs_and_holds_no_secret(studio):
    import urllib.request

    url, _ = studio
    config = urllib.request.urlopen(f"{url}/config", timeout=10).read().decode()
    assert PASSWORD not in config
    assert "name: taskmaster" not in config, "persona content must be loaded by a protected handler, not baked in"


def test_tokens_are_signed_expire_and_die_with_the_process():
    s = Settings.from_env(env={"TASKMASTER_ADMIN_PASSWORD": PASSWORD})
    a, b = AccessControl(s), AccessControl(s)
    tok = a.make_token(now=1000.0)
    assert a.verify_token(tok, now=1000.0 + 60)
    assert not a.verify_token(tok, now=1000.0 + 13 * 3600), "expired after the TTL"
    assert not b.verify_token(tok, now=1000.0 + 60), "another studio process has another key"
    expires, sig = tok.split(".")
    assert not a.verify_token(f"{int(expires) + 10**6}.{sig}", now=1000.0), "the expiry is signed"
    assert not a.verify_token("", now=1000.0) and not a.verify_token("garbage", now=1000.0)


def test_open_locally_and_closed_on_a_space_without_password(tmp_path):
    local = AccessControl(Settings.from_env(env={}))
    assert not local.restricted and local.is_admin(None)
    space = AccessControl(Settings.from_env(env={"SPACE_ID": "me/studio"}))
    assert space.restricted and not space.can_login and not space.is_admin(None)
    with pytest.raises(gr.Error, match="no TASKMASTER_ADMIN_PASSWORD"):
        import asyncio
        _run_async(space.login("anything", None))


def test_repeated_wrong_passwords_slow_the_address_down_but_the_right_one_still_works():
    import asyncio
    import time

    ac = AccessControl(Settings.from_env(env={"TASKMASTER_ADMIN_PASSWORD": PASSWORD}), slow_s=0.1)
    for _ in range(5):
        with pytest.raises(gr.Error, match="Wrong admin password"):
            _run_async(ac.login("wrong", None))
    t0 = time.monotonic()
    assert _run_async(ac.login(PASSWORD, None))
    assert time.monotonic() - t0 >= 0.09


def test_build_app_protects_every_admin_tab_handler_and_no_arena_handler(tmp_path):
    settings = Settings.from_env(env={"TASKMASTER_ADMIN_PASSWORD": PASSWORD}, work_dir=tmp_path)
    ctx = StudioContext(settings)
    demo = studio_app.build_app(settings, ctx)
    protected = {bf.api_name for bf in demo.fns.values() if getattr(bf.fn, "__taskmaster_protected__", False)}
    open_ = {bf.api_name for bf in demo.fns.values() if bf.fn is not None
             and not getattr(bf.fn, "__taskmaster_protected__", False)}
    assert {"persona_open", "persona_save", "persona_create", "persona_load", "jobs_list"} <= protected
    assert {"admin_login", "admin_status", "admin_logout"} <= open_
    assert not any(name and name.startswith("persona") for name in open_)


def test_logout_ends_the_session_and_revokes_the_cookie(studio):
    url, _ = studio
    admin = Client(url, verbose=False)
    token = admin.predict(PASSWORD, api_name="/admin_login")[0]
    browser_like = Client(url, verbose=False, headers={"Cookie": f"{COOKIE}={token}"})
    assert browser_like.predict("a", api_name="/train_start") == "Train ran a"
    browser_like.predict(api_name="/admin_logout")
    with pytest.raises(Exception, match="Admin login required"):
        browser_like.predict("b", api_name="/train_start")
    admin.predict(api_name="/admin_logout")
    with pytest.raises(Exception, match="Admin login required"):
        admin.predict("c", api_name="/train_start")
