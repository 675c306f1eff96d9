"""One error policy for every event handler of the studio (applied by build_app; tabs do nothing).

* A mistake the user can fix (`UserError`, `SpecError`, `ModelNotAvailable`, a missing file)
  shows as a `gr.Warning` with the message, which names what to change; the handler's outputs
  are left as they were (`gr.skip()`), so nothing the user typed is lost. When a `.success()`
  step is chained after the handler, a `gr.Error` (same message, title "Check your input") is
  raised instead, so the chain stops as the author meant.
* A refused action's reason also stays on the page: when one of the handler's outputs is a
  Markdown marked with `refusal_note` (the status line next to the button), it gets the
  message too; a toast is gone after 10 s and a newcomer often looks away while it shows.
* `gr.Error` (and the admin refusal) passes through unchanged, except where a refusal note
  (below) is among the outputs: then it shows as a warning with the same text, and in the note.
* Anything else is a bug: the traceback goes to the studio's log (stderr), the page gets a
  one-line message naming the exception type, never a traceback or a secret.
"""

from __future__ import annotations

import functools
import html
import inspect
import logging

import gradio as gr

from pipeline.errors import UserError
from pipeline.models import ModelNotAvailable
from pipeline.spec import SpecError

log = logging.getLogger("studio")
USER_ERRORS = (UserError, SpecError, ModelNotAvailable, FileNotFoundError)
BUG_MESSAGE = "Something went wrong in the studio ({kind}); the details are in the studio's log."


def user_message(exc: BaseException) -> str:
    if isinstance(exc, SpecError):
        return "Fix these problems and try again:\n" + "\n".join(f"- {p}" for p in exc.problems)
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"File not found: {exc.filename}. Check the path, or create it first."
    return str(exc)


def toast_text(message: str) -> str:
    """`message` as a toast shows it: Gradio renders toast text as (sanitized) HTML, so a
    `runs/<id>` or YAML's `"<unicode string>", line 5` would be read as a tag and cut off."""
    return html.escape(str(message), quote=False)


def info(message: str) -> None:
    """gr.Info with the text shown as written (see toast_text)."""
    gr.Info(toast_text(message))


NOTE_ATTR = "_taskmaster_refusal_note"


def refusal_note(component, prefix: str = "Not done"):
    """Mark `component` (a gr.Markdown beside a control) as where a refused action's reason
    stays, as "**<prefix>:** <reason>". The handler clears it itself when an action succeeds."""
    setattr(component, NOTE_ATTR, prefix)
    return component


def note_text(prefix: str, message: str) -> str:
    # Escaped like a toast: a Markdown block is sanitized HTML too, so "runs/<id>" would vanish.
    return f"**{prefix}:** {toast_text(message)}"


def _skip(n_outputs: int, note: tuple[int, str] | None = None):
    if n_outputs == 0:
        return None
    out = [gr.skip() for _ in range(n_outputs)]
    if note is not None:
        out[note[0]] = note[1]
    return out[0] if n_outputs == 1 else tuple(out)


def _handle(exc: BaseException, *, strict: bool, where: str) -> str:
    """Turn an exception into the studio's policy; returns (the user's message) only for a user
    error shown as a warning."""
    if isinstance(exc, gr.Error):
        raise exc
    if isinstance(exc, USER_ERRORS):
        msg = user_message(exc)
        if strict:
            raise gr.Error(toast_text(msg), title="Check your input", print_exception=False) from None
        gr.Warning(toast_text(msg))
        return msg
    log.exception("unexpected error in %s", where)
    raise gr.Error(BUG_MESSAGE.format(kind=type(exc).__name__), print_exception=False) from None


def guard_fn(fn, *, n_outputs: int, strict: bool = False, where: str = "", note: tuple[int, str] | None = None):
    """Wrap `fn` with the policy above, keeping its kind and signature (see access.protect_fn).
    `note`: (output index, prefix) of the output that keeps a refusal's reason on the page."""
    where = where or getattr(fn, "__name__", "handler")

    def refused(exc):
        if note is not None and not strict and isinstance(exc, gr.Error) and exc.visible:
            # A refusal raised as gr.Error (e.g. "Admin login required") stays on the page too;
            # raising it would drop every output, the note with them.
            gr.Warning(exc.message, title=exc.title)
            return _skip(n_outputs, (note[0], f"**{note[1]}:** {exc.message}"))
        msg = _handle(exc, strict=strict, where=where)
        return _skip(n_outputs, None if note is None else (note[0], note_text(note[1], msg)))

    if inspect.isasyncgenfunction(fn):
        async def wrapped(*args, **kwargs):
            try:
                async for item in fn(*args, **kwargs):
                    yield item
            except Exception as exc:  # noqa: BLE001 - the policy decides
                yield refused(exc)
    elif inspect.isgeneratorfunction(fn):
        def wrapped(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001
                yield refused(exc)
    elif inspect.iscoroutinefunction(fn):
        async def wrapped(*args, **kwargs):
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001
                return refused(exc)
    else:
        def wrapped(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001
                return refused(exc)
    try:
        functools.wraps(fn)(wrapped)
    except (AttributeError, TypeError):
        wrapped.__wrapped__ = fn  # type: ignore[attr-defined]
    wrapped.__taskmaster_guarded__ = True  # type: ignore[attr-defined]
    return wrapped


def guard_events(demo: gr.Blocks) -> int:
    """Apply the policy to every handler of `demo`; returns how many were wrapped. Idempotent."""
    chained = {bf.trigger_after for bf in demo.fns.values() if bf.trigger_only_on_success and bf.trigger_after is not None}
    n = 0
    for fid, block_fn in demo.fns.items():
        fn = block_fn.fn
        if (fn is None or getattr(fn, "__taskmaster_guarded__", False) or block_fn.is_cancel_function
                or block_fn.batch):
            continue
        note = next(((i, getattr(o, NOTE_ATTR)) for i, o in enumerate(block_fn.outputs)
                     if getattr(o, NOTE_ATTR, None)), None)
        block_fn.fn = guard_fn(fn, n_outputs=len(block_fn.outputs), strict=fid in chained,
                               where=block_fn.api_name or block_fn.name or str(fid), note=note)
        n += 1
    return n
