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

import functools
import hashlib
import hmac
import inspect
import secrets
import threading
import time
from dataclasses import dataclass, field

import gradio as gr

from pipeline.settings import Settings

COOKIE = "tm_admin"
TOKEN_TTL_S = 12 * 3600          # a browser login lasts a working day
MAX_FAILURES = 5                  # wrong passwords per client address ...
FAILURE_WINDOW_S = 60             # ... within this window lock that address out for the window
SILENT_TRIGGERS = {"load", "tick", "change", "select", "then", "success", "focus", "blur"}
REFUSAL = "Admin login required: open the studio's Admin login panel (top of the page) and enter the admin password."


@dataclass
class AccessControl:
    settings: Settings
    _key: bytes = field(default=b"", repr=False)
    _sessions: set = field(default_factory=set, repr=False)
    _failures: dict = field(default_factory=dict, repr=False)
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
            if sid and sid in self._sessions:
                return True
        return self.verify_token(_cookies(request).get(COOKIE, ""))

    def require_admin(self, request: gr.Request | None = None, *, silent: bool = False) -> None:
        """Raise gr.Error unless this request comes from a logged-in admin (or access is open)."""
        if not self.is_admin(request):
            raise gr.Error(REFUSAL, visible=not silent, title="Admin only", print_exception=False)

    # ---- tokens --------------------------------------------------------------------
    def make_token(self, now: float | None = None) -> str:
        expires = int((now or time.time()) + TOKEN_TTL_S)
        sig = hmac.new(self._key, f"admin|{expires}".encode(), hashlib.sha256).hexdigest()
        return f"{expires}.{sig}"

    def verify_token(self, token: str, now: float | None = None) -> bool:
        if not token or "." not in token or not self.can_login:
            return False
        expires, _, sig = token.partition(".")
        if not expires.isdigit() or int(expires) < (now or time.time()):
            return False
        good = hmac.new(self._key, f"admin|{expires}".encode(), hashlib.sha256).hexdigest()
        with self._lock:
            if token in self._revoked:
                return False
        return hmac.compare_digest(good, sig)

    # ---- login / logout --------------------------------------------------------------
    def login(self, password: str, request: gr.Request | None) -> str:
        """Check the password; on success mark this session as admin and return a cookie token.
        Raises gr.Error saying what to do on failure (never which part was wrong)."""
        if not self.restricted:
            return ""
        if not self.can_login:
            raise gr.Error("Admin login is disabled: this Space has no TASKMASTER_ADMIN_PASSWORD secret. "
                           "Add one in the Space settings to use the admin tabs.", print_exception=False)
        who = _client_host(request)
        now = time.time()
        with self._lock:
            recent = [t for t in self._failures.get(who, []) if now - t < FAILURE_WINDOW_S]
            self._failures[who] = recent
            if len(recent) >= MAX_FAILURES:
                raise gr.Error(f"Too many wrong passwords: wait {FAILURE_WINDOW_S} s and try again.",
                               print_exception=False)
        ok = hmac.compare_digest((password or "").encode(), (self.settings.admin_password or "").encode())
        if not ok:
            with self._lock:
                self._failures.setdefault(who, []).append(now)
            raise gr.Error("Wrong admin password: check TASKMASTER_ADMIN_PASSWORD (or the Space secret) and retry.",
                           print_exception=False)
        sid = getattr(request, "session_hash", None) if request is not None else None
        with self._lock:
            self._failures.pop(who, None)
            if sid:
                self._sessions.add(sid)
        return self.make_token(now)

    def logout(self, request: gr.Request | None) -> None:
        """End this session's login and revoke its cookie token (a copied cookie stops working)."""
        sid = getattr(request, "session_hash", None) if request is not None else None
        token = _cookies(request).get(COOKIE) if request is not None else None
        with self._lock:
            self._sessions.discard(sid)
            if token:
                self._revoked.add(token)

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

        def on_login(pw: str, request: gr.Request):
            tok = access.login(pw, request)
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
