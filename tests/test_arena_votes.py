"""The Arena's vote store (real SQLite file, WAL), its statistics and the `arena` CLI."""

from __future__ import annotations

import csv
import json
import sqlite3
import threading

import pytest

from pipeline.arena import stats
from pipeline.arena.votes import VoteStore, votes_path
from pipeline.errors import UserError

from .conftest import write_results


def _row(i: int, vote: str = "right", left: str = "base", right: str = "run-a", voter: str = "anon:1",
         category: str | None = None, prompt_id: str | None = None) -> dict:
    winner = {"left": left, "right": right}.get(vote)
    return {"battle_id": f"b{i}", "model_left": left, "model_right": right, "vote": vote, "winner": winner,
            "conversation_left": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}],
            "conversation_right": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "b"}],
            "turns": 1, "prompt_id": prompt_id, "category": category, "voter_id": voter,
            "started_at": 1000.0 + i, "voted_at": 1001.0 + i, "sampling": {"max_new_tokens": 16}}


def test_store_is_a_wal_sqlite_file_and_a_vote_is_stored_once(settings):
    store = VoteStore(votes_path(settings))
    assert votes_path(settings).is_file() and store.journal_mode() == "wal"
    assert store.record(_row(1)) is True
    assert store.record(_row(1, vote="left")) is False  # the same battle again: ignored, not overwritten
    rows = store.votes()
    assert len(rows) == 1 and rows[0]["vote"] == "right" and rows[0]["winner"] == "run-a"
    assert rows[0]["conversation_left"][0]["content"] == "q1"
    # an independent reader sees the same row through plain sqlite3
    con = sqlite3.connect(votes_path(settings))
    assert con.execute("SELECT model_left, model_right, voter_id FROM votes").fetchall() == [("base", "run-a", "anon:1")]
    con.close()
    with pytest.raises(UserError):
        store.record({**_row(2), "vote": "maybe"})


def test_concurrent_writers_lose_nothing(tmp_path):
    store = VoteStore(tmp_path / "v.sqlite")
    errors = []

    def writer(k):
        try:
            for i in range(25):
                VoteStore(tmp_path / "v.sqlite").record(_row(k * 100 + i, voter=f"anon:{k}"))
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.count() == 200 and len({r["battle_id"] for r in store.votes()}) == 200


def test_traits_need_a_vote_and_export_round_trips(tmp_path):
    store = VoteStore(tmp_path / "v.sqlite")
    with pytest.raises(UserError, match="Vote on the battle first"):
        store.record_traits("nope", {"trait:encouraging": "left"})
    store.record(_row(1))
    store.record(_row(2, vote="tie", category="coaching", prompt_id="ev-005"))
    assert store.record_traits("b1", {"trait:encouraging": "left", "boundary_crossed": None}) == 1
    n = store.export(tmp_path / "out.jsonl", "jsonl")
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert n == 2 and [r["battle_id"] for r in lines] == ["b1", "b2"]
    assert lines[0]["traits"] == {"trait:encouraging": "left"} and lines[1]["category"] == "coaching"
    store.export(tmp_path / "out.csv", "csv")
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert [r["vote"] for r in rows] == ["right", "tie"]
    assert json.loads(rows[0]["conversation_right"])[1]["content"] == "b"
    with pytest.raises(UserError, match="csv or jsonl"):
        store.export(tmp_path / "x", "xml")


# The votes table as schema version 2 wrote it (before cut marks were stored): the migration test
# opens a file made with exactly this, as a database from the previous build would be.
SCHEMA_V2 = """
CREATE TABLE votes (
    battle_id TEXT PRIMARY KEY, model_left TEXT NOT NULL, model_right TEXT NOT NULL,
    vote TEXT NOT NULL CHECK (vote IN ('left', 'right', 'tie', 'both_bad')), winner TEXT,
    conversation_left TEXT NOT NULL, conversation_right TEXT NOT NULL, turns INTEGER NOT NULL,
    prompt_id TEXT, category TEXT, voter_id TEXT NOT NULL, sampling TEXT, started_at REAL NOT NULL,
    voted_at REAL NOT NULL, meta TEXT, address_id TEXT, client_id TEXT);
CREATE INDEX votes_voter ON votes (voter_id);
CREATE TABLE trait_votes (battle_id TEXT NOT NULL REFERENCES votes (battle_id), question TEXT NOT NULL,
    answer TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (battle_id, question));
PRAGMA user_version=2;
"""


