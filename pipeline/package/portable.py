"""What a published package may say about the machine it was built on: nothing.

The run's config and evaluation record absolute paths (`/home/alice/studio/data/...`,
`/tmp/.../runs/<id>/adapter`) and the command line that started the job. A package is
published: every absolute path in what it copies becomes relative to the run folder
(`adapter`, `eval/...`), the package (`.`) or the project (`data/personas/<name>/train.jsonl`),
in that order of preference; a path outside all of them keeps its last component only. The
command line is dropped (the config beside it is what reproduces the run).

Kept as written: `base_model`, which names what the adapter loads on (a registry name or Hub id
in a publishable run; a local folder only for a local base, which the card must name anyway).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

DROPPED_KEYS = {"command", "argv", "cmdline", "command_line", "cwd", "hostname", "pid"}
KEPT_KEYS = {"base_model"}


def relative_path(value: str, roots: list[Path]) -> str:
    """`value` relative to the first root that holds it, else its last component."""
    p = Path(value)
    for root in roots:
        try:
            rel = p.resolve().relative_to(root.resolve())
        except (ValueError, OSError, RuntimeError):
            continue
        return rel.as_posix() or "."
    return PurePosixPath(value).name or "."


def _looks_absolute(v: str) -> bool:
    return (v.startswith("/") and "\n" not in v and len(v) < 4096) or (os.name == "nt" and Path(v).is_absolute())


def portable(obj, roots: list[Path]):
    """A copy of `obj` (JSON/YAML data) with local paths made relative and command lines dropped.
    Text that merely contains a path (a sentence) loses the roots' prefixes the same way."""
    if isinstance(obj, dict):
        return {k: v if k in KEPT_KEYS else portable(v, roots) for k, v in obj.items() if k not in DROPPED_KEYS}
    if isinstance(obj, list):
        return [portable(v, roots) for v in obj]
    if isinstance(obj, str):
        if _looks_absolute(obj) and " " not in obj:
            return relative_path(obj, roots)
        out = obj
        for root in roots:
            for form in {str(root), str(root.resolve())}:
                if len(form) > 1 and form in out:
                    out = out.replace(form.rstrip("/") + "/", "").replace(form, ".")
        return out
    return obj
