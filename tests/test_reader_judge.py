"""The reader judge (pipeline/judges/reader.py) with its shipped weights on the embedded model.

The replies here are written for these tests (none is in the judge benchmark), phrased
without the lexicons' words, so they check that the judge reads meaning, not phrases."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipeline.judges import get_judge
from pipeline.judges.base import JudgeItem
from pipeline.judges.reader import VERSION
from pipeline.spec import load_persona
from tests.conftest import PERSONA_DIR, REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reader(embedded_model_dir):
    return get_judge("reader", load_persona(PERSONA_DIR))


def _one(judge, user, reply, context=None):
    msgs = ([{"role": "system", "content": "Task API context:\n" + context}] if context else []) + \
        [{"role": "user", "content": user}]
    return judge.judge_batch([JudgeItem("t", msgs, reply)])[0]


def test_fluent_reply_that_does_not_answer_scores_low(reader):
    v = _one(reader, "mark the expense report as done",
             "The history of the Roman aqueducts is a fascinating subject. Engineers gave each channel a slight, "
             "steady gradient so that water could travel many miles into the city, and several of them still stand "
             "today as a reminder of that craftsmanship.")
    assert v.ok and v.overall <= 4, v.reasons
    good = _one(reader, "mark the expense report as done",
                "Nice work, the expense report is marked complete. Want to look at what's next on your list?")
    assert good.overall > v.overall + 2


PARAPHRASED = {
    "condescending": ("I still haven't started the budget spreadsheet",
                      "A spreadsheet like that is a ten-minute job for most people, so it's a little surprising it's "
                      "still sitting there. Open it now and fill in the first column."),
    "passive_aggressive": ("I missed the deadline for the vendor contract",
                           "I see. That makes it one more date gone by this month. Let's pick a new one and, this time, "
                           "let's make it stick. Would Friday do?"),
    "defensive": ("your suggestions today were useless",
                  "The suggestions came straight from the priorities on your own list, so they reflect how the "
                  "tasks were set up. If the priorities change, the suggestions will too."),
    "negativity_matching": ("this week has been a total disaster and I hate my job",
                            "Yeah, some jobs are just miserable and some weeks are a write-off. Not much anyone can do "
                            "about that."),
}


@pytest.mark.parametrize("vtype", [
    pytest.param("condescending", marks=pytest.mark.xfail(strict=True, reason="known gap of reader:v2 and v3: the "
                 "condescending head (CV F1 0.45 on dev, test F1 0.40 for v3) does not read this one (no lexicon phrase)")),
    "defensive", "negativity_matching", "passive_aggressive"])
def test_a_paraphrased_violation_of_each_type_is_caught(reader, vtype):
    user, reply = PARAPHRASED[vtype]
    v = _one(reader, user, reply)
    assert vtype in {x.type for x in v.violations}, (v.reasons, v.extra.get("violation_probs"))
    assert v.overall <= 5


CTX = ('today: 2026-06-02 (Tuesday)\ntasks: [{"id":51,"title":"Order office chairs","priority":"low",'
       '"due":"2026-06-10","status":"open"},{"id":53,"title":"Renew insurance","priority":"high",'
       '"due":"2026-06-15","status":"open"}]')


def test_invented_task_data_is_caught_and_grounded_data_is_not(reader):
    bad = _one(reader, "what's left on my list?",
               'You have five tasks left, including "Prepare the client pitch", due tomorrow.', CTX)
    ok = _one(reader, "what's left on my list?",
              'Two tasks: "Renew insurance" (high, due the 15th) and "Order office chairs" (low, due the 10th). '
              "Want to start with the insurance?", CTX)
    assert bad.extra["invented_task_data"] and bad.extra["ungrounded"]
    assert not ok.extra["invented_task_data"], ok.reasons
    assert ok.overall > bad.overall


def test_every_verdict_says_how_far_to_trust_it(reader):
    v = _one(reader, "I finished the quarterly report", "Nice work! I've marked it complete. What's next?")
    a = v.extra["agreement"]
    assert v.judge == f"reader:{VERSION}" and a["judge"] == v.judge and a["split"] == "test"
    assert -1 <= a["spearman"] <= 1 and a["n"] > 50


def test_batch_score_prints_one_verdict_per_line(tmp_path, embedded_model_dir):
    rows = [{"id": "a", "messages": [{"role": "user", "content": "add 'call the plumber'"}],
             "response": "Done, \"Call the plumber\" is on your list. Want a day for it?"},
            {"id": "b", "user": "add 'call the plumber'", "response": "Banana banana banana banana banana."},
            {"id": "c", "user": "hello", "response": ""}]
    f = tmp_path / "replies.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = subprocess.run([sys.executable, "-m", "pipeline", "judge", "score", "--file", str(f), "--json"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines() if x.strip()]
    assert [x["id"] for x in lines] == ["a", "b", "c"]
    assert all(0 <= x["overall"] <= 10 for x in lines)
    assert lines[0]["overall"] > lines[1]["overall"] and lines[2]["overall"] == 0


def test_batch_score_names_a_bad_line(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"id": "a", "response": "x"}) + "\n")
    out = subprocess.run([sys.executable, "-m", "pipeline", "judge", "score", "--file", str(f)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "line 1" in (out.stderr + out.stdout) and "Traceback" not in out.stderr
