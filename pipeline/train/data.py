"""Records -> chat conversations -> token ids with assistant-only labels.

Each approved record becomes the conversation the model will see at serving time:
`with_persona_system` puts the persona's system prompt first (merged with a leading
"Task API context" message), and the base model's *own* chat template renders it.

Assistant-only loss without `{% generation %}` markers: the template is rendered for the
growing prefixes of the conversation. For each assistant turn, the text of
`messages[:i]` + generation prompt is where the reply starts, and the text of
`messages[:i+1]` is where its turn ends (the end-of-turn token included, trailing whitespace
not). Tokens whose characters fall inside those spans get their id as label; every
other token (system, user, the template's role headers, padding) gets -100. This works for
any template that renders prefixes as prefixes (ChatML, Llama 3, Mistral, ...), and the
code checks that property instead of assuming it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..data.records import Example, load_examples
from ..errors import UserError
from ..prompting import with_persona_system

IGNORE = -100


@dataclass
class TokenizedSet:
    rows: list[dict]  # {"input_ids", "labels"}
    n_records: int  # approved records read
    n_truncated: int  # rows cut at max_length
    n_dropped: int  # rows with no assistant token left after truncation
    data_sha256: str

    @property
    def total_tokens(self) -> int:
        return sum(len(r["input_ids"]) for r in self.rows)

    @property
    def label_tokens(self) -> int:
        return sum(sum(1 for x in r["labels"] if x != IGNORE) for r in self.rows)


def default_data_path(persona_folder: Path) -> Path:
    return Path(persona_folder) / "train.jsonl"


def latest_export(settings, persona: str) -> Path | None:
    """The train.jsonl of the Data tab's newest exported version of `persona`, if any."""
    from ..data.export import versions
    from ..data.workspace import DataPaths

    found = [v / "train.jsonl" for v in versions(DataPaths.of(settings, persona).exports)]
    found = [f for f in found if f.is_file()]
    return found[-1] if found else None


def dataset_record(path: str | Path, n_approved: int | None = None) -> dict:
    """What a run records about its training data (config.yaml `dataset`, shown in the Runs table,
    the Evaluate tab and the package): which version, the file's sha256, how many conversations.
    An exported version (exports/<persona>/v<N>/train.jsonl) is named by its manifest; anything
    else by its file name ("shipped" for a persona folder's own train.jsonl)."""
    import hashlib
    import json

    path = Path(path)
    manifest = path.parent / "manifest.json"
    version, persona = None, None
    if manifest.is_file():
        try:
            meta = json.loads(manifest.read_text(encoding="utf-8"))
            version, persona = meta.get("version"), meta.get("persona")
        except (OSError, ValueError):
            pass
    if version is None:
        version = "shipped" if (path.parent / "persona.yaml").is_file() else path.name
    sha = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    # No absolute local path: the record travels into packages. Version + hash identify the data.
    where = f"exports/{persona}/{version}/{path.name}" if persona else f"{path.parent.name}/{path.name}"
    return {"version": version, "path": where, "sha256": sha, "count": n_approved}


def load_training_records(path: str | Path) -> list[Example]:
    """The approved records of a dataset file (pending and rejected ones are never trained on)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"training data not found: {path}; curate a dataset in the Data tab or pass --data FILE")
    try:
        records = load_examples(path)
    except ValueError as exc:
        raise UserError(f"training data has invalid records:\n{exc}") from None
    approved = [r for r in records if r.review.status == "approved"]
    if not approved:
        raise UserError(f"{path}: none of its {len(records)} records is approved (review.status); "
                        f"approve some in the Data tab's review first")
    return approved


def conversations(records: list[Example], system_prompt: str | None) -> list[list[dict]]:
    return [with_persona_system(r.chat(), system_prompt) for r in records]


def data_hash(convs: list[list[dict]]) -> str:
    """sha256 of exactly what is trained on (conversations after the persona prompt is added)."""
    h = hashlib.sha256()
    for c in convs:
        h.update(json.dumps(c, ensure_ascii=False, sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()


def _render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """(full text, [(start_char, end_char)] of each assistant reply incl. its end-of-turn token)."""
    text = _render(tokenizer, messages)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], add_generation_prompt=True)
        through = _render(tokenizer, messages[: i + 1])
        if not text.startswith(before) or not text.startswith(through) or not through.startswith(before):
            raise UserError("the base model's chat template does not render a conversation's prefixes as prefixes "
                            "of the whole, so assistant-only labels cannot be derived from it; use a model whose "
                            "template does (ChatML, Llama 3, Mistral) or add {% generation %} markers to it")
        end = len(through.rstrip())
        spans.append((len(before), end))
    return text, spans


def tokenize_conversation(tokenizer, messages: list[dict], max_length: int) -> tuple[dict, bool]:
    """({"input_ids", "labels"}, truncated?). Labels are the ids on assistant spans, -100 elsewhere."""
    if not getattr(tokenizer, "is_fast", False):
        raise UserError("training needs a fast (Rust) tokenizer for character offsets; this model's has none")
    text, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = []
    for tok, (s, e) in zip(ids, offsets):
        inside = any(s >= a and e <= b and e > s for a, b in spans)
        labels.append(tok if inside else IGNORE)
    truncated = len(ids) > max_length
    return {"input_ids": ids[:max_length], "labels": labels[:max_length]}, truncated


def tokenize_records(tokenizer, records: list[Example], system_prompt: str | None, max_length: int) -> TokenizedSet:
    convs = conversations(records, system_prompt)
    rows, truncated, dropped = [], 0, 0
    for c in convs:
        row, cut = tokenize_conversation(tokenizer, c, max_length)
        truncated += cut
        if all(x == IGNORE for x in row["labels"]):
            dropped += 1  # the reply starts beyond max_length: nothing to learn from it
            continue
        rows.append(row)
    if not rows:
        raise UserError(f"every conversation lost its assistant reply at max_length={max_length}; raise max_length")
    return TokenizedSet(rows, len(records), truncated, dropped, data_hash(convs))