def _battle_voted(cut_left: int | None, cut_right: int | None):
    """A real battle through its state machine: one turn, replies cut (or not) by the token limit."""
    from pipeline.arena import Limits, new_battle

    b = new_battle(["base", "run-a"], seed=11)
    b.add_user_turn("Plan my week", Limits())
    b.finish_turn("Start with the report", "Monday: the report, then", cut_left, cut_right)
    b.cast_vote("left")
    return b


def test_cut_marks_are_stored_with_the_vote_and_the_cli_exports_them(settings, tmp_path, monkeypatch, capsys):
    """What the voter saw marked "cut at N tokens" is kept with the vote, read back from the SQLite
    file by `arena export` (JSONL and CSV), so an analysis can set length-cut battles apart."""
    from pipeline.cli import main

    monkeypatch.setenv("TASKMASTER_WORK_DIR", str(settings.work_dir))
    store = VoteStore(votes_path(settings))
    cut, whole = _battle_voted(None, 150), _battle_voted(None, None)
    assert store.record(cut.vote_row("anon:1")) and store.record(whole.vote_row("anon:2"))
    # the file itself holds the cuts (message index in that side's conversation -> tokens)
    con = sqlite3.connect(votes_path(settings))
    assert con.execute("SELECT cut_left, cut_right FROM votes WHERE battle_id=?", (cut.id,)).fetchone() \
        == ("{}", '{"1": 150}')
    con.close()
    assert main(["arena", "export", "--format", "jsonl", "--out", str(tmp_path / "v.jsonl")]) == 0
    by_id = {r["battle_id"]: r for r in map(json.loads, (tmp_path / "v.jsonl").read_text().splitlines())}
    assert (by_id[cut.id]["cut_left"], by_id[cut.id]["cut_right"], by_id[cut.id]["cut"]) == ({}, {"1": 150}, "right")
    assert (by_id[whole.id]["cut_left"], by_id[whole.id]["cut_right"], by_id[whole.id]["cut"]) == ({}, {}, "neither")
    assert main(["arena", "export", "--format", "csv", "--out", str(tmp_path / "v.csv")]) == 0
    rows = {r["battle_id"]: r for r in csv.DictReader((tmp_path / "v.csv").open())}
    assert rows[cut.id]["cut"] == "right" and json.loads(rows[cut.id]["cut_right"]) == {"1": 150}
    assert rows[whole.id]["cut"] == "neither"


def test_a_version_2_votes_file_is_migrated_and_keeps_its_votes(settings, tmp_path, monkeypatch):
    """A votes.sqlite from before the cut marks opens, keeps every vote (their cuts read as not
    recorded, never as "neither"), and new votes on it store their cuts."""
    from pipeline.cli import main

    path = votes_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(SCHEMA_V2)
    old = _row(1)
    con.execute("INSERT INTO votes (battle_id, model_left, model_right, vote, winner, conversation_left, "
                "conversation_right, turns, voter_id, started_at, voted_at, address_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (old["battle_id"], "base", "run-a", "right", "run-a", json.dumps(old["conversation_left"]),
                 json.dumps(old["conversation_right"]), 1, "anon:1", 1000.0, 1001.0, "addr-1"))
    con.execute("INSERT INTO trait_votes VALUES ('b1', 'trait:encouraging', 'right', 1002.0)")
    con.commit()
    con.close()

    store = VoteStore(path)
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 3
    con.close()
    [row] = store.votes()
    assert (row["battle_id"], row["vote"], row["address_id"], row["traits"]) == \
        ("b1", "right", "addr-1", {"trait:encouraging": "right"})
    assert (row["cut_left"], row["cut_right"], row["cut"]) == (None, None, None)
    cut = _battle_voted(9, 12)
    assert store.record(cut.vote_row("anon:2"))
    assert VoteStore(path).get(cut.id)["cut"] == "both"  # opening the migrated file again changes nothing
    monkeypatch.setenv("TASKMASTER_WORK_DIR", str(settings.work_dir))
    assert main(["arena", "export", "--format", "csv", "--out", str(tmp_path / "v.csv")]) == 0
    rows = {r["battle_id"]: r for r in csv.DictReader((tmp_path / "v.csv").open())}
    assert rows["b1"]["cut"] == "" and rows["b1"]["cut_left"] == "" and rows[cut.id]["cut"] == "both"


# ---- statistics ---------------------------------------------------------------------------------

def test_wilson_matches_the_textbook_values():
    p, lo, hi = stats.rate_with_interval(7, 10)
    assert p == 0.7 and lo == pytest.approx(0.3968, abs=1e-4) and hi == pytest.approx(0.8922, abs=1e-4)
    p, lo, hi = stats.rate_with_interval(0, 5)
    assert p == 0 and lo == 0 and hi == pytest.approx(0.4345, abs=1e-4)
    assert stats.rate_with_interval(0, 0) == (None, None, None)


