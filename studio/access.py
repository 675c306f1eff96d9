"""Admin access for a studio that may be public: everything but the Arena needs an admin login.

When is access restricted? `Settings.access_restricted`: an admin password is configured
(TASKMASTER_ADMIN_PASSWORD, a Space secret) or the studio runs on a Space (SPACE_ID). On a
Space without a password nobody can log in, so only the Arena is usable: a public Space
never exposes training, generation or a push by accident. Locally without a password,
everything is open and the login panel is not shown.

How it works (tab authors need to do nothing):

* `build_app` records which event handlers each tab registers while `create_tab(ctx)` runs;
  every handler of an admin tab (clicks, loads, timers, changes...) is wrapped by
  `AccessControl.protect_events`, so the check runs on the server for the page AND for any
  API client (gradio_client, curl): an anonymous call to the Train tab's start endpoint is
  refused with "Admin login required" before the tab's code runs.
* Who is an admin? A Gradio session (`request.session_hash`, one per page load or per
  gradio_client.Client) that logged in with the password, or a request carrying a valid
  `tm_admin` cookie: an HMAC-signed expiry time (never the password) that the login sets in
  the browser, so a page refresh keeps the login. The signing key is random per studio
  process (and mixed with the password), so restarting the studio or changing the password
  logs everyone out.
* In the page, admin tabs are hidden (`gr.Tab(visible=False)`) for anonymous visitors and
  shown after login. Hiding is cosmetic; the server-side check above is the protection.
  Handlers triggered by page load or timers fail silently for anonymous visitors (no error
  toast on the Arena page); anything else shows "Admin login required".
* API clients log in through the `/admin_login` endpoint:
  `client.predict("<password>", api_name="/admin_login")`.

For tab authors: put no private data in a component's initial value (the page config is
public); fill it from a `demo.load`/`.then` handler instead, which the wrapper protects. A
handler that wants an explicit check can call `ctx.access.require_admin()`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import inspect
import re
import secrets
import threading
import time
import types
from dataclasses import dataclass, field

import gradio as gr

from pipeline.settings import Settings

COOKIE = "tm_admin"
TOKEN_TTL_S = 12 * 3600          # a browser login lasts a working day
MAX_FAILURES = 5                  # wrong passwords per client address within the window ...
FAILURE_WINDOW_S = 60             # ... after which that address's checks are slowed down
GLOBAL_MAX_FAILURES = 30          # wrong passwords per window from everyone: then every check is slowed
SLOW_S = 2.0                      # over a cap, one password check per this many seconds (per line)
MAX_WAIT_S = 30.0                 # an attempt that would wait longer is turned away unchecked
SILENT_TRIGGERS = {"load", "tick", "change", "select", "then", "success", "focus", "blur"}
REFUSAL = "Admin login required: open the studio's Admin login panel (top of the page) and enter the admin password."
# A token is `<expiry, unix seconds>.<hex HMAC-SHA256>`: anything else is refused before parsing
# (a 5,000-digit expiry or non-ASCII bytes in a cookie must be a refusal, not an exception).
_TOKEN_RE = re.compile(r"\A([0-9]{1,12})\.([0-9a-f]{64})\Z")
# Headers through which a proxy says whom it forwards; uvicorn trusts X-Forwarded-For from
# loopback and rewrites the peer address with it, so when no trusted header is configured, a
# request carrying one of these is keyed as one shared "forwarded" client (rotating the header
# buys nothing).
_FORWARD_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


@dataclass
class AccessControl:
    """Who is an admin. The lockout punishes the guesser, not the admin: over a cap, password
    checks from that client (or from everyone, over the global cap) wait their turn, one per
    `slow_s`, and the right password is still accepted when its turn comes."""

    settings: Settings
    slow_s: float = SLOW_S
    max_failures: int = MAX_FAILURES
    global_max_failures: int = GLOBAL_MAX_FAILURES
    max_wait_s: float = MAX_WAIT_S
    _key: bytes = field(default=b"", repr=False)
    _sessions: dict = field(default_factory=dict, repr=False)  # session_hash -> the token its login issued
    _failures: dict = field(default_factory=dict, repr=False)  # client key -> failure times
    _next_slot: dict = field(default_factory=dict, repr=False)  # client key or "*" -> time of its next check
    _revoked: set = field(default_factory=set, repr=False)  # tokens of browsers that logged out
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self):
        pw = (self.settings.admin_password or "").encode()
        self._key = hashlib.sha256(secrets.token_bytes(32) + pw).digest()

    # ---- state ---------------------------------------------------------------------
    @property
    def restricted(self) -> bool:
        return self.settings.access_restricted

    @property
    def can_login(self) -> bool:
        """On a Space without a password nobody can log in (the Arena stays usable)."""
        return bool(self.settings.admin_password)

    def is_admin(self, request: gr.Request | None = None) -> bool:
        if not self.restricted:
            return True
        request = request if request is not None else _current_request()
        if request is None:
            return False
        sid = getattr(request, "session_hash", None)
        with self._lock:
            session_token = self._sessions.get(sid) if sid else None
        # A session is re-checked every time: its login's token may have been revoked (logout in
        # another tab) or have expired since.
        if session_token is not None:
            if self.verify_token(session_token):
                return True
            with self._lock:
                self._sessions.pop(sid, None)
        return self.verify_token(_cookies(request).get(COOKIE, ""))

    def require_admin(self, request: gr.Request | None = None, *, silent: bool = False) -> None:
        """Raise gr.Error unless this request comes from a logged-in admin (or access is open)."""
        if not self.is_admin(request):
            raise gr.Error(REFUSAL, visible=not silent, title="Admin only", print_exception=False)

    def client_key(self, request) -> str:
        """Whom the lockout counts: the last entry of the trusted proxy header when one is
        configured (what that proxy saw; entries to its left are whatever the client sent),
        else the TCP peer, or one shared key for requests that claim to be forwarded."""
        headers = _headers(request)
        trusted = (self.settings.trusted_proxy_header or "").lower()
        if trusted:
            value = headers.get(trusted, "")
            last = value.split(",")[-1].strip() if value else ""
            if last:
                return last[:64]
        if any(h in headers for h in _FORWARD_HEADERS if h != trusted):
            return "forwarded (untrusted header)"
        return _client_host(request)

    def failed_logins_last_minute(self) -> int:
        now = time.time()
        with self._lock:
            return sum(1 for times in self._failures.values() for t in times if now - t < FAILURE_WINDOW_S)

    # ---- tokens --------------------------------------------------------------------
    def make_token(self, now: float | None = None) -> str:
        expires = int((now or time.time()) + TOKEN_TTL_S)
        sig = hmac.new(self._key, f"admin|{expires}".encode(), hashlib.sha256).hexdigest()
        return f"{expires}.{sig}"

    def verify_token(self, token, now: float | None = None) -> bool:
        if not isinstance(token, str) or not self.can_login:
            return False
        m = _TOKEN_RE.match(token)
        if m is None:
            return False
        expires, sig = m.groups()
        if int(expires) < (now or time.time()):
            return False
        good = hmac.new(self._key, f"admin|{expires}".encode(), hashlib.sha256).hexdigest()
        with self._lock:
            if token in self._revoked:
                return False
        return hmac.compare_digest(good, sig)

    # ---- login / logout --------------------------------------------------------------
    def _wait_for_turn(self, who: str, now: float) -> float:
        """Seconds this attempt must wait before its password is checked (0 under the caps).
        Over a cap, checks from that line are spaced `slow_s` apart; the line is per client,
        or global ("*") when everyone together is over the global cap."""
        def recent(times):
            return [t for t in times if now - t < FAILURE_WINDOW_S]

        with self._lock:
            for key in list(self._failures):
                self._failures[key] = recent(self._failures[key])
                if not self._failures[key]:
                    del self._failures[key]
            total = sum(len(v) for v in self._failures.values())
            lines = []
            if len(self._failures.get(who, [])) >= self.max_failures:
                lines.append(who)
            if total >= self.global_max_failures:
                lines.append("*")
            if not lines:
                return 0.0
            start = max([now + self.slow_s] + [self._next_slot.get(line, now) for line in lines])
            if start - now > self.max_wait_s:
                raise gr.Error(f"Too many login attempts right now: try again in {int(self.max_wait_s)} s.",
                               print_exception=False)
            for line in lines:
                self._next_slot[line] = start + self.slow_s
            return start - now

    async def login(self, password: str, request: gr.Request | None) -> str:
        """Check the password; on success mark this session as admin and return a cookie token.
        Raises gr.Error saying what to do on failure (never which part was wrong). Async so a
        slowed-down attempt waits without holding a worker thread."""
        if not self.restricted:
            return ""
        if not self.can_login:
            raise gr.Error("Admin login is disabled: this Space has no TASKMASTER_ADMIN_PASSWORD secret. "
                           "Add one in the Space settings to use the admin tabs.", print_exception=False)
        who = self.client_key(request)
        wait = self._wait_for_turn(who, time.time())
        if wait > 0:
            await asyncio.sleep(wait)
        ok = hmac.compare_digest((password or "").encode("utf-8", "surrogatepass"),
                                 (self.settings.admin_password or "").encode())
        now = time.time()
        if not ok:
            with self._lock:
                self._failures.setdefault(who, []).append(now)
            raise gr.Error("Wrong admin password: check TASKMASTER_ADMIN_PASSWORD (or the Space secret) and retry.",
                           print_exception=False)
        token = self.make_token(now)
        sid = getattr(request, "session_hash", None) if request is not None else None
        with self._lock:
            if sid:
                self._sessions[sid] = token
        return token

    def logout(self, request: gr.Request | None) -> None:
        """End this session's login and revoke its cookie token (a copied cookie stops working,
        and so does every session that logged in with it)."""
        sid = getattr(request, "session_hash", None) if request is not None else None
        token = _cookies(request).get(COOKIE) if request is not None else None
        with self._lock:
            own = self._sessions.pop(sid, None) if sid else None
            for tok in (token, own):
                if tok:
                    self._revoked.add(tok)

    # ---- wrapping event handlers -----------------------------------------------------------
    def protect_fn(self, fn, *, silent: bool = False):
        """Return `fn` wrapped with the admin check, keeping its kind (sync/async, generator) and
        its signature (`functools.wraps` sets __wrapped__, which Gradio's argument inspection
        follows, so gr.Request / gr.Progress parameters still work). The request comes from
        Gradio's LocalContext, set around every event call."""
        check = functools.partial(self.require_admin, silent=silent)
        if inspect.isasyncgenfunction(fn):
            async def wrapped(*args, **kwargs):
                check()
                async for item in fn(*args, **kwargs):
                    yield item
        elif inspect.isgeneratorfunction(fn):
            def wrapped(*args, **kwargs):
                check()
                yield from fn(*args, **kwargs)
        elif inspect.iscoroutinefunction(fn):
            async def wrapped(*args, **kwargs):
                check()
                return await fn(*args, **kwargs)
        else:
            def wrapped(*args, **kwargs):
                check()
                return fn(*args, **kwargs)
        try:
            functools.wraps(fn)(wrapped)
        except (AttributeError, TypeError):  # e.g. a callable object without __name__
            wrapped.__wrapped__ = fn  # type: ignore[attr-defined]
        wrapped.__taskmaster_protected__ = True  # type: ignore[attr-defined]
        return wrapped

    def protect_events(self, demo: gr.Blocks, fn_ids) -> list[str]:
        """Wrap the handlers `fn_ids` (keys of `demo.fns`) with the admin check; return their
        names (for logging and tests). Idempotent."""
        names = []
        for fid in fn_ids:
            block_fn = demo.fns[fid]
            if block_fn.fn is None or getattr(block_fn.fn, "__taskmaster_protected__", False):
                continue
            triggers = {event for _, event in block_fn.targets}
            silent = bool(triggers) and triggers <= SILENT_TRIGGERS
            block_fn.fn = self.protect_fn(block_fn.fn, silent=silent)
            names.append(block_fn.api_name or block_fn.name or str(fid))
        return names


