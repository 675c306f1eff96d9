"""JSONL and atomic-file helpers used by every stage (nothing half-written survives a crash)."""

from __future__ import annotations

import codecs
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator


def read_jsonl(path: str | Path) -> list[dict]:
    return list(iter_jsonl(path))


# Deeper than this is not a record anyone wrote: json.loads would raise RecursionError near
# ~1,000 levels, and json.dumps (writing the record back) the same; refuse it early and clearly.
MAX_DEPTH = 64
_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "true/false", type(None): "null"}


def json_depth(obj) -> int:
    """Nesting depth of a parsed JSON value (iterative: never a RecursionError itself)."""
    depth, stack = 0, [(obj, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict):
            depth = max(depth, d)
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            depth = max(depth, d)
            stack.extend((v, d + 1) for v in node)
    return depth


def iter_jsonl(path: str | Path) -> Iterator[dict]:
    """One JSON object per line. A UTF-8 BOM (Windows editors) and CRLF are accepted; anything
    else that is not one object per line raises ValueError naming the file, the line and the fix."""
    path = Path(path)
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if lineno == 1:
                if raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8):]
                elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                    raise ValueError(f"{path}: the file is UTF-16 text; save it as UTF-8 (one JSON object per line)")
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                                 f"{exc.start + 1}); save the file as UTF-8") from None
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg}); fix or remove that line") from None
            except RecursionError:
                raise ValueError(f"{path}:{lineno}: JSON nested too deeply to read; a record is at most "
                                 f"{MAX_DEPTH} levels deep") from None
            if not isinstance(row, dict):
                kind = _KINDS.get(type(row), type(row).__name__)
                if isinstance(row, list) and lineno == 1:
                    raise ValueError(f"{path}:1: line 1 is a JSON array; this is JSONL: write one JSON object "
                                     f"per line (e.g. `jq -c '.[]' {path.name}`)")
                raise ValueError(f"{path}:{lineno}: expected a JSON object ({{...}}) on each line, got a JSON {kind}")
            if json_depth(row) > MAX_DEPTH:
                raise ValueError(f"{path}:{lineno}: JSON nested deeper than {MAX_DEPTH} levels; "
                                 f"a record is at most {MAX_DEPTH} levels deep")
            yield row


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def append_jsonl(path: str | Path, row: dict) -> None:
    """Append one record as a single write (a line is either whole or absent after a crash)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def write_json(path: str | Path, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (eval sets, adapters, package files: one hash everywhere)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):  # 1 MiB blocks: flat memory for big adapters
            h.update(block)
    return h.hexdigest()
