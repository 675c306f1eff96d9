"""The training-example record (one JSON object per line; see shared DESIGN.md, Formats).

    {"id": "tc-001", "category": "task_creation", "scenario": "Create a simple task",
     "messages": [{"role": "system", "content": "Task API context: ..."},   # optional
                  {"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}, ...],
     "source": "curated" | "generated" | "targeted" | "edited",
     "quality": {...judge scores and reasons...},
     "review": {"status": "approved" | "rejected" | "pending", "note": "...", ...},
     "provenance": {...generator model, prompt version, time...}}            # optional

`messages` is TRL's conversational format. The persona system prompt is *not* stored in
records; `pipeline.prompting.with_persona_system` adds it when a model sees them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..jsonl import iter_jsonl, write_jsonl

Role = Literal["system", "user", "assistant"]
ReviewStatus = Literal["approved", "rejected", "pending"]
# One turn of a chat: 20,000 characters is ~5,000 tokens, beyond any max_length the presets
# train on (512-2048). Longer is a paste accident, and training would only cut it.
MAX_CONTENT_CHARS = 20_000


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    content: str = Field(min_length=1, max_length=MAX_CONTENT_CHARS)

    @field_validator("content")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("is blank (only whitespace): write the turn or remove the record")
        return v


class Review(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: ReviewStatus = "pending"
    note: str = ""


class Example(BaseModel):
    model_config = ConfigDict(extra="allow")  # stages may add fields (e.g. "rejection")
    id: str = Field(min_length=1)
    category: str
    scenario: str
    messages: list[Message] = Field(min_length=2)
    source: str = "curated"
    quality: dict[str, Any] = Field(default_factory=dict)
    review: Review = Field(default_factory=Review)

    @model_validator(mode="after")
    def _shape(self) -> "Example":
        roles = [m.role for m in self.messages]
        body = roles[1:] if roles[0] == "system" else roles
        if "system" in body:
            raise ValueError("only the first message may be a system message (the Task API context)")
        if not body or body[0] != "user" or body[-1] != "assistant":
            raise ValueError("turns must start with a user message and end with an assistant message")
        if any(a == b for a, b in zip(body, body[1:])):
            raise ValueError("user and assistant turns must alternate")
        return self

    @property
    def user_turns(self) -> list[str]:
        return [m.content for m in self.messages if m.role == "user"]

    @property
    def assistant_turns(self) -> list[str]:
        return [m.content for m in self.messages if m.role == "assistant"]

    @property
    def context(self) -> str | None:
        return self.messages[0].content if self.messages[0].role == "system" else None

    @property
    def first_user(self) -> str:
        return self.user_turns[0]

    def chat(self) -> list[dict]:
        return [m.model_dump() for m in self.messages]


def load_examples(path: str | Path) -> list[Example]:
    """Load a JSONL dataset; raise ValueError naming every bad line and field. An empty file
    is refused (a run on zero examples is a mistake, not a result), and so are repeated ids."""
    problems, out, first_line = [], [], {}
    rows = list(iter_jsonl(path))  # ValueError naming the file and line for a malformed file
    if not rows:
        raise ValueError(f"{path}: no records (the file is empty or only whitespace); "
                         f"write one JSON object per line (format: pipeline/data/records.py)")
    for i, row in enumerate(rows, 1):
        rid = row.get("id")
        if isinstance(rid, str) and rid:
            if rid in first_line:
                problems.append(f"{path}: record {i}: id {rid!r} is already used by record {first_line[rid]}; "
                                f"give each record its own id")
            first_line.setdefault(rid, i)
        try:
            out.append(Example.model_validate(row))
        except ValidationError as err:
            for e in err.errors():
                where = ".".join(str(p) for p in e["loc"]) or "(record)"
                problems.append(f"{path}: record {i} (id={str(row.get('id', '?'))[:80]}): {where}: {e['msg']}")
    if problems:
        raise ValueError("\n".join(problems[:50]) + (f"\n... and {len(problems) - 50} more" if len(problems) > 50 else ""))
    return out


def save_examples(path: str | Path, examples: list[Example]) -> None:
    write_jsonl(path, [e.model_dump(exclude_none=True) for e in examples])
