"""`python -m pipeline data <action>`: the data stages.

Each action is a module of this package, `pipeline/commands/data/<action>.py`, with
`register(data_subparsers)`; they are discovered here, so adding an action edits no list.
"""

from __future__ import annotations

import importlib
import pkgutil



def register(sub) -> None:
    p = sub.add_parser("data", help="dataset stages: stats, generate, filter, dedupe, balance, target, review, export")
    s = p.add_subparsers(dest="data_cmd", metavar="<action>")
    s.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        importlib.import_module(f"{__name__}.{info.name}").register(s)
