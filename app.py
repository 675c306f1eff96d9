"""Launch TaskMaster Persona Studio: `python app.py` (or `make studio`).

Host and port follow Gradio's own environment variables (GRADIO_SERVER_NAME,
GRADIO_SERVER_PORT; default 127.0.0.1:7860). On a Hugging Face Space, `app.py` is the entry
point the Space runs.
"""

from __future__ import annotations

from pipeline.settings import Settings
from studio.app import build_app


def main() -> None:
    settings = Settings.from_env()
    demo = build_app(settings)
    # default_concurrency_limit=1: model work is serialized anyway (one base model in memory);
    # the Arena sets its own limits per event.
    demo.queue(default_concurrency_limit=1, max_size=64)
    demo.launch()


if __name__ == "__main__":
    main()
