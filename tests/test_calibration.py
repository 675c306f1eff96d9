"""`judge calibrate`: the metric arithmetic, the input checks, and the shipped figures.

The figures asserted here are the ones the README states (measured by the same command).
tests/data/judge_holdout.jsonl is a second, smaller labelled set written for these tests (not
the calibration file the lexicons were developed against), to check the judge on unseen wording.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import UserError
from pipeline.judges.base import Verdict, Violation
from pipeline.judges.calibrate import calibrate, load_cases, score_cases
from pipeline.spec import load_persona

from .conftest import PERSONA_DIR

HOLDOUT = Path(__file__).parent / "data" / "judge_holdout.jsonl"
TYPES = ["condescending", "passive_aggressive", "defensive", "negativity_matching", "generic_ai"]


def _v(id, types=(), overall_traits=2, ok=True):
    if not ok:
        return Verdict.failure(id, "t", "boom")
    return Verdict(id=id, judge="t", traits={f"t{i}": overall_traits for i in range(5)},
                   violations=[Violation(t, "q") for t in types])


def test_score_cases_arithmetic():
    cases = [
        {"id": "1", "violations": ["condescending"], "good": False},             # tp condescending
        {"id": "2", "violations": ["defensive", "generic_ai"], "good": False},   # tp defensive, fn generic_ai
        {"id": "3", "violations": [], "good": True},                             # fp passive_aggressive
        {"id": "4", "violations": [], "good": True},                             # clean, passes
        {"id": "5", "violations": [], "good": False},                            # score 5: filtered correctly
        {"id": "6", "violations": ["condescending"], "good": False},             # judge failure: fn
    ]
    verdicts = [_v("1", ["condescending"]), _v("2", ["defensive"]), _v("3", ["passive_aggressive"]), _v("4"),
                _v("5", overall_traits=1), _v("6", ok=False)]
    r = score_cases(cases, verdicts, TYPES)
    o = r["violations"]["overall"]
    assert (o["tp"], o["fp"], o["fn"]) == (2, 1, 2)
    assert o["precision"] == 0.6667 and o["recall"] == 0.5 and o["f1"] == 0.5714  # 2PR/(P+R) = (2/3)/(7/6)
    assert r["violations"]["per_type"]["condescending"] == {"precision": 1.0, "recall": 0.5, "f1": 0.6667,
                                                            "tp": 1, "fp": 0, "fn": 1}
    # filter: 1 ok (not good, has violation), 2 ok, 3 wrong (good but flagged), 4 ok, 5 ok (5 < 6), 6 wrong (failure)
    assert r["filter"]["correct"] == 4 and r["filter"]["accuracy"] == round(4 / 6, 4)
    assert r["failures"] == [{"id": "6", "error": "boom"}]
    assert {m["id"] for m in r["mistakes"]} == {"2", "3", "6"}


def test_load_cases_reports_every_problem(tmp_path):
    spec = load_persona(PERSONA_DIR).spec
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps({"id": "a", "user": "u", "response": "r", "violations": ["rude"], "good": True}) + "\n" +
                 json.dumps({"id": "b", "user": "u", "violations": [], "good": "yes"}) + "\n")
    with pytest.raises(UserError) as e:
        load_cases(f, spec)
    msg = str(e.value)
    assert "unknown violation type(s) ['rude']" in msg and "missing field 'response'" in msg and "`good` must be" in msg


def test_calibrate_cli_missing_file_is_a_clear_error(capsys):
    assert main(["judge", "calibrate", "--cases", "nope.jsonl"]) == 2
    assert "calibration cases not found: nope.jsonl" in capsys.readouterr().err


def _cli_report(capsys, *args) -> dict:
    assert main(["judge", "calibrate", "--judge", "rubric", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_rubric_judge_meets_the_bar_on_the_shipped_calibration_set(capsys):
    # Named explicitly: `judge calibrate` with no file measures on the judge benchmark's test
    # split (issue 14), where the rubric's lexicons score F1 ~0.4 by design of that benchmark
    # (paraphrased violations). This file is the one the lexicons were developed against.
    r = _cli_report(capsys, "--cases", str(PERSONA_DIR / "judge_calibration.jsonl"))
    assert r["n"] >= 80
    assert r["violations"]["overall"]["f1"] >= 0.85
    assert r["filter"]["accuracy"] >= 0.85
    assert all(m["f1"] >= 0.8 for m in r["violations"]["per_type"].values()), r["violations"]["per_type"]
    assert r["seconds_per_case"] < 0.05  # "well under a second per case"
    assert r["failures"] == []


def test_rubric_judge_on_unseen_holdout_cases(capsys):
    r = _cli_report(capsys, "--cases", str(HOLDOUT))
    assert r["n"] == 40
    assert r["violations"]["overall"]["f1"] >= 0.85
    assert r["filter"]["accuracy"] >= 0.85


def test_calibrate_counts_judge_failures_against_the_judge():
    spec = load_persona(PERSONA_DIR).spec

    class Broken:
        name = "broken"

        def judge_batch(self, items):
            return [Verdict.failure(i.id, self.name, "no endpoint") for i in items]

    cases = load_cases(HOLDOUT, spec)
    r = calibrate(Broken(), cases, spec)
    assert len(r["failures"]) == 40 and r["filter"]["accuracy"] == 0.0
    assert r["violations"]["overall"]["recall"] == 0.0


def test_calibrate_cli_with_the_llm_judge_over_a_real_local_endpoint(tmp_path, monkeypatch, capsys):
    """`judge calibrate --judge llm` end to end: settings from the environment, the project's
    client, a real HTTP server. The scripted judge answers from the labels (a perfect judge)
    except for one case it answers with no JSON: that case must be a judge failure."""
    from pipeline.testing.openai_server import OpenAIServer

    spec = load_persona(PERSONA_DIR).spec
    cases = [json.loads(x) for x in HOLDOUT.read_text().splitlines()[14:24]]
    f = tmp_path / "cases.jsonl"
    f.write_text("".join(json.dumps(c) + "\n" for c in cases))
    by_reply = {c["response"]: c for c in cases}

    def responder(body):
        text = body["messages"][1]["content"]
        reply = text.split("<<<\n")[1].split("\n>>>")[0]
        c = by_reply[reply]
        if c["id"] == cases[0]["id"]:
            return "REASONING: I cannot decide."
        score = 2 if c["good"] else 1
        return "REASONING: per the rubric.\n" + json.dumps({
            "traits": {t: score for t in spec.trait_ids},
            "violations": [{"type": v, "quote": c["response"][:10], "reason": "labelled"} for v in c["violations"]],
            "pattern": {p.id: c["good"] for p in spec.pattern}})

    with OpenAIServer(responder=responder) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("TASKMASTER_JUDGE_MODEL", "judge-model")
        monkeypatch.setenv("TASKMASTER_CACHE_DIR", str(tmp_path / "cache"))
        assert main(["judge", "calibrate", "--judge", "llm", "--cases", str(f), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["judge"]["kind"] == "llm" and r["judge"]["model"] == "judge-model"
    assert [x["id"] for x in r["failures"]] == [cases[0]["id"]]
    assert r["filter"]["correct"] == 9  # every case but the failure
    o = r["violations"]["overall"]
    assert o["fp"] == 0 and o["fn"] == len(cases[0]["violations"])
