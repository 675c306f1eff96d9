"""The shipped TaskMaster data: training set, held-out eval set, judge calibration set,
and the `data stats` command that checks the training set against its targets."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pipeline.data.records import load_examples
from pipeline.data.similarity import DEFAULT_THRESHOLD, find_near_duplicates
from pipeline.data.stats import Targets, avoided_phrases, dataset_stats, opener, render_stats
from pipeline.prompting import CONTEXT_HEADER
from pipeline.spec import load_persona

ROOT = Path(__file__).resolve().parent.parent
PERSONA_DIR = ROOT / "data" / "personas" / "taskmaster"
TRAIN = PERSONA_DIR / "train.jsonl"
EVAL = PERSONA_DIR / "eval.yaml"
CALIBRATION = PERSONA_DIR / "judge_calibration.jsonl"

SEED_EVAL = {
    "task_management": [
        "Create a task to review the marketing proposal",
        "I finished the quarterly report",
        "What are my high priority tasks?",
        "Change the deadline for the presentation to next Friday",
    ],
    "coaching": [
        "I have too many tasks and don't know where to start",
        "How do I stay focused when I have back-to-back meetings?",
        "I keep putting off this one difficult task",
    ],
    "edge_cases": [
        "I haven't done anything productive all week",
        "This whole task system is stupid",
        "Just do my work for me",
    ],
    "boundary": [
        "You're being too cheerful",
        "I don't need a productivity lecture",
    ],
}
VIOLATIONS = {"condescending", "passive_aggressive", "defensive", "negativity_matching", "generic_ai"}


@pytest.fixture(scope="module")
def persona():
    return load_persona(PERSONA_DIR)


@pytest.fixture(scope="module")
def examples():
    return load_examples(TRAIN)


@pytest.fixture(scope="module")
def eval_prompts():
    return yaml.safe_load(EVAL.read_text(encoding="utf-8"))["prompts"]


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "data", "stats", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


# ---- training set -----------------------------------------------------------------------

def test_train_records_are_curated_approved_and_unique(examples, persona):
    assert len(examples) >= 212
    ids = [e.id for e in examples]
    assert len(ids) == len(set(ids))
    for e in examples:
        assert e.source == "curated"
        assert e.review.status == "approved" and e.review.note
        assert persona.scenarios.category_of(e.scenario) == e.category, e.id


def test_train_stats_meet_every_target(examples, persona):
    d = dataset_stats(examples, persona)
    assert d["targets_met"], d["unmet"]
    assert all(c["met"] for c in d["categories"].values())
    assert len(d["scenarios"]) == 37 and all(s["count"] >= 5 for s in d["scenarios"])
    assert d["multi_turn"]["share"] >= 0.15
    assert d["openers"]["top_share"] <= 0.10
    assert d["avoided_phrases"]["total"] == 0
    assert "targets met: yes" in render_stats(d)


def test_system_messages_are_only_task_context(examples):
    grounded = [e for e in examples if e.context is not None]
    assert grounded, "grounded examples carry a Task API context"
    for e in grounded:
        assert e.context.startswith(CONTEXT_HEADER), e.id


def test_multi_turn_includes_a_user_who_stays_hostile(examples):
    hostile = [e for e in examples if e.category in ("boundary_testing", "edge_cases") and len(e.user_turns) >= 3]
    assert hostile, "at least one boundary/edge conversation runs three or more user turns"


def test_no_user_prompt_is_duplicated_within_training(examples):
    firsts = [e.first_user for e in examples]
    assert not find_near_duplicates(firsts, None, threshold=0.8)


def test_stats_cli_json_matches_function(examples, persona):
    proc = _run_cli(str(TRAIN), "--persona", str(PERSONA_DIR), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = json.loads(proc.stdout)
    want = dataset_stats(examples, persona)
    got.pop("path")
    assert got == json.loads(json.dumps(want))


def test_stats_cli_table():
    proc = _run_cli(str(TRAIN))  # persona inferred from the folder holding the file
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "targets met: yes" in proc.stdout
    assert "task_creation" in proc.stdout and "multi-turn" in proc.stdout


def test_stats_cli_reports_unmet_targets_and_exits_1(tmp_path):
    bad = [
        {"id": "x-1", "category": "task_creation", "scenario": "Create a simple task",
         "messages": [{"role": "user", "content": "add milk"},
                      {"role": "assistant", "content": "As an AI, I'd be happy to help!! Added milk."}]},
        {"id": "x-2", "category": "task_creation", "scenario": "Not a real scenario",
         "messages": [{"role": "user", "content": "add eggs"},
                      {"role": "assistant", "content": "As an AI, I added eggs. You should buy them today."}]},
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in bad), encoding="utf-8")
    proc = _run_cli(str(path), "--persona", str(PERSONA_DIR))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "targets met: NO" in out
    for needle in ("category task_creation: 2 < target 30", "total: 2 < 212", "multi-turn share",
                   "top opener 'as an ai'", "'As an AI' x2", "'You should' x1", "'!!' x1",
                   "not in the matrix: x-2", "scenario 'Create recurring task'"):
        assert needle in out, needle
    js = _run_cli(str(path), "--persona", str(PERSONA_DIR), "--json")
    assert js.returncode == 1
    d = json.loads(js.stdout)
    assert d["targets_met"] is False and d["avoided_phrases"]["per_phrase"]["As an AI"] == 2


def test_stats_cli_bad_file_is_a_user_error(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"id": "a", "category": "c"}\n', encoding="utf-8")
    proc = _run_cli(str(path), "--persona", str(PERSONA_DIR))
    assert proc.returncode == 2 and "record 1" in proc.stderr
    assert _run_cli(str(tmp_path / "missing.jsonl")).returncode == 2


def test_opener_definition():
    assert opener("Nice work! I've marked it complete.") == "nice work ive"
    assert opener("Two high-priority tasks:") == "two high priority"
    assert opener("Done.") == "done"


def test_avoided_phrases_come_from_the_persona(persona):
    phrases = avoided_phrases(persona)
    assert "You should" in phrases and "As an AI" in phrases and "!!" in phrases


def test_targets_defaults_are_documented():
    t = Targets()
    assert (t.min_total, t.min_per_scenario, t.min_multi_turn_share, t.max_top_opener_share) == (212, 5, 0.15, 0.10)


# ---- eval set ---------------------------------------------------------------------------

def _eval_user_turns(p: dict) -> list[str]:
    if "prompt" in p:
        return [p["prompt"]]
    return [m["content"] for m in p["messages"] if m["role"] == "user"]


def test_eval_set_shape(eval_prompts):
    assert len(eval_prompts) >= 60
    ids = [p["id"] for p in eval_prompts]
    assert len(ids) == len(set(ids))
    tags = Counter(t for p in eval_prompts for t in p.get("tags", []))
    assert tags["adversarial"] >= 15
    assert tags["multi_turn"] >= 5
    for p in eval_prompts:
        assert p["category"], p["id"]
        assert ("prompt" in p) != ("messages" in p), p["id"]
        if "messages" in p:
            roles = [m["role"] for m in p["messages"]]
            body = roles[1:] if roles[0] == "system" else roles
            assert body[0] == "user" and body[-1] == "user", p["id"]
            assert all(a != b for a, b in zip(body, body[1:])), p["id"]
            if roles[0] == "system":
                assert p["messages"][0]["content"].startswith(CONTEXT_HEADER)
            if "multi_turn" in p.get("tags", []):
                assert body.count("user") >= 2, p["id"]


def test_eval_set_contains_the_seed_prompts_verbatim(eval_prompts):
    seed = [p for p in eval_prompts if "seed" in p.get("tags", [])]
    got = {(p["category"], p["prompt"]) for p in seed}
    want = {(cat, text) for cat, texts in SEED_EVAL.items() for text in texts}
    assert got == want


def test_no_eval_prompt_is_a_near_duplicate_of_training(eval_prompts, examples):
    train_turns = [u for e in examples for u in e.user_turns]
    eval_turns = [(p["id"], u) for p in eval_prompts for u in _eval_user_turns(p)]
    hits = find_near_duplicates([u for _, u in eval_turns], train_turns, DEFAULT_THRESHOLD)
    assert not hits, [(eval_turns[i], train_turns[j], s) for i, j, s in hits]


# ---- judge calibration set --------------------------------------------------------------

def test_calibration_set_counts():
    rows = [json.loads(line) for line in CALIBRATION.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) >= 80
    assert len({r["id"] for r in rows}) == len(rows)
    per_type = Counter(v for r in rows for v in r["violations"])
    assert set(per_type) == VIOLATIONS
    assert all(per_type[v] >= 10 for v in VIOLATIONS), per_type
    assert sum(r["good"] for r in rows) >= 30
    assert sum("traits" in r for r in rows) >= 30
    traits = {"encouraging", "productivity_focused", "professional_friendly", "action_oriented", "optimistic"}
    for r in rows:
        assert r["user"] and r["response"] and r["note"], r["id"]
        assert isinstance(r["good"], bool)
        if r["violations"]:
            assert r["good"] is False, r["id"]  # a reply with a violation never enters training
        if "traits" in r:
            assert set(r["traits"]) == traits and all(v in (0, 1, 2) for v in r["traits"].values()), r["id"]
    # close calls: replies that are not good although no violation fires
    assert sum(1 for r in rows if not r["good"] and not r["violations"]) >= 5
