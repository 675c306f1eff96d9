"""`export`: the approved set as a versioned dataset, optionally pushed to the Hub.

    exports/<persona>/v<N>/
      train.jsonl     one record per line: TRL's conversational `messages` plus id, category,
                      scenario, source, quality, review (pipeline/data/records.py)
      README.md       the data card: counts per category / scenario / source, judge, sources, date
      manifest.json   the same figures as JSON, and the sha256 of train.jsonl

Versions are never overwritten: each export takes the next free N (created exclusively,
so two exports at once cannot share a folder). Push: `HfApi.create_repo(repo_type="dataset",
exist_ok=True)` then `upload_folder` of the version folder, with the token from HF_TOKEN.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from pathlib import Path

from ..errors import UserError
from ..jsonl import atomic_write_text, write_json, write_jsonl
from ..spec import Persona
from .records import Example
from .workspace import now_iso

_VERSION = re.compile(r"^v(\d+)$")
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def versions(root: Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _VERSION.match(p.name))]
    return [p for _, p in sorted(found)]


def select(examples: list[Example], include_pending: bool = False) -> list[Example]:
    """Approved examples (plus pending ones with `include_pending`); rejected never."""
    ok = {"approved", "pending"} if include_pending else {"approved"}
    return [e for e in examples if e.review.status in ok]


def _card(persona: Persona, examples: list[Example], meta: dict) -> str:
    cats = Counter(e.category for e in examples)
    srcs = Counter(e.source for e in examples)
    judges = Counter((e.quality or {}).get("judge", "not judged") for e in examples)
    scen = Counter(e.scenario for e in examples)
    multi = sum(1 for e in examples if len(e.user_turns) > 1)
    lines = ["---", "language: en", "license: apache-2.0", "task_categories: [text-generation]",
             f"tags: [persona, sft, {persona.spec.name}]",
             "configs:", "- config_name: default", "  data_files:", "  - split: train", "    path: train.jsonl",
             "---", "", f"# {persona.spec.display_name} persona SFT dataset, {meta['version']}", "",
             f"{len(examples)} conversations in TRL's conversational `messages` format for training the "
             f"{persona.spec.display_name} persona adapter. The persona system prompt is not stored in the "
             "records; add it at training time (see the studio's `pipeline/prompting.py`).", "",
             f"- Created: {meta['created']}",
             f"- Sources: {', '.join(meta['sources']) or 'n/a'}",
             f"- Judge: {', '.join(f'{j} ({n})' for j, n in judges.most_common())}",
             f"- Review: {meta['selection']}",
             f"- Multi-turn conversations: {multi}"]
    if meta.get("note"):
        lines.append(f"- Note: {meta['note']}")
    lines += ["", "## Counts per category", "", "| category | examples |", "|---|---|"]
    lines += [f"| {c} | {n} |" for c, n in sorted(cats.items())]
    lines += ["", "## Counts per source", "", "| source | examples |", "|---|---|"]
    lines += [f"| {s} | {n} |" for s, n in sorted(srcs.items())]
    lines += ["", "## Counts per scenario", "", "| scenario | examples |", "|---|---|"]
    lines += [f"| {s} | {n} |" for s, n in sorted(scen.items())]
    return "\n".join(lines) + "\n"


def write_version(exports_root: Path, persona: Persona, examples: list[Example], *, sources: list[str],
                  selection: str, note: str = "") -> Path:
    """Write examples as the next version folder; return it."""
    if not examples:
        raise UserError("nothing to export: no approved example (approve some in the review queue, "
                        "or pass --include-pending to export examples that passed the filter)")
    root = Path(exports_root)
    root.mkdir(parents=True, exist_ok=True)
    n = (int(versions(root)[-1].name[1:]) if versions(root) else 0) + 1
    while True:
        folder = root / f"v{n}"
        try:
            folder.mkdir()  # exclusive: never reuse (or overwrite) an existing version
            break
        except FileExistsError:
            n += 1
    rows = [e.model_dump(exclude_none=True) for e in examples]
    for r in rows:
        r.pop("rejection", None)
    write_jsonl(folder / "train.jsonl", rows)
    digest = hashlib.sha256((folder / "train.jsonl").read_bytes()).hexdigest()
    meta = {"version": f"v{n}", "persona": persona.spec.name, "created": now_iso(), "count": len(rows),
            "sources": sources, "selection": selection, "note": note, "train_sha256": digest,
            "per_category": dict(Counter(e.category for e in examples)),
            "per_source": dict(Counter(e.source for e in examples)),
            "judges": dict(Counter((e.quality or {}).get("judge", "not judged") for e in examples))}
    write_json(folder / "manifest.json", meta)
    atomic_write_text(folder / "README.md", _card(persona, examples, meta))
    return folder


def push(folder: Path, repo_id: str, token: str | None, *, private: bool = True, endpoint: str | None = None) -> str:
    """Create (if needed) the dataset repo and upload the version folder; returns the repo URL."""
    problems = []
    if not token:
        problems.append("no Hugging Face token: set HF_TOKEN (a write token from https://huggingface.co/settings/tokens)")
    if not repo_id or not REPO_ID.match(repo_id):
        problems.append(f"repo id {repo_id!r}: use the form <user or org>/<dataset name>, e.g. me/taskmaster-sft")
    if not (Path(folder) / "train.jsonl").is_file():
        problems.append(f"{folder}: no train.jsonl; export a version first")
    if problems:
        raise UserError("cannot push the dataset:\n  " + "\n  ".join(problems))
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token)
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                          commit_message=f"Upload {Path(folder).name} of the persona dataset")
    except HfHubHTTPError as exc:
        code = getattr(getattr(exc, "response", None), "status_code", None)
        hint = {401: "the token was refused: check HF_TOKEN", 403: "the token cannot write to this namespace"}.get(
            code, "see the message above")
        raise UserError(f"push to {repo_id} failed (HTTP {code}): {hint}; the local version {folder} is kept") from None
    except (OSError, RuntimeError, ValueError) as exc:  # network down, bad HF_ENDPOINT, offline mode
        raise UserError(f"push to {repo_id} failed ({type(exc).__name__}: {exc}); check the network and "
                        f"HF_ENDPOINT / HF_HUB_OFFLINE; the local version {folder} is kept") from None
    return str(url)


def manifest(folder: Path) -> dict:
    return json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
