"""Eval sets: the persona's eval.yaml (`{version: 1, prompts: [...]}`) or a JSONL file with
`{"id", "prompt"}` or `{"id", "messages"}` per line. Every prompt becomes a conversation that
ends with a user turn (an optional leading "Task API context:" system message is kept; the
persona system prompt is added later, by pipeline.prompting.with_persona_system)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import UserError
from ..prompting import last_user_text


@dataclass(frozen=True)
class EvalPrompt:
    id: str
    messages: list[dict]
    category: str = "uncategorized"
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def prompt(self) -> str:
        return last_user_text(self.messages)

    def to_dict(self) -> dict:
        return {"id": self.id, "category": self.category, "tags": list(self.tags), "messages": self.messages}


def _rows(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("prompts"), list):
            raise UserError(f"{path}: expected a mapping with a `prompts:` list")
        return raw["prompts"]
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}: line {i}: not valid JSON ({exc.msg}); fix or remove that line") from None
    return rows


def load_eval_set(path: str | Path) -> list[EvalPrompt]:
    """Load and validate; every problem is reported at once (UserError)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"eval set not found: {path}; pass a prompt file (eval.yaml or JSONL)")
    problems, out, seen = [], [], set()
    for i, r in enumerate(_rows(path), 1):
        where = f"{path}: prompt {i}"
        if not isinstance(r, dict):
            problems.append(f"{where}: expected a mapping")
            continue
        pid = str(r.get("id") or f"p{i:03d}")
        where = f"{path}: {pid}"
        if pid in seen:
            problems.append(f"{where}: duplicate id")
        seen.add(pid)
        if "messages" in r:
            msgs = r["messages"]
            if not isinstance(msgs, list) or not msgs or not all(isinstance(m, dict) and m.get("role") in
                                                                 ("system", "user", "assistant") and
                                                                 isinstance(m.get("content"), str) for m in msgs):
                problems.append(f"{where}: messages must be a list of {{role, content}} with roles system/user/assistant")
                continue
            if msgs[-1]["role"] != "user":
                problems.append(f"{where}: messages must end with a user turn (the one the model answers)")
                continue
            msgs = [{"role": m["role"], "content": m["content"]} for m in msgs]
        elif isinstance(r.get("prompt"), str) and r["prompt"].strip():
            msgs = [{"role": "user", "content": r["prompt"]}]
        else:
            problems.append(f"{where}: needs a non-empty `prompt` or a `messages` list")
            continue
        out.append(EvalPrompt(pid, msgs, str(r.get("category") or "uncategorized"), tuple(r.get("tags") or ())))
    if not out and not problems:
        problems.append(f"{path}: no prompts")
    if problems:
        raise UserError("eval set:\n  " + "\n  ".join(problems))
    return out
