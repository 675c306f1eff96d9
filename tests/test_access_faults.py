"""Access under attack (issue 18): the lockout cannot be dodged by rotating X-Forwarded-For
from loopback, the admin is slowed, never refused, by someone else's guessing, a revoked
cookie ends the sessions that logged in with it, malformed cookies are refused cleanly, and
anonymous uploads are refused on a protected studio (size-capped everywhere)."""

from __future__ import annotations

import asyncio
import time
import types
import urllib.error
import urllib.request

import gradio as gr
import pytest
from gradio_client import Client

from pipeline.settings import Endpoint, Settings
from studio.access import COOKIE, AccessControl

from .test_access import PASSWORD, studio  # noqa: F401  (the real served studio fixture)


def _run_async(coro):
    """asyncio.run in a thread of its own: an earlier test (Playwright's sync API, Gradio) may
    leave an event loop running in the main thread, where asyncio.run refuses to start."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()



def _req(host="127.0.0.1", headers=None, cookies=None, sid="s1"):
    """A request as AccessControl sees one (gr.Request's attributes)."""
    raw = types.SimpleNamespace(client=types.SimpleNamespace(host=host), headers=dict(headers or {}),
                                cookies=dict(cookies or {}))
    return types.SimpleNamespace(request=raw, headers=raw.headers, session_hash=sid)


def _ac(**env):
    env = {"TASKMASTER_ADMIN_PASSWORD": PASSWORD, **env}
    return AccessControl(Settings.from_env(env=env), slow_s=0.05)


def _login(ac, pw, req):
    return _run_async(ac.login(pw, req))


def test_rotating_x_forwarded_for_from_loopback_does_not_reset_the_lockout():
    ac = _ac()
    keys = {ac.client_key(_req(headers={"x-forwarded-for": f"10.0.0.{i}"})) for i in range(25)}
    assert len(keys) == 1, "an untrusted X-Forwarded-For must not make a new address per guess"
    for i in range(5):
        with pytest.raises(gr.Error, match="Wrong admin password"):
            _login(ac, "guess", _req(headers={"x-forwarded-for": f"10.0.0.{i}"}))
    t0 = time.monotonic()
    for i in range(5, 9):
        with pytest.raises(gr.Error, match="Wrong admin password"):
            _login(ac, "guess", _req(headers={"x-forwarded-for": f"10.0.0.{i}"}))
    assert time.monotonic() - t0 >= 4 * 0.05 * 0.9, "guesses over the cap are slowed down"


def test_a_configured_trusted_header_keys_on_what_the_proxy_saw():
    ac = _ac(TASKMASTER_TRUSTED_PROXY_HEADER="x-forwarded-for")
    # The proxy appends the address it saw: the client-supplied part on the left is ignored.
    a = ac.client_key(_req(host="10.16.3.80", headers={"x-forwarded-for": "1.2.3.4, 203.0.113.7"}))
    b = ac.client_key(_req(host="10.16.3.80", headers={"x-forwarded-for": "5.6.7.8, 203.0.113.7"}))
    c = ac.client_key(_req(host="10.16.3.80", headers={"x-forwarded-for": "198.51.100.2"}))
    assert a == b == "203.0.113.7" and c == "198.51.100.2"
    assert Settings.from_env(env={"SPACE_ID": "me/s"}).trusted_proxy_header == "x-forwarded-for", \
        "on a Space the platform's proxy header is trusted by default"
    assert Settings.from_env(env={}).trusted_proxy_header is None


def test_the_guesser_is_slowed_and_the_admin_still_gets_in():
    ac = _ac(TASKMASTER_TRUSTED_PROXY_HEADER="x-forwarded-for")
    guesser, admin = _req(headers={"x-forwarded-for": "203.0.113.9"}), _req(headers={"x-forwarded-for": "198.51.100.1"}, sid="adm")
    for _ in range(8):
        with pytest.raises(gr.Error, match="Wrong admin password"):
            _login(ac, "guess", guesser)
    # The right password from the guesser's own address is accepted (after the slow-down), never refused.
    assert _login(ac, PASSWORD, _req(headers={"x-forwarded-for": "203.0.113.9"}, sid="same-net"))
    # From another address: no wait at all.
    t0 = time.monotonic()
    assert _login(ac, PASSWORD, admin)
    assert time.monotonic() - t0 < 0.05


def test_a_global_cap_slows_guesses_spread_over_many_addresses():
    ac = _ac(TASKMASTER_TRUSTED_PROXY_HEADER="x-real-ip")
    ac.global_max_failures = 10
    for i in range(10):
        with pytest.raises(gr.Error):
            _login(ac, "guess", _req(headers={"x-real-ip": f"203.0.113.{i}"}))
    t0 = time.monotonic()
    for i in range(10, 14):
        with pytest.raises(gr.Error, match="Wrong admin password"):
            _login(ac, "guess", _req(headers={"x-real-ip": f"203.0.113.{i}"}))
    assert time.monotonic() - t0 >= 4 * 0.05 * 0.9, "over the global cap every check waits its turn"
    assert ac.failed_logins_last_minute() == 14


def test_a_flood_cannot_queue_the_line_forever():
    ac = _ac()
    ac.max_wait_s = 0.2
    async def flood():
        return await asyncio.gather(*[ac.login("guess", _req()) for _ in range(30)], return_exceptions=True)
    results = _run_async(flood())
    msgs = [str(getattr(r, "message", r)) for r in results]
    assert any("Too many login attempts" in m for m in msgs), "beyond the longest wait, attempts are turned away unchecked"
    assert sum("Wrong admin password" in m for m in msgs) <= 5 + 0.2 / 0.05 + 1


def test_a_revoked_cookie_ends_the_session_that_logged_in_with_it():
    ac = _ac()
    session = _req(sid="tab-1")
    token = _login(ac, PASSWORD, session)
    assert ac.is_admin(session)
    ac.logout(_req(sid="other-tab", cookies={COOKIE: token}))  # logged out in another tab
    assert not ac.is_admin(session), "the session that got this token is no longer admin"


@pytest.mark.parametrize("cookie", ["9" * 5000 + "." + "0" * 64, "１２３.abc", "²³.00", "12.\u00e9\u00e9",
                                    "12." + "\udcff" * 64, "-1.abc", "." * 10, "1" * 20 + "." + "f" * 64])
def test_malformed_cookies_are_refused_without_an_exception(cookie):
    ac = _ac()
    assert ac.verify_token(cookie) is False
    assert ac.is_admin(_req(cookies={COOKIE: cookie})) is False


def _call_raw(url: str, api: str, data: list, cookie: bytes) -> tuple[int, str]:
    """Gradio's HTTP call API with a raw (possibly non-ASCII) Cookie header: (status, SSE text)."""
    import http.client
    import json
    from urllib.parse import urlsplit

    host = urlsplit(url).netloc
    conn = http.client.HTTPConnection(host, timeout=30)
    body = json.dumps({"data": data}).encode()
    conn.putrequest("POST", f"/gradio_api/call/{api}")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(len(body)))
    conn.putheader("Cookie", b"tm_admin=" + cookie)
    conn.endheaders(body)
    resp = conn.getresponse()
    text = resp.read().decode("utf-8", "replace")
    if resp.status != 200:
        return resp.status, text
    event_id = json.loads(text)["event_id"]
    conn.putrequest("GET", f"/gradio_api/call/{api}/{event_id}")
    conn.putheader("Cookie", b"tm_admin=" + cookie)
    conn.endheaders()
    resp = conn.getresponse()
    return resp.status, resp.read().decode("utf-8", "replace")


