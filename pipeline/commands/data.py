"""`python -m pipeline data <action>`: the data stages.

Each action lives in `pipeline/commands/_data_<action>.py` with `register(data_subparsers)`,
discovered here (the leading underscore keeps them out of the top-level stage list).
"""

from __future__ import annotations

import importlib
import pkgutil

from .. import commands


def register(sub) -> None:
    p = sub.add_parser("data", help="dataset stages: stats, generate, filter, dedupe, balance, target, review, export")
    s = p.add_subparsers(dest="data_cmd", metavar="<action>")
    s.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_data_"):
            importlib.import_module(f"{commands.__name__}.{info.name}").register(s)
