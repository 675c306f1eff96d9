"""Agreement metrics (pipeline/judges/agreement.py) on a tiny labelled file, every figure by hand,
and the grounding checks (pipeline/judges/grounding.py)."""

from __future__ import annotations

import json

import pytest

from pipeline.judges.agreement import agreement, kendall, linear_fit_mae, pairwise_accuracy, spearman
from pipeline.judges.base import Verdict, Violation
from pipeline.judges.grounding import invented, ungrounded_claims

from tests.conftest import PERSONA_DIR

TYPES = ["condescending", "passive_aggressive", "defensive", "negativity_matching", "generic_ai"]


@pytest.fixture(scope="module")
def persona():
    from pipeline.spec import load_persona

    return load_persona(PERSONA_DIR)


def _labelled():
    u = lambda t: [{"role": "user", "content": t}]  # noqa: E731
    return [
        {"id": "A", "prompt_id": "p1", "messages": u("x"), "response": "a", "overall": 9, "coherence": 2,
         "violations": [], "invented_task_data": False},
        {"id": "B", "prompt_id": "p1", "messages": u("x"), "response": "b", "overall": 3, "coherence": 0,
         "violations": ["condescending"], "invented_task_data": True},
        {"id": "C", "prompt_id": "p2", "messages": u("y"), "response": "c", "overall": 6, "coherence": 2,
         "violations": ["defensive"], "invented_task_data": False},
        {"id": "D", "prompt_id": "p2", "messages": u("y"), "response": "d", "overall": 5, "coherence": 1,
         "violations": [], "invented_task_data": True},
    ]


def _verdicts():
    def v(i, score, types=(), inv=False):
        return Verdict(id=i, judge="fixed:v0", traits={}, score=score,
                       violations=[Violation(t, "q") for t in types], extra={"invented_task_data": inv})
    return [v("A", 8), v("B", 4, ["condescending"], True), v("C", 2, [], True), v("D", 7, ["defensive"])]


def test_agreement_on_a_tiny_labelled_file_matches_hand_computation():
    rep = agreement(_labelled(), _verdicts(), TYPES)
    # ranks: labels 9,3,6,5 -> 4,1,3,2; judge 8,4,2,7 -> 4,2,1,3; sum d^2 = 6; rho = 1 - 6*6/(4*15) = 0.4
    assert rep["spearman"] == pytest.approx(0.4)
    # 6 pairs: concordant AB AC AD BD, discordant BC CD -> (4-2)/6
    assert rep["kendall"] == pytest.approx(1 / 3, abs=1e-4)
    # same-prompt pairs: (A,B) 9>3 and 8>4 right; (C,D) 6>5 but 2<7 wrong
    assert rep["pairwise"] == {"accuracy": 0.5, "pairs": 2, "min_gap": 1.0}
    # label ~ a*judge + b: a = 10.25/22.75, b = 5.75 - a*5.25; |residuals| sum 7.45055 / 4
    assert rep["mae_linear"]["a"] == pytest.approx(0.4505, abs=1e-4)
    assert rep["mae_linear"]["b"] == pytest.approx(3.3846, abs=1e-4)
    assert rep["mae_linear"]["mae"] == pytest.approx(1.8626, abs=1e-4)
    per = rep["violations"]["per_type"]
    assert (per["condescending"]["tp"], per["condescending"]["fp"], per["condescending"]["fn"]) == (1, 0, 0)
    assert (per["defensive"]["tp"], per["defensive"]["fp"], per["defensive"]["fn"]) == (0, 1, 1)
    assert per["defensive"]["f1"] == 0.0
    assert rep["violations"]["overall"]["precision"] == 0.5 and rep["violations"]["overall"]["recall"] == 0.5
    assert (rep["invented"]["tp"], rep["invented"]["fp"], rep["invented"]["fn"]) == (1, 1, 1)
    assert rep["incoherent_mean"] == {"mean": 4.0, "n": 1}
    assert rep["top_mean"] == {"mean": 8.0, "n": 1}


