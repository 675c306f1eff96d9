"""Find secrets before they leave the machine: API keys, Hub tokens, passwords.

Two kinds of evidence:
  * patterns: OpenAI keys (`sk-...`, `sk-proj-...`), Hugging Face tokens (`hf_` + 30 or more
    letters/digits), AWS access key ids and secret keys, and generic `password=` / `api_key=` /
    `secret:` / `token=` assignments with a literal value;
  * the studio's own secrets, whatever they look like: the current values of HF_TOKEN,
    OPENAI_API_KEY (generator and judge) and the admin password, when set.

A finding names the file, the line and the kind of secret, and shows the value masked
(`hf_****… (37 chars)`): the secret itself is never printed, logged or returned.
Text files are scanned whole; binary files only in their first megabyte (a safetensors
header, where metadata strings live), because weights are numbers, not text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..settings import Settings

BINARY_SCAN_BYTES = 1 << 20
TEXT_SUFFIXES = {".md", ".json", ".jsonl", ".yaml", ".yml", ".txt", ".py", ".jinja", ".cfg", ".toml", ".ini",
                 ".csv", ".html", ".env", ".sh", ""}

PATTERNS: list[tuple[str, re.Pattern]] = [
    ("OpenAI API key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}")),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("AWS secret access key", re.compile(r"(?i)aws_secret_access_key\s*[=:]\s*[\"']?([A-Za-z0-9/+=]{40})")),
]
_KEYS = (r"(?:password|passwd|pwd|api[_-]?key|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|hf[_-]?token)")
ASSIGNMENT = "password/API key assignment"
# A quoted literal (`password = "..."`) counts everywhere.
QUOTED_ASSIGNMENT = re.compile(rf"(?i)\b{_KEYS}[\"']?\s*[:=]\s*[\"']([^\"'\s]{{6,}})[\"']")
# An unquoted one (YAML, .env, prose: `password: ...`) counts outside code files only, where
# `api_key=ep.api_key` is an expression, not a secret.
BARE_ASSIGNMENT = re.compile(rf"(?i)\b{_KEYS}[\"']?\s*[:=]\s*([^\s\"',;)}}\]]{{6,}})")
CODE_SUFFIXES = {".py", ".js", ".ts", ".sh"}
# Values that are obviously not secrets (documentation, code that reads the environment).
_PLACEHOLDER = re.compile(
    r"(?i)^(?:[<{$%(].*|\*+|x{4,}.*|your[_-].*|.*example.*|none|null|true|false|os\.environ.*|"
    r"getenv.*|settings\..*|env\[.*|\.\.\.|changeme|placeholder|redacted|hidden)$")


@dataclass(frozen=True)
class SecretFinding:
    file: str
    line: int
    kind: str
    masked: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind} ({self.masked})"


def mask(value: str) -> str:
    """Enough to recognise the kind, never enough to use it: the prefix before the first
    separator (`hf_`, `sk-proj-`) and the length."""
    m = re.match(r"^((?:sk-(?:proj-|svcacct-|admin-)?)|hf_|AKIA|ASIA)", value)
    prefix = m.group(1) if m else ""
    return f"{prefix}****… ({len(value)} chars)"


def known_secrets(settings: Settings | None) -> list[tuple[str, str]]:
    """(label, value) of the studio's own secrets that are set (short values are skipped:
    a 3-character password would match everywhere)."""
    if settings is None:
        return []
    out = [("the value of HF_TOKEN", settings.hf_token),
           ("the value of OPENAI_API_KEY", settings.generator.api_key),
           ("the judge's API key", settings.judge.api_key),
           ("the admin password", settings.admin_password)]
    return [(label, v) for label, v in out if v and len(v) >= 6]


def scan_text(text: str, file: str, extra: list[tuple[str, str]] = (), *, code: bool | None = None) -> list[SecretFinding]:
    if code is None:
        code = Path(file).suffix.lower() in CODE_SUFFIXES
    found: list[SecretFinding] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        hit_spans: list[tuple[int, int]] = []
        for label, value in extra:
            start = line.find(value)
            if start >= 0:
                found.append(SecretFinding(file, lineno, label, mask(value)))
                hit_spans.append((start, start + len(value)))
        pats = PATTERNS + [(ASSIGNMENT, QUOTED_ASSIGNMENT)] + ([] if code else [(ASSIGNMENT, BARE_ASSIGNMENT)])
        for kind, pat in pats:
            for m in pat.finditer(line):
                value = m.group(1) if m.groups() else m.group(0)
                if kind == ASSIGNMENT and _PLACEHOLDER.match(value):
                    continue
                if any(a <= m.start() < b or m.start() <= a < m.end() for a, b in hit_spans):
                    continue  # already reported as one of the studio's own secrets
                found.append(SecretFinding(file, lineno, kind, mask(value)))
                hit_spans.append(m.span())
    return found


def scan_file(path: Path, rel: str, extra: list[tuple[str, str]] = ()) -> list[SecretFinding]:
    with open(path, "rb") as fh:
        data = fh.read() if path.suffix.lower() in TEXT_SUFFIXES else fh.read(BINARY_SCAN_BYTES)
    return scan_text(data.decode("utf-8", errors="replace"), rel, extra)


def scan_folder(folder: str | Path, settings: Settings | None = None,
                files: list[str] | None = None) -> list[SecretFinding]:
    """Scan `files` (relative paths; default: every file under `folder`)."""
    folder = Path(folder)
    extra = known_secrets(settings)
    rels = files if files is not None else sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    out: list[SecretFinding] = []
    for rel in rels:
        out.extend(scan_file(folder / rel, rel, extra))
    return out
