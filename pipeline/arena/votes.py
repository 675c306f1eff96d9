"""The Arena's votes: one SQLite file (WAL mode) in the studio's state folder.

    <state_dir>/arena/votes.sqlite     (on a Space with storage: /data/taskmaster/state/arena/)

One row per battle (`battle_id` is the primary key, so a vote sent twice is stored once):
both model ids, which side each was on, both whole conversations, the vote, the voter's
pseudonymous id, the eval-set prompt id and category when the prompt came from there, the
sampling settings and timestamps, and which replies the token limit cut (the voter saw them
marked "cut at N tokens"; a vote between cut replies may be about length, not the persona).
Optional per-trait answers go to `trait_votes`.

Older files are migrated in place when opened (columns added, votes kept): a version-2 vote has
no record of cuts, so its `cut_left` / `cut_right` read as None ("not recorded"), never as {}.

WAL lets the results view read while voters write; each call opens its own short-lived
connection (Gradio serves events from a thread pool; sqlite3 connections are per-thread), and
`busy_timeout` makes concurrent writers wait instead of failing.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from ..errors import UserError

VOTES = ("left", "right", "tie", "both_bad")
SCHEMA_VERSION = 3  # 2: address_id, client_id (vote caps across sessions); 3: cut_left, cut_right
SCHEMA = """
CREATE TABLE IF NOT EXISTS votes (
    battle_id     TEXT PRIMARY KEY,
    model_left    TEXT NOT NULL,
    model_right   TEXT NOT NULL,
    vote          TEXT NOT NULL CHECK (vote IN ('left', 'right', 'tie', 'both_bad')),
    winner        TEXT,            -- the winning model id; NULL for tie / both_bad
    conversation_left  TEXT NOT NULL,   -- JSON list of {role, content} (the persona system prompt excluded)
    conversation_right TEXT NOT NULL,
    turns         INTEGER NOT NULL,
    prompt_id     TEXT,            -- eval-set prompt id, when the first prompt was drawn from it
    category      TEXT,
    voter_id      TEXT NOT NULL,   -- 'hf:<username>' or 'anon:<salted hash of the session>'
    sampling      TEXT,            -- JSON SamplingConfig
    started_at    REAL NOT NULL,
    voted_at      REAL NOT NULL,
    meta          TEXT,            -- JSON: persona, base model, app version...
    address_id    TEXT,            -- salted hash of the client address (never the address itself)
    client_id     TEXT,            -- salted hash of address + user agent: one browser across sessions
    -- JSON {message index in conversation_<side>: tokens}: the replies the token limit cut, as
    -- marked to the voter; {} none was cut; NULL a vote stored before version 3 (not recorded)
    cut_left      TEXT,
    cut_right     TEXT
);
CREATE INDEX IF NOT EXISTS votes_voter ON votes (voter_id);
CREATE TABLE IF NOT EXISTS trait_votes (
    battle_id  TEXT NOT NULL REFERENCES votes (battle_id),
    question   TEXT NOT NULL,
    answer     TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (battle_id, question)
);
"""
COLUMNS = ("battle_id", "model_left", "model_right", "vote", "winner", "conversation_left", "conversation_right",
           "turns", "prompt_id", "category", "voter_id", "sampling", "started_at", "voted_at", "meta",
           "address_id", "client_id", "cut_left", "cut_right")
JSON_COLUMNS = ("conversation_left", "conversation_right", "sampling", "meta", "cut_left", "cut_right")
CUT_COLUMNS = ("cut_left", "cut_right")
# Columns added after version 1, in order: an older file gets them by ALTER TABLE (its votes kept).
ADDED_COLUMNS = ("address_id", "client_id", "cut_left", "cut_right")


def cut_sides(cut_left: dict | None, cut_right: dict | None) -> str | None:
    """Which side's replies the token limit cut: 'left', 'right', 'both' or 'neither';
    None for a vote stored before the cuts were recorded (schema version 2 and older)."""
    if cut_left is None and cut_right is None:
        return None
    sides = [side for side, cuts in (("left", cut_left), ("right", cut_right)) if cuts]
    return "both" if len(sides) == 2 else (sides[0] if sides else "neither")


def votes_path(settings) -> Path:
    return Path(settings.state_dir) / "arena" / "votes.sqlite"


class VoteStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(SCHEMA)
            have = {r[1] for r in con.execute("PRAGMA table_info(votes)")}
            for col in ADDED_COLUMNS:  # an older file: add the columns, keep its votes
                if col not in have:
                    con.execute(f"ALTER TABLE votes ADD COLUMN {col} TEXT")
            con.execute("CREATE INDEX IF NOT EXISTS votes_address ON votes (address_id, voted_at)")
            con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            con.commit()

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA busy_timeout=30000")
        con.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; a power cut can lose the last commit only
        return con

    def journal_mode(self) -> str:
        with closing(self._connect()) as con:
            return con.execute("PRAGMA journal_mode").fetchone()[0]

    # ---- writing ----------------------------------------------------------------------------
    def record(self, row: dict) -> bool:
        """Store one battle's vote; False (and nothing changed) if this battle already has one."""
        if row.get("vote") not in VOTES:
            raise UserError(f"vote must be one of {', '.join(VOTES)}")
        values = {c: row.get(c) for c in COLUMNS}
        for c in JSON_COLUMNS:
            if values[c] is not None and not isinstance(values[c], str):
                values[c] = json.dumps(values[c], ensure_ascii=False)
        values["voted_at"] = values["voted_at"] or time.time()
        with closing(self._connect()) as con:
            cur = con.execute(
                f"INSERT OR IGNORE INTO votes ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                [values[c] for c in COLUMNS])
            con.commit()
            return cur.rowcount == 1

    def record_traits(self, battle_id: str, answers: dict[str, str]) -> int:
        """Store (or replace) per-trait answers for a battle that has a vote; returns how many."""
        answers = {q: a for q, a in answers.items() if a}
        with closing(self._connect()) as con:
            if con.execute("SELECT 1 FROM votes WHERE battle_id=?", (battle_id,)).fetchone() is None:
                raise UserError("Vote on the battle first; the trait questions come after the vote.")
            now = time.time()
            con.executemany("INSERT OR REPLACE INTO trait_votes VALUES (?, ?, ?, ?)",
                            [(battle_id, q, a, now) for q, a in answers.items()])
            con.commit()
        return len(answers)

    # ---- reading ----------------------------------------------------------------------------
    def votes(self) -> list[dict]:
        with closing(self._connect()) as con:
            rows = [dict(r) for r in con.execute("SELECT * FROM votes ORDER BY voted_at, battle_id")]
            traits: dict[str, dict] = {}
            for r in con.execute("SELECT battle_id, question, answer FROM trait_votes"):
                traits.setdefault(r["battle_id"], {})[r["question"]] = r["answer"]
        for r in rows:
            for c in JSON_COLUMNS:
                if r[c] is not None:
                    r[c] = json.loads(r[c])
            for c in CUT_COLUMNS:  # JSON object keys are text; the message index is a number
                if r[c] is not None:
                    r[c] = {int(i): int(n) for i, n in r[c].items()}
            r["cut"] = cut_sides(r["cut_left"], r["cut_right"])
            r["traits"] = traits.get(r["battle_id"], {})
        return rows

    def count_since(self, column: str, value: str, since: float) -> int:
        """Votes with `column` (voter_id, address_id or client_id) = value, cast at or after `since`."""
        if column not in ("voter_id", "address_id", "client_id"):
            raise ValueError(column)
        with closing(self._connect()) as con:
            return con.execute(f"SELECT COUNT(*) FROM votes WHERE {column}=? AND voted_at>=?",
                               (value, since)).fetchone()[0]

    def count(self) -> int:
        with closing(self._connect()) as con:
            return con.execute("SELECT COUNT(*) FROM votes").fetchone()[0]

    def get(self, battle_id: str) -> dict | None:
        return next((r for r in self.votes() if r["battle_id"] == battle_id), None)

    # ---- export -----------------------------------------------------------------------------
    def export_jsonl(self, out: str | Path) -> int:
        rows = self.votes()
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        return len(rows)

    def export_csv(self, out: str | Path) -> int:
        """One row per vote; conversations, sampling, meta, cuts and trait answers as JSON text cells
        (`cut`: left / right / both / neither, empty for a vote stored before cuts were recorded)."""
        rows = self.votes()
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=[*COLUMNS, "cut", "traits"])
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
                        for k, v in r.items()})
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(buf.getvalue(), encoding="utf-8")
        return len(rows)

    def export(self, out: str | Path, fmt: str) -> int:
        if fmt == "csv":
            return self.export_csv(out)
        if fmt == "jsonl":
            return self.export_jsonl(out)
        raise UserError(f"export format must be csv or jsonl, not {fmt!r}")
