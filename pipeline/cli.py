"""`python -m pipeline`: one subcommand per stage.

Subcommands live in `pipeline/commands/<name>.py`, each exposing
`register(subparsers) -> None`; they are discovered here so that adding a stage never
means editing a central list. Each handler receives the parsed args and a `Settings`.
Mistakes a user can fix (`UserError`, `SpecError`, `ModelNotAvailable`) print as one
clear message and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from . import commands
from .errors import UserError
from .models import ModelNotAvailable
from .settings import Settings
from .spec import SpecError

USER_ERRORS = (UserError, SpecError, ModelNotAvailable, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="TaskMaster Persona Studio: persona spec -> data -> LoRA -> evaluation -> package -> Hub.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", metavar="<stage>")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    try:
        result = args.handler(args, settings)
    except USER_ERRORS as exc:
        msg = str(exc)
        if isinstance(exc, FileNotFoundError) and exc.filename:
            msg = f"file not found: {exc.filename}"
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