def test_summary_counts_wins_ties_voters_and_categories():
    votes = [_row(i, "right", voter=f"anon:{i % 3}", category="coaching" if i < 6 else "task_management",
                  prompt_id=f"ev-{i}") for i in range(8)]          # run-a (right side) wins 8
    votes += [_row(10 + i, "left", left="run-a", right="base", voter="hf:alice") for i in range(2)]  # run-a wins 2 more
    votes += [_row(20, "right", left="run-a", right="base")]        # base wins 1
    votes += [_row(21, "tie"), _row(22, "both_bad")]
    s = stats.summarize([{**v, "traits": {}} for v in votes])
    row = s["vs_base"][0]
    assert (row["model"], row["wins"], row["losses"], row["ties"], row["both_bad"]) == ("run-a", 10, 1, 1, 1)
    # ties and both-bad count half, as in the evaluation stage's judge A/B
    assert row["win_rate"] == pytest.approx(11 / 13) and row["decisive_win_rate"] == pytest.approx(10 / 11)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(stats.rate_with_interval(11, 13)[1:])
    assert s["voters"]["voters"] == 4 and s["voters"]["votes"] == 13
    cats = {r["category"]: r for r in s["per_category"]}
    assert cats["coaching"]["wins"] == 6 and cats["task_management"]["wins"] == 2
    assert s["bradley_terry"] == []  # only two models: the win rate says it all


def test_bradley_terry_orders_three_models_with_intervals():
    votes = []
    i = 0
    # strong beats base 9/10, mid beats base 6/10, strong beats mid 7/10
    for a, b, wins_a, n in (("strong", "base", 9, 10), ("mid", "base", 6, 10), ("strong", "mid", 7, 10)):
        for k in range(n):
            votes.append(_row(i, "left" if k < wins_a else "right", left=a, right=b))
            i += 1
    bt = stats.bradley_terry(votes, rounds=100)
    order = [r["model"] for r in bt]
    assert order == ["strong", "mid", "base"]
    base = next(r for r in bt if r["model"] == "base")
    assert base["rating"] == pytest.approx(1000)
    for r in bt:
        assert r["ci_low"] <= r["rating"] <= r["ci_high"]
    strong = bt[0]
    assert strong["ci_low"] > 1000  # 16 wins of 20 is clearly better than base


def test_judge_verdicts_come_from_the_evaluation_results(tmp_path):
    write_results(tmp_path / "run-a", pairs=[
        {"id": "ev-1", "winner": "a", "ok": True}, {"id": "ev-2", "winner": "b", "ok": True},
        {"id": "ev-3", "winner": None, "ok": False}])
    assert stats.judge_verdicts(tmp_path) == [
        {"prompt_id": "ev-1", "model_a": "run-a", "model_b": "base", "winner": "run-a"},
        {"prompt_id": "ev-2", "model_a": "run-a", "model_b": "base", "winner": "base"}]


def test_human_judge_agreement_matches_prompt_and_pair():
    votes = [_row(1, "right", prompt_id="ev-1"), _row(2, "left", prompt_id="ev-2"), _row(3, "tie", prompt_id="ev-3"),
             _row(4, "right")]
    judge = [{"prompt_id": "ev-1", "model_a": "run-a", "model_b": "base", "winner": "run-a"},   # agrees
             {"prompt_id": "ev-2", "model_a": "base", "model_b": "run-a", "winner": "run-a"},   # disagrees
             {"prompt_id": "ev-3", "model_a": "base", "model_b": "run-a", "winner": "base"},    # human tie
             {"prompt_id": "ev-9", "model_a": "base", "model_b": "run-a", "winner": "base"}]    # no human vote
    a = stats.human_judge_agreement(votes, judge)
    assert (a["matched"], a["decisive_both"], a["agree"], a["agreement"]) == (3, 2, 1, 0.5)


# ---- CLI ------------------------------------------------------------------------------------------

