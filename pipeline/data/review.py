"""Human review: decisions on candidate examples, saved the moment they are made.

Storage is one SQLite file (`state/data/<persona>/review.sqlite`), append-only: every
approve / reject / edit is a new row, committed before the call returns, so closing the
browser (or killing the studio) loses nothing, and the latest row per example wins.

    decisions(seq, example_id, status, note, edited_messages JSON|null, quality JSON|null, decided_at)
    samples(example_id, sample, created_at)       the random sample being reviewed (stable across refreshes)

A queue is the candidate set (a JSONL file) seen through the decisions:
    mode "pending"   every example without a decision whose own review.status is pending
    mode "sample"    a random `fraction` of the whole set (the seed's 10% manual review), drawn once
    mode "all"       every example, in file order
An edit replaces the last assistant turn; it is re-judged at once and saved as approved when
it passes the filter, else as pending with the judge's reasons in the note (so it comes back).
"""

from __future__ import annotations

import json
import random
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .filter import DEFAULT_MIN_SCORE, judge_examples, quality_of, rejection_reasons
from .records import Example
from .workspace import now_iso

MODES = ("pending", "sample", "all")
STATUSES = ("approved", "rejected", "pending")
SAMPLE_FRACTION = 0.10


class ReviewStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._conn()) as c, c:
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("""CREATE TABLE IF NOT EXISTS decisions (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, example_id TEXT NOT NULL, status TEXT NOT NULL,
                note TEXT NOT NULL DEFAULT '', edited_messages TEXT, quality TEXT, decided_at TEXT NOT NULL)""")
            c.execute("CREATE INDEX IF NOT EXISTS decisions_id ON decisions(example_id)")
            c.execute("""CREATE TABLE IF NOT EXISTS samples (
                example_id TEXT NOT NULL, sample TEXT NOT NULL, created_at TEXT NOT NULL,
                PRIMARY KEY (sample, example_id))""")

    def _conn(self) -> sqlite3.Connection:
        # One short-lived connection per call: safe from Gradio's worker threads.
        return sqlite3.connect(self.path, timeout=10)

    def decide(self, example_id: str, status: str, note: str = "", *, edited_messages: list[dict] | None = None,
               quality: dict | None = None) -> None:
        if status not in STATUSES:
            raise UserError(f"status {status!r}: choose approved, rejected or pending")
        with closing(self._conn()) as c, c:
            c.execute("INSERT INTO decisions(example_id, status, note, edited_messages, quality, decided_at) "
                      "VALUES (?, ?, ?, ?, ?, ?)",
                      (example_id, status, note or "", json.dumps(edited_messages) if edited_messages else None,
                       json.dumps(quality) if quality else None, now_iso()))

    def latest(self) -> dict[str, dict]:
        """example_id -> its latest decision (edits carry forward to later approve/reject rows)."""
        out: dict[str, dict] = {}
        with closing(self._conn()) as c:
            rows = c.execute("SELECT example_id, status, note, edited_messages, quality, decided_at FROM decisions "
                             "ORDER BY seq").fetchall()
        for eid, status, note, edited, quality, at in rows:
            prev = out.get(eid, {})
            out[eid] = {"status": status, "note": note, "decided_at": at,
                        "edited_messages": json.loads(edited) if edited else prev.get("edited_messages"),
                        "quality": json.loads(quality) if quality else prev.get("quality")}
        return out

    def history(self, example_id: str) -> list[dict]:
        with closing(self._conn()) as c:
            rows = c.execute("SELECT status, note, decided_at FROM decisions WHERE example_id=? ORDER BY seq",
                             (example_id,)).fetchall()
        return [{"status": s, "note": n, "decided_at": t} for s, n, t in rows]

    def sample(self, ids: list[str], fraction: float = SAMPLE_FRACTION, seed: int | None = None,
               name: str = "default", redraw: bool = False) -> list[str]:
        """The stored sample (drawn now if there is none yet, or when `redraw`)."""
        if not 0 < fraction <= 1:
            raise UserError(f"sample fraction {fraction}: must be in (0, 1], e.g. 0.1 for 10%")
        with closing(self._conn()) as c, c:
            if redraw:
                c.execute("DELETE FROM samples WHERE sample=?", (name,))
            have = [r[0] for r in c.execute("SELECT example_id FROM samples WHERE sample=? ORDER BY rowid", (name,))]
            have = [i for i in have if i in set(ids)]
            if have:
                return have
            k = max(1, round(len(ids) * fraction)) if ids else 0
            drawn = random.Random(seed).sample(list(ids), k)
            c.executemany("INSERT OR IGNORE INTO samples(example_id, sample, created_at) VALUES (?, ?, ?)",
                          [(i, name, now_iso()) for i in drawn])
            return drawn


def apply_decision(ex: Example, d: dict | None) -> Example:
    """The example as the reviewer left it: status, note, edited turns, re-judged quality."""
    if not d:
        return ex
    rec = ex.model_dump()
    if d.get("edited_messages"):
        rec["messages"] = d["edited_messages"]
        rec["source"] = "edited" if ex.source != "curated" else "curated"
        rec.setdefault("provenance", {})
        if isinstance(rec["provenance"], dict):
            rec["provenance"]["edited_from"] = ex.source
    if d.get("quality"):
        rec["quality"] = d["quality"]
    rec["review"] = {**rec.get("review", {}), "status": d["status"], "note": d["note"], "decided_at": d["decided_at"]}
    return Example.model_validate(rec)


