"""Launch TaskMaster Persona Studio: `python app.py` (or `make studio`).

Host and port follow Gradio's own environment variables (GRADIO_SERVER_NAME,
GRADIO_SERVER_PORT; default 127.0.0.1:7860). On a Hugging Face Space, `app.py` is the entry
point the Space runs.
"""

from __future__ import annotations

import logging
import os
import threading

from pipeline.settings import Settings
from studio.app import build_app
from studio.context import StudioContext

log = logging.getLogger("studio")


def _warm_arena(ctx: StudioContext) -> None:
    try:
        log.info("arena warmed up: %s", ", ".join(ctx.arena().warm()))
    except Exception as exc:  # a base that cannot load now fails again, with its message, on first use
        log.warning("arena warm-up skipped: %s", exc)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per HTTP request otherwise
    settings = Settings.from_env()
    ctx = StudioContext(settings)
    demo = build_app(settings, ctx)
    if os.environ.get("TASKMASTER_WARM_ARENA", "1") != "0":
        # The Arena is ready before the first voter: model, contenders' adapters, prefix cache.
        threading.Thread(target=_warm_arena, args=(ctx,), name="arena-warm-up", daemon=True).start()
    # default_concurrency_limit=1: model work is serialized anyway (one base model in memory);
    # the Arena sets its own limits per event.
    demo.queue(default_concurrency_limit=1, max_size=64)
    # show_error=False: unexpected errors reach the page as the one-line message of
    # studio/guard.py, never as a traceback. No `auth=`: the Arena must stay public; admin
    # access is enforced per handler (studio/access.py).
    demo.launch(show_error=False, **getattr(demo, "studio_launch_kwargs", {}))


if __name__ == "__main__":
    main()
