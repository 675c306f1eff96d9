"""MANIFEST.json: a SHA-256 and a size for every file of a package, written last.

Validation recomputes every hash, so a file edited, added or removed after packaging shows up
as a finding naming that file; the Hub commit carries the same manifest, so what was pushed
can be checked against what was validated. The manifest also keeps the facts the model card
was rendered from (`card`), so the push stage can re-render the card (repo id, dataset link,
validation override) without re-reading the run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..jsonl import file_sha256, write_json

MANIFEST = "MANIFEST.json"
SCHEMA_VERSION = 1


def package_files(folder: str | Path) -> list[str]:
    """Every file of the package (POSIX paths relative to it), the manifest itself excluded."""
    folder = Path(folder)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.name != MANIFEST)


def write_manifest(folder: str | Path, *, run_id: str, card: dict, created_at: str | None = None) -> dict:
    folder = Path(folder)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created_at": created_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": {rel: {"sha256": file_sha256(folder / rel), "bytes": (folder / rel).stat().st_size}
                  for rel in package_files(folder)},
        "card": card,
    }
    write_json(folder / MANIFEST, manifest)
    return manifest


def read_manifest(folder: str | Path) -> dict | None:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def verify_manifest(folder: str | Path, manifest: dict) -> list[tuple[str, str]]:
    """(file, problem) for every file whose bytes differ from the manifest, or that is extra/missing."""
    folder = Path(folder)
    listed = manifest.get("files") or {}
    problems = []
    for rel, meta in sorted(listed.items()):
        p = folder / rel
        if not p.is_file():
            problems.append((rel, "listed in MANIFEST.json but missing"))
        elif file_sha256(p) != meta.get("sha256"):
            problems.append((rel, "changed since packaging (SHA-256 differs from MANIFEST.json)"))
    for rel in package_files(folder):
        if rel not in listed:
            problems.append((rel, "not listed in MANIFEST.json (added after packaging)"))
    return problems