@dataclass
class ReviewQueue:
    examples: list[Example]
    store: ReviewStore

    @classmethod
    def open(cls, examples: list[Example], db: Path) -> "ReviewQueue":
        ids = [e.id for e in examples]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise UserError(f"candidate set has duplicate ids {dup[:5]}; ids must be unique for review")
        return cls(examples, ReviewStore(db))

    def current(self) -> list[Example]:
        latest = self.store.latest()
        return [apply_decision(e, latest.get(e.id)) for e in self.examples]

    def ids(self, mode: str = "pending", fraction: float = SAMPLE_FRACTION, seed: int | None = None) -> list[str]:
        if mode not in MODES:
            raise UserError(f"review mode {mode!r}: choose one of {', '.join(MODES)}")
        if mode == "all":
            return [e.id for e in self.examples]
        if mode == "sample":
            return self.store.sample([e.id for e in self.examples], fraction, seed)
        return [e.id for e in self.current() if e.review.status == "pending"]

    def get(self, example_id: str) -> Example:
        for e in self.current():
            if e.id == example_id:
                return e
        raise UserError(f"no example {example_id!r} in the candidate set")

    def next_id(self, mode: str = "pending", after: str | None = None, fraction: float = SAMPLE_FRACTION,
                seed: int | None = None) -> str | None:
        """The next example to look at: the first undecided one in the queue (after `after`)."""
        ids = self.ids(mode, fraction, seed)
        latest = self.store.latest()
        order = ids
        if after in ids:
            k = ids.index(after) + 1
            order = ids[k:] + ids[:k]
        undecided = [i for i in order if i not in latest]
        if undecided:
            return undecided[0]
        return order[0] if (order and mode == "all") else None

    def progress(self, mode: str = "pending", fraction: float = SAMPLE_FRACTION, seed: int | None = None) -> dict:
        cur = {e.id: e for e in self.current()}
        latest = self.store.latest()
        ids = self.ids(mode, fraction, seed) if mode == "sample" else list(cur)
        statuses = [cur[i].review.status for i in ids]
        return {"mode": mode, "total": len(ids), "reviewed": sum(1 for i in ids if i in latest),
                "approved": statuses.count("approved"), "rejected": statuses.count("rejected"),
                "pending": statuses.count("pending")}

    def decide(self, example_id: str, status: str, note: str = "") -> Example:
        self.get(example_id)
        self.store.decide(example_id, status, note)
        return self.get(example_id)

    def edit(self, example_id: str, new_reply: str, judge, min_score: float = DEFAULT_MIN_SCORE,
             note: str = "") -> tuple[Example, list[str]]:
        """Replace the last assistant turn, re-judge it, save. Returns (example, problems); no
        problems means it passed and was approved."""
        ex = self.get(example_id)
        new_reply = (new_reply or "").strip()
        if not new_reply:
            raise UserError("the edited reply is empty; write the reply you want, or reject the example")
        msgs = ex.chat()
        msgs[-1] = {"role": "assistant", "content": new_reply}
        edited = Example.model_validate({**ex.model_dump(), "messages": msgs})
        verdict = judge_examples([edited], judge)[0]
        problems = rejection_reasons(verdict, min_score)
        status = "pending" if problems else "approved"
        full_note = note or ("edited; passed the judge" if not problems else "edited; re-judge: " + "; ".join(problems))
        self.store.decide(example_id, status, full_note, edited_messages=msgs, quality=quality_of(verdict, min_score))
        return self.get(example_id), problems


def render_example(ex: Example) -> str:
    """Markdown for the review card: turns, scores, reasons, provenance."""
    lines = [f"**{ex.id}** · {ex.category} / {ex.scenario} · source `{ex.source}` · status **{ex.review.status}**", ""]
    for m in ex.messages:
        who = {"system": "Context", "user": "User", "assistant": "TaskMaster"}[m.role]
        body = m.content.replace("\n", "  \n")
        lines.append(f"> **{who}:** {body}\n")
    q = ex.quality or {}
    if q:
        traits = ", ".join(f"{k} {v}" for k, v in (q.get("traits") or {}).items())
        lines.append(f"**Score:** {q.get('overall', 'n/a')} ({traits}) · judge `{q.get('judge', '?')}`")
        for v in q.get("violations") or []:
            lines.append(f"- violation **{v.get('type')}**: \"{v.get('quote')}\" {v.get('reason', '')}")
        if q.get("reasons"):
            lines.append(f"\n**Reasons:** {q['reasons']}")
    rej = ex.model_extra.get("rejection")
    if rej:
        lines.append(f"\n**Set aside by {rej.get('stage')}:** " + "; ".join(rej.get("reasons", [])))
    if ex.review.note:
        lines.append(f"\n**Review note:** {ex.review.note}")
    return "\n".join(lines)
