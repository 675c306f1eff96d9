"""Find secrets before they leave the machine: API keys, Hub tokens, passwords.

Two kinds of evidence:
  * patterns: OpenAI keys (`sk-...`, `sk-proj-...`), Hugging Face tokens (`hf_` + 30 or more
    letters/digits), AWS access key ids and secret keys, and generic `password=` / `api_key=` /
    `secret:` / `token=` assignments with a literal value;
  * the studio's own secrets, whatever they look like: the current values of HF_TOKEN,
    OPENAI_API_KEY (generator and judge) and the admin password, when set.

A finding names the file, the line and the kind of secret, and shows the value masked
(`hf_****… (37 chars)`): the secret itself is never printed, logged or returned.
Every file is scanned whole, in every reading that can hide a secret: as UTF-8, as UTF-16
when it looks like UTF-16 (a BOM, or NULs in every other byte), with JSON `\\uXXXX` escapes
decoded, and binary files byte for byte (a token appended after a safetensors' weights is
still ASCII). Patterns carry their own boundaries (a token glued to `token_` is still a token).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path

from ..settings import Settings

TEXT_SUFFIXES = {".md", ".json", ".jsonl", ".yaml", ".yml", ".txt", ".py", ".jinja", ".cfg", ".toml", ".ini",
                 ".csv", ".html", ".env", ".sh", ""}

PATTERNS: list[tuple[str, re.Pattern]] = [
    # Boundaries are the token alphabets' own, not \b: `_` is a word character, so `\bhf_` misses
    # `token_hf_...`; a letter or digit before `sk-` means a word like "task-..." instead.
    ("OpenAI API key", re.compile(r"(?<![A-Za-z0-9])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}")),
    ("Hugging Face token", re.compile(r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}(?![A-Za-z0-9])")),
    ("AWS access key id", re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])")),
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


_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _unescape_json(line: str) -> str:
    """`\\u0068\\u0066_...` -> `hf_...` (JSON writers escape what they like; a scan must not care)."""
    return _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), line) if "\\u" in line else line


def scan_text(text: str, file: str, extra: list[tuple[str, str]] = (), *, code: bool | None = None) -> list[SecretFinding]:
    if code is None:
        code = Path(file).suffix.lower() in CODE_SUFFIXES
    found: list[SecretFinding] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = _unescape_json(line)
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


def _readings(data: bytes, text_file: bool) -> list[str]:
    """The texts a file can be read as (see the module docstring)."""
    out = [data.decode("utf-8", errors="replace")]
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        out.append(data.decode("utf-16", errors="replace"))
    else:
        sample = data[:4096]
        for enc, nul_at in (("utf-16-le", 1), ("utf-16-be", 0)):
            # ASCII in UTF-16: a NUL in every other byte (mostly)
            if len(sample) >= 8 and sample[nul_at::2].count(0) > 0.6 * (len(sample) // 2):
                out.append(data.decode(enc, errors="replace"))
    if not text_file:
        # Byte for byte: an ASCII token anywhere in a binary file, whatever surrounds it.
        out.append(data.decode("latin-1"))
    return out


def scan_file(path: Path, rel: str, extra: list[tuple[str, str]] = ()) -> list[SecretFinding]:
    data = path.read_bytes()  # the whole file: a token after the first megabyte is still a token
    text_file = path.suffix.lower() in TEXT_SUFFIXES
    found, seen = [], set()
    for text in _readings(data, text_file):
        for f in scan_text(text, rel, extra):
            if (f.kind, f.masked) not in seen:  # one finding per secret, whichever reading saw it
                seen.add((f.kind, f.masked))
                found.append(f)
    return found


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
