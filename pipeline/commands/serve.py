"""`python -m pipeline serve [--host H] [--port P] [--api-key KEY] [--adapter NAME=FOLDER ...]`

An OpenAI-compatible server (pipeline/serve.py) over the studio's base model: `taskmaster-base`
and `taskmaster-<run>` for every finished run, plus any package folder named with --adapter.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError


def register(sub) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible HTTP server: taskmaster-base and taskmaster-<run> models")
    p.add_argument("--base", help="base model name or folder (default: the studio's base model)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (prefer the environment variable "
                                     "TASKMASTER_SERVE_API_KEY: a command line is visible to other users)")
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=FOLDER",
                   help="also serve this adapter or package folder as taskmaster-NAME (repeatable)")
    p.add_argument("--no-system-prompt", action="store_true",
                   help="send conversations as they are (default: the persona's system prompt frames each one)")
    p.add_argument("--max-rows", type=int, default=48, help="rows decoded together (the continuous batch)")
    p.add_argument("--max-waiting", type=int, default=256, help="requests queued before answering 429 busy")
    p.set_defaults(handler=_serve)


def parse_adapters(values: list[str]) -> dict[str, Path]:
    out = {}
    for v in values:
        name, sep, folder = v.partition("=")
        if not sep or not name or not folder:
            raise UserError(f"--adapter {v!r}: write NAME=FOLDER, e.g. --adapter mypersona=runs/demo/package")
        if not (Path(folder) / "adapter_config.json").is_file():
            raise UserError(f"--adapter {v!r}: {folder} has no adapter_config.json; pass a run's adapter/ or "
                            f"package/ folder")
        out[name] = Path(folder)
    return out


def _serve(args, settings) -> int:
    from ..inference import ChatEngine
    from ..serve import API_KEY_ENV, finished_adapters, serve

    extra = parse_adapters(args.adapter)
    system_prompt = None
    if not args.no_system_prompt:
        from ..spec import load_persona

        system_prompt = load_persona(settings.persona_dir()).spec.system_prompt
    base = args.base or settings.base_model
    engine = ChatEngine(base, settings, max_rows=args.max_rows, max_waiting=args.max_waiting)
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    print(f"serving {base} on http://{args.host}:{args.port}/v1 "
          f"(auth {'on' if api_key else 'off'}; models: GET /v1/models)", flush=True)
    try:
        serve(engine, lambda: {**finished_adapters(settings, base), **extra}, host=args.host, port=args.port,
              api_key=api_key, system_prompt=system_prompt)
    finally:
        engine.close()
    return 0
