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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..jsonl import iter_jsonl, write_jsonl

Role = Literal["system", "user", "assistant"]
ReviewStatus = Literal["approved", "rejected", "pending"]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    content: str = Field(min_length=1)


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
    """Load a JSONL dataset; raise ValueError naming every bad line and field."""
    problems, out = [], []
    for i, row in enumerate(iter_jsonl(path), 1):
        try:
            out.append(Example.model_validate(row))
        except ValidationError as err:
            for e in err.errors():
                where = ".".join(str(p) for p in e["loc"]) or "(record)"
                problems.append(f"{path}: record {i} (id={row.get('id', '?')}): {where}: {e['msg']}")
    if problems:
        raise ValueError("\n".join(problems))
    return out


def save_examples(path: str | Path, examples: list[Example]) -> None:
    write_jsonl(path, [e.model_dump(exclude_none=True) for e in examples])