def test_cli_results_and_export(settings, tmp_path, monkeypatch, capsys):
    from pipeline.cli import main

    monkeypatch.setenv("TASKMASTER_WORK_DIR", str(settings.work_dir))
    assert main(["arena", "results"]) == 2
    assert "no Arena votes yet" in capsys.readouterr().err
    store = VoteStore(votes_path(settings))
    for i in range(7):
        store.record(_row(i, "right"))
    for i in range(3):
        store.record(_row(10 + i, "left"))
    assert main(["arena", "results", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["vs_base"][0]["win_rate"] == pytest.approx(0.7)
    assert main(["arena", "results"]) == 0
    assert "run-a vs base: win rate 70.0% [39.7%, 89.2%] (Wilson 95%)" in capsys.readouterr().out
    assert main(["arena", "export", "--format", "csv", "--out", str(tmp_path / "v.csv")]) == 0
    assert len(list(csv.DictReader((tmp_path / "v.csv").open()))) == 10


# ---- optional Hub sync ------------------------------------------------------------------------------

def test_sync_is_off_unless_configured_and_writes_one_file_per_vote(settings, tmp_path):
    from pipeline.arena.sync import VoteSync

    assert VoteSync.from_env(settings, env={}) is None  # nothing configured: no scheduler, no network

    class FakeScheduler:  # the part of CommitScheduler VoteSync uses
        lock = threading.Lock()

    sync = VoteSync(tmp_path / "sync", scheduler=FakeScheduler())
    path = sync.add(_row(7))
    assert path == tmp_path / "sync" / "votes" / "b7.json"
    assert json.loads(path.read_text())["model_right"] == "run-a"


# ---- preference export (dpo / kto) ------------------------------------------------------------------

def test_cli_exports_every_vote_as_preference_data_from_the_sqlite_file(settings, tmp_path, monkeypatch, capsys):
    from pipeline.cli import main
    from pipeline.evaluation.evalset import load_eval_set
    from pipeline.train.preference import read_pairs, row_kind

    monkeypatch.setenv("TASKMASTER_WORK_DIR", str(settings.work_dir))
    eval_id = load_eval_set(settings.persona_dir() / "eval.yaml")[0].id
    store = VoteStore(votes_path(settings))
    store.record(_row(1, "left", voter="hf:alice"))
    store.record(_row(2, "right", voter="anon:2"))
    store.record(_row(3, "tie"))
    store.record(_row(4, "both_bad"))
    store.record(_row(5, "left", prompt_id=eval_id))  # a held-out eval prompt: not trained on by default
    multi = _row(6, "right")
    multi["conversation_left"] += [{"role": "user", "content": "more"}, {"role": "assistant", "content": "a2"}]
    multi["conversation_right"] += [{"role": "user", "content": "more"}, {"role": "assistant", "content": "b2"}]
    multi["turns"] = 2
    store.record(multi)

    dpo_path, kto_path = tmp_path / "dpo.jsonl", tmp_path / "kto.jsonl"
    assert main(["arena", "export", "--format", "dpo", "--out", str(dpo_path)]) == 0
    said = capsys.readouterr().out
    assert "wrote 3 dpo rows from 3 of 6 votes" in said and "2 ties / both-bad" in said and "1 votes on held-out" in said
    dpo = {r["battle_id"]: r for r in read_pairs([dpo_path])}
    assert set(dpo) == {"b1", "b2", "b6"} and all(row_kind(r) == "dpo" for r in dpo.values())
    assert dpo["b1"]["chosen"][0]["content"] == "a" and dpo["b1"]["rejected"][0]["content"] == "b"  # left won
    assert dpo["b2"]["chosen"][0]["content"] == "b" and dpo["b2"]["chosen_model"] == "run-a"
    assert dpo["b1"]["voter_id"] == "hf:alice" and dpo["b2"]["voter_id"] == "anon:2"
    assert dpo["b6"]["prompt"] == [{"role": "user", "content": "q6"}] and dpo["b6"]["turns"] == 2  # the shared first turn
    assert dpo["b1"]["sampling"] == {"max_new_tokens": 16}

    assert main(["arena", "export", "--format", "kto", "--out", str(kto_path)]) == 0
    assert "wrote 10 kto rows from 5 of 6 votes" in capsys.readouterr().out
    kto = read_pairs([kto_path])
    labels = {(r["battle_id"], r["completion"][0]["content"]): r["label"] for r in kto}
    assert labels[("b1", "a")] is True and labels[("b1", "b")] is False
    assert labels[("b3", "a")] is True and labels[("b3", "b")] is True  # tie: neither is bad
    assert labels[("b4", "a")] is False and labels[("b4", "b")] is False  # both bad
    assert all(row_kind(r) == "kto" and r["voter_id"] and r["battle_id"] for r in kto)

    assert main(["arena", "export", "--format", "dpo", "--out", str(dpo_path), "--include-eval-prompts"]) == 0
    assert "wrote 4 dpo rows" in capsys.readouterr().out