def test_rank_helpers_handle_ties_and_gaps():
    assert spearman([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(0.8660, abs=1e-4)  # tied ranks 1.5, 1.5, 3
    assert kendall([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    acc, n = pairwise_accuracy(["p", "p", "p"], [5, 5, 1], [9, 2, 2.5])
    assert n == 2 and acc == pytest.approx(0.75)  # (0,1): judge tie -> half; (0,2) right; (1,2) gap 0.5 skipped
    mae, a, b = linear_fit_mae([1, 2, 3], [2, 4, 6])
    assert (mae, a, b) == (pytest.approx(0.0), pytest.approx(2.0), pytest.approx(0.0))


CTX = {"role": "system", "content": 'Task API context:\ntoday: 2026-06-02 (Tuesday)\ntasks: ['
       '{"id":51,"title":"Order office chairs","priority":"low","due":"2026-06-10","status":"open"},'
       '{"id":52,"title":"Send newsletter","priority":"medium","due":"2026-06-05","status":"open"},'
       '{"id":53,"title":"Renew insurance","priority":"high","due":"2026-06-15","status":"open"}]'}


def _conv(user, ctx=True):
    return ([CTX] if ctx else []) + [{"role": "user", "content": user}]


@pytest.mark.parametrize("reply,kind", [
    ("Done. You now have four tasks left, so keep going.", "count"),
    ('Marked complete. Next is "Prepare the client pitch", due tomorrow.', "title"),
    ("Done, the insurance renewal is due on the 19th.", "date"),
    ("Your call with the broker is at 3pm.", "time,record"),  # the time and the call itself
    ("Done. I've moved it before your meeting with Sam.", "record"),
])
def test_invented_task_data_is_caught_with_the_claim_quoted(reply, kind):
    claims = ungrounded_claims(_conv("mark the chairs and the newsletter as done"), reply)
    assert [c.kind for c in claims] == kind.split(",")
    assert all(c.quote.lower().strip('"') in reply.lower() for c in claims)


def test_a_meeting_the_user_mentions_is_not_invented():
    assert ungrounded_claims(_conv("move the chairs task before my meeting with Sam"),
                             "Done, it's now before your meeting with Sam.") == []


@pytest.mark.parametrize("reply", [
    'Done: "Order office chairs" and "Send newsletter" are both complete. That leaves "Renew insurance", '
    "high priority and due the 15th. Want to set aside time for it this week?",
    "Both marked complete, and you have one task left: the insurance renewal, due Monday the 15th.",
    "Nice work! Want to move the insurance renewal to Thursday?",  # a date in a question is a proposal
])
def test_grounded_replies_are_not_flagged(reply):
    assert ungrounded_claims(_conv("mark the chairs and the newsletter as done"), reply) == []


def test_without_context_a_list_of_your_tasks_is_invented_but_creating_the_asked_task_is_not():
    assert invented(_conv("list all my tasks", ctx=False), 'Here is your list: "Finish the report", "Call Sam".')
    assert not invented(_conv("add 'renew passport' to my list", ctx=False),
                        'Done, "Renew passport" is on your list. Want a due date on it?')
    # the user's own date is grounded, and so is the day before it (a derived proposal)
    assert not invented(_conv("new task: grant application due the 20th", ctx=False),
                        "Added the grant application, due the 20th.")


def test_labelled_file_problems_are_reported_together(tmp_path, persona):
    from pipeline.errors import UserError
    from pipeline.judges.bench import load_labelled_file

    p = tmp_path / "l.jsonl"
    p.write_text(json.dumps({"id": "a", "messages": [], "response": "x", "overall": 12}) + "\n"
                 + json.dumps({"id": "b", "response": "x", "overall": 5, "violations": ["rude"]}) + "\n")
    with pytest.raises(UserError) as e:
        load_labelled_file(p, persona.spec)
    msg = str(e.value)
    assert "outside 1-10" in msg and "missing field 'messages'" in msg and "unknown violation type" in msg


def test_cohen_kappa_by_hand():
    from pipeline.judges.agreement import cohen_kappa

    # 10 items: agree on 7 (4 yes-yes, 3 no-no); a says yes 6 times, b 5 times
    a = [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    b = [1, 1, 1, 1, 0, 0, 1, 0, 0, 0]
    # po = 0.7; pe = 0.6*0.5 + 0.4*0.5 = 0.5; kappa = 0.2/0.5
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_llm_judge_on_a_local_url_needs_no_key_and_gets_the_same_calibration_path(persona, tmp_path):
    """A served model (`python -m pipeline serve`, vLLM, Ollama) behind a local base URL: no API
    key, the same agreement figures, and order consistency of its pairwise verdicts."""
    from pipeline.judges import get_judge, get_pairwise
    from pipeline.judges.agreement import measure, measure_pairwise
    from pipeline.settings import Settings
    from pipeline.testing.openai_server import OpenAIServer

    def responder(body):
        text = body["messages"][-1]["content"]
        if body["messages"][0]["content"].startswith("You compare two replies"):
            return json.dumps({"winner": "1"})  # always the first shown: a position-biased judge
        good = "Nice work" in text
        return "REASONING: x\n" + json.dumps({"traits": {t: 2 if good else 0 for t in persona.spec.trait_ids},
                                              "violations": [], "pattern": {p.id: good for p in persona.spec.pattern}})

    u = [{"role": "user", "content": "I finished the report"}]
    rows = [{"id": "g", "prompt_id": "p", "messages": u, "response": "Nice work! Marked complete.", "overall": 9,
             "violations": []},
            {"id": "b", "prompt_id": "p", "messages": u, "response": "ok.", "overall": 3, "violations": []}]
    with OpenAIServer(responder=responder) as srv:
        settings = Settings.from_env(env={"TASKMASTER_JUDGE_BASE_URL": srv.base_url, "TASKMASTER_JUDGE_MODEL": "local"},
                                     work_dir=tmp_path)
        assert settings.judge.api_key is None and settings.judge.configured
        judge = get_judge("llm", persona, settings, cache_dir=tmp_path)
        rep = measure(judge, rows, persona.spec)
        pw = measure_pairwise(get_pairwise("llm", persona, settings, cache_dir=tmp_path), rows)
    assert rep["judge"]["kind"] == "llm" and rep["pairwise"]["accuracy"] == 1.0 and rep["failures"] == 0
    # "always the first shown" flips with the order: inconsistent, so a tie, never a win
    assert pw["pairs"] == 1 and pw["order_consistency"] == 0.0 and pw["accuracy"] == 0.5