def _current_request() -> gr.Request | None:
    from gradio.context import LocalContext

    return LocalContext.request.get(None)


def _cookies(request) -> dict:
    raw = getattr(request, "request", None)
    if raw is not None and hasattr(raw, "cookies"):
        return dict(raw.cookies)
    kwargs = getattr(request, "kwargs", None) or {}
    return dict(kwargs.get("cookies", {}) or {})


def _headers(request) -> dict:
    raw = getattr(request, "request", None)
    headers = getattr(raw, "headers", None) if raw is not None else None
    if headers is None:
        headers = getattr(request, "headers", None) or {}
    try:
        return {str(k).lower(): str(v) for k, v in dict(headers).items()}
    except (TypeError, ValueError):
        return {}


def _client_host(request) -> str:
    raw = getattr(request, "request", None)
    client = getattr(raw, "client", None) if raw is not None else None
    return getattr(client, "host", None) or "unknown"


# ---- the login panel (page side) ---------------------------------------------------------

# Sets (or clears) the login cookie in the browser, then reloads so every tab's load handler
# runs again as admin. Where cookies are blocked (a Space embedded in an iframe), no reload:
# the session itself is logged in, until the page is refreshed.
_SET_COOKIE_JS = f"""(token) => {{
  if (!token) return;
  const secure = location.protocol === 'https:' ? '; Secure; SameSite=None' : '; SameSite=Strict';
  document.cookie = '{COOKIE}=' + token + '; path=/; max-age={TOKEN_TTL_S}' + secure;
  if (document.cookie.includes('{COOKIE}=')) location.reload();
}}"""
_CLEAR_COOKIE_JS = f"""() => {{
  document.cookie = '{COOKIE}=; path=/; max-age=0';
  location.reload();
}}"""