def test_malformed_cookie_over_http_is_a_refusal_not_a_500(studio):  # noqa: F811
    url, calls = studio
    for cookie in [b"9" * 5000 + b"." + b"0" * 64, "12.\u00e9t\u00e9".encode(), b"\xff\xfe." + b"a" * 64]:
        status, text = _call_raw(url, "train_start", ["x"], cookie)
        assert status == 200 and "Admin login required" in text, (status, text[:300])
        status, text = _call_raw(url, "admin_status", [], cookie)
        assert status == 200 and "Something went wrong" not in text, (status, text[:300])
    assert not [c for c in calls if c[0] == "Train"]


def test_endpoint_descriptions_redact_credentials():
    e = Endpoint("http://user:pass@host:8000/v1?api-key=SEKRET&model=x&token=T0K", "m", None)
    d = e.describe()
    assert "pass" not in d and "SEKRET" not in d and "T0K" not in d and "user" not in d
    assert "host:8000/v1" in d and "model=x" in d
    s = Settings.from_env(env={"OPENAI_BASE_URL": "http://u:pw@h/v1?key=abc123"})
    assert "pw" not in str(s.public_summary()) and "abc123" not in str(s.public_summary())


def test_the_page_config_and_header_never_show_url_credentials(tmp_path):
    from studio import app as studio_app

    from .conftest import REPO
    settings = Settings.from_env(env={"OPENAI_BASE_URL": "http://alice:hunter2@llm.local/v1?api-key=QQSECRET"},
                                 work_dir=tmp_path, cache_dir=REPO / ".cache")
    demo = studio_app.build_app(settings)
    cfg = str(demo.get_config_file())
    assert "hunter2" not in cfg and "QQSECRET" not in cfg and "alice" not in cfg
    assert "llm.local/v1" in cfg


def _upload(url, size, cookie=None):
    boundary = "xxBOUNDARYxx"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\n").encode() + b"a" * size + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{url}/gradio_api/upload", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    if cookie:
        req.add_header("Cookie", f"{COOKIE}={cookie}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, ConnectionError) as e:
        # the server answered (403/413) and closed before the rest of a big body was sent
        return "closed" if "reset" in str(e).lower() or "broken pipe" in str(e).lower() else str(e)


@pytest.fixture()
def protected(tmp_path, launched_studio):
    from .conftest import REPO

    settings = Settings.from_env(env={"TASKMASTER_ADMIN_PASSWORD": PASSWORD}, work_dir=tmp_path, cache_dir=REPO / ".cache")
    with launched_studio(settings) as url:
        yield url


def test_uploads_need_an_admin_on_a_protected_studio_and_are_size_capped(protected):
    url = protected
    assert _upload(url, 1000) == 403, "anonymous upload refused on a protected studio"
    client = Client(url, verbose=False)
    token = client.predict(PASSWORD, api_name="/admin_login")[0]
    assert _upload(url, 1000, cookie=token) == 200
    assert _upload(url, 11 * 1024 * 1024, cookie=token) == 413, "bigger than the cap"