def status_text(access: AccessControl, admin: bool) -> str:
    if not access.restricted:
        return ""
    if admin:
        return "Logged in as admin: every tab is available."
    if not access.can_login:
        return ("Public Space without an admin password: only the **Arena** is available. "
                "Set the `TASKMASTER_ADMIN_PASSWORD` secret to use the other tabs.")
    return "Only the **Arena** is public. Log in as admin to use the other tabs."


@dataclass
class LoginPanel:
    """The admin login form, rendered above the tabs; `wire` connects it once the tabs exist."""

    access: AccessControl
    status: gr.Markdown | None = None
    password: gr.Textbox | None = None
    login_btn: gr.Button | None = None
    logout_btn: gr.Button | None = None
    token: gr.Textbox | None = None

    @classmethod
    def render(cls, access: AccessControl) -> "LoginPanel":
        """Render the panel (inside the Blocks). Nothing is rendered when access is open."""
        panel = cls(access)
        if not access.restricted:
            return panel
        panel.status = gr.Markdown(status_text(access, False), elem_id="admin-status")
        with gr.Accordion("Admin login", open=False, elem_id="admin-panel"):
            with gr.Row():
                panel.password = gr.Textbox(
                    label="Admin password", type="password", elem_id="admin-password", scale=3,
                    info="The TASKMASTER_ADMIN_PASSWORD of this studio (a Space secret on a Space).",
                    interactive=access.can_login)
                panel.login_btn = gr.Button("Log in", variant="primary", elem_id="admin-login-button", scale=1,
                                            interactive=access.can_login)
                panel.logout_btn = gr.Button("Log out", elem_id="admin-logout-button", scale=1)
            # Carries the signed cookie token to the page's JS; never the password.
            panel.token = gr.Textbox(visible=False, elem_id="admin-token")
        return panel

    def wire(self, demo: gr.Blocks, tabs: gr.Tabs, admin_tabs: list[gr.Tab], first_admin_tab: str,
             public_tab: str, admin_blocks: list | None = None) -> None:
        """`admin_tabs` and `admin_blocks` (other components or layouts, e.g. the jobs panel) are
        shown to admins and hidden from anonymous visitors; a gr.Timer among `admin_blocks` is
        activated for admins only (no polling by anonymous pages)."""
        access = self.access
        if not access.restricted:
            return
        admin_blocks = list(admin_blocks or [])

        def view(admin: bool, select: str | None):
            updates = [gr.Tab(visible=admin) for _ in admin_tabs] + [
                gr.Timer(active=admin) if isinstance(b, gr.Timer) else gr.update(visible=admin) for b in admin_blocks]
            return [status_text(access, admin), *updates, gr.Tabs(selected=select) if select else gr.Tabs()]

        def on_load(request: gr.Request):
            admin = access.is_admin(request)
            return view(admin, first_admin_tab if admin else public_tab)

        async def on_login(pw: str, request: gr.Request):
            tok = await access.login(pw, request)
            return [tok, "", *view(True, first_admin_tab)]

        def on_logout(request: gr.Request):
            access.logout(request)
            return view(False, public_tab)

        outs = [self.status, *admin_tabs, *admin_blocks, tabs]
        # Public events on purpose: they are how one becomes an admin.
        demo.load(on_load, outputs=outs, api_name="admin_status", queue=False)
        login_evt = gr.on([self.login_btn.click, self.password.submit], fn=on_login, inputs=[self.password],
                          outputs=[self.token, self.password, *outs], api_name="admin_login",
                          concurrency_limit=None)
        login_evt.success(fn=None, inputs=[self.token], js=_SET_COOKIE_JS)
        self.logout_btn.click(on_logout, outputs=outs, api_name="admin_logout").then(fn=None, js=_CLEAR_COOKIE_JS)


# ---- uploads ---------------------------------------------------------------------------

MAX_UPLOAD = "10mb"  # Gradio's own cap (launch(max_file_size=...)): a bigger upload is an HTTP 413


class UploadGate:
    """ASGI middleware: on a restricted studio, `POST .../gradio_api/upload` needs an admin
    (the login cookie). No public (Arena) component takes a file, so an anonymous upload is
    only ever disk filled by a stranger and a file served back under the studio's name."""

    def __init__(self, app, access: AccessControl):
        self.app = app
        self.access = access

    async def __call__(self, scope, receive, send):
        if (scope.get("type") == "http" and scope.get("method") == "POST"
                and scope.get("path", "").rstrip("/").endswith("/upload") and self.access.restricted):
            from starlette.requests import Request

            if not self.access.is_admin(types.SimpleNamespace(request=Request(scope), session_hash=None)):
                from starlette.responses import PlainTextResponse

                await PlainTextResponse(REFUSAL, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def launch_kwargs(access: AccessControl) -> dict:
    """What `demo.launch` needs from access control: the upload cap and the upload gate."""
    from starlette.middleware import Middleware

    return {"max_file_size": MAX_UPLOAD, "app_kwargs": {"middleware": [Middleware(UploadGate, access=access)]}}
