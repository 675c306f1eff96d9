"""Judges on crafted replies (not from the calibration set), judge failures, both-orders A/B.

The LLM judge is tested through the real `openai` client (pipeline/llm_client.py) against the
project's real local HTTP server (pipeline/testing/openai_server.py) with scripted replies.
"""

from __future__ import annotations

import json
import re

import pytest

from pipeline.errors import UserError
from pipeline.judges import get_judge, get_pairwise
from pipeline.judges.base import JudgeItem
from pipeline.judges.pairwise import PairItem, ScorePairwise, combine_orders
from pipeline.llm_client import ClientConfig, LLMClient
from pipeline.settings import Endpoint
from pipeline.spec import PersonaSpec, load_persona
from pipeline.testing.openai_server import OpenAIServer

from .conftest import PERSONA_DIR


@pytest.fixture(scope="module")
def persona():
    return load_persona(PERSONA_DIR)


@pytest.fixture(scope="module")
def rubric(persona):
    return get_judge("rubric", persona)


def _one(judge, user, reply, context=None):
    msgs = ([{"role": "system", "content": f"Task API context:\n{context}"}] if context else []) + \
        [{"role": "user", "content": user}]
    return judge.judge_batch([JudgeItem("x", msgs, reply)])[0]


# ---- rubric judge: each violation type on replies written for this test -------------------
CRAFTED_VIOLATIONS = [
    ("condescending", "I still haven't booked the flights", "Booking flights is obviously not rocket science. Just open the site and do it."),
    ("condescending", "my garden project stalled", "You should have planned the garden before spring. Let's try again."),
    ("condescending", "I didn't finish my code review", "Code reviews are a simple concept once you get the hang of it, even interns manage them."),
    ("passive_aggressive", "I missed the vendor deadline", "Like I said on Monday, that date was tight. Anyway, let's pick another one."),
    ("passive_aggressive", "push the demo to Thursday", "Pushed. That's the fourth time, but who's counting. It's now Thursday."),
    ("passive_aggressive", "I finally paid the electricity bill", "Better late than never, I suppose. Marked as paid."),
    ("defensive", "you sent the reminder at the wrong time", "I was only following the time zone you picked. That's how it's designed."),
    ("defensive", "your advice didn't work", "The advice works fine for most users when it's followed properly."),
    ("defensive", "the sync is broken again", "Everything looks correct on my end, so it must be your connection."),
    ("negativity_matching", "this project is a nightmare", "Yeah, it really is a nightmare. Nothing seems to be going right."),
    ("negativity_matching", "I hate Mondays so much", "Mondays really are the worst, no way around it."),
    ("negativity_matching", "my team is useless", "Ugh, that's awful. Useless teams are exhausting and it won't get better."),
    ("generic_ai", "what can you help with", "As an AI language model, I can assist with many tasks. Is there anything else you need?"),
    ("generic_ai", "add 'water plants'", "Certainly! I've added 'water plants'. I hope this helps!"),
    ("generic_ai", "thanks", "You're welcome! If you have any other questions, feel free to ask."),
]


@pytest.mark.parametrize("vtype,user,reply", CRAFTED_VIOLATIONS)
def test_rubric_catches_each_violation_type_and_quotes_the_reply(rubric, vtype, user, reply):
    v = _one(rubric, user, reply)
    assert v.ok
    types = {x.type for x in v.violations}
    assert vtype in types, f"{vtype} not caught in {reply!r}: {v.violations}"
    for x in v.violations:
        assert x.quote and x.quote.lower() in reply.lower()  # the offending words, verbatim
    assert not v.passes(6)


CRAFTED_GOOD = [
    ("I finished the tax return", "Nice work! Taxes are a big one to get done. I've marked it complete. Want to file the receipts folder next, or take a break first?"),
    ("add task: call the plumber tomorrow", "Added \"Call the plumber\" for tomorrow. Want a reminder at 9am so it happens before your day fills up?"),
    ("I'm overwhelmed by my inbox", "That sounds like a lot, and inboxes pile up fast. Let's tackle this in one 20-minute pass: want to start with the messages from this week?"),
    ("your reminders are annoying", "Thanks for telling me. I'll send fewer of them. Would one summary each morning work better for you?"),
    ("I lost the contract I was chasing", "I'm sorry, that's a real setback after all the work you put in. When you're ready, we can note what you learned and pick the next lead. Want to do that tomorrow?"),
    ("move the launch review to Friday", "Done, the launch review is now due Friday. Want me to block an hour on Thursday so Friday is just polish?"),
]


@pytest.mark.parametrize("user,reply", CRAFTED_GOOD)
def test_rubric_passes_good_replies(rubric, user, reply):
    v = _one(rubric, user, reply)
    assert v.ok and v.violations == [], v.violations
    assert v.overall >= 6, v.reasons
    assert all(v.pattern.values()), v.pattern
    assert v.passes(6)


@pytest.mark.parametrize("user,reply", [
    ("I finished the report", "Okay."),
    ("I'm stressed about my exam", "Don't worry, everything will be fine!"),
    ("How do I stop procrastinating?", "Procrastination is a topic researchers have studied for decades in many settings."),
])
def test_rubric_fails_flat_or_dismissive_replies_without_calling_them_violations(rubric, user, reply):
    v = _one(rubric, user, reply)
    assert v.violations == []
    assert v.overall < 6 and not v.passes(6)


def test_rubric_flags_invented_task_data_only_without_context(rubric):
    reply = "You have three high-priority tasks: the budget, the slides and the supplier call. Want to start with the budget?"
    without = _one(rubric, "what are my priorities?", reply)
    with_ctx = _one(rubric, "what are my priorities?", reply, context='tasks: [{"title": "budget"}]')
    assert without.traits["productivity_focused"] == 0
    assert with_ctx.traits["productivity_focused"] == 2


def test_rubric_negativity_needs_a_negative_user(rubric):
    reply = "Yeah, that one was a mess."
    assert "negativity_matching" in {x.type for x in _one(rubric, "ugh what a terrible day", reply).violations}
    assert "negativity_matching" not in {x.type for x in _one(rubric, "I reorganised my desk", reply).violations}


def test_rubric_is_deterministic_labels_itself_heuristic_and_scores_empty_replies(rubric):
    a = _one(rubric, "I finished the report", "Nice work! Ready for what's next?")
    b = _one(rubric, "I finished the report", "Nice work! Ready for what's next?")
    assert a.to_dict() == b.to_dict()
    assert a.extra["heuristic"] is True and "heuristic" in a.reasons
    assert "Nice work" in " ".join(a.extra["preferred_hits"]).replace("\\", "")
    empty = _one(rubric, "hi", "   ")
    assert empty.ok and empty.overall == 0


def test_rubric_is_driven_by_the_spec(persona):
    """A different persona's quoted boundary phrases and generic phrases become its checks."""
    raw = persona.spec.model_dump()
    raw["boundaries"].append({"id": "salesy", "rule": "Never upsells",
                              "description": 'No "premium plan", no "upgrade now"'})
    raw["vocabulary"]["generic_ai_phrases"] = ["beep boop"]
    spec = PersonaSpec.model_validate(raw)
    j = get_judge("rubric", spec)
    v = _one(j, "add a task", "Added! By the way, the Premium Plan would make this faster.")
    assert [(x.type, x.quote) for x in v.violations] == [("salesy", "Premium Plan")]
    assert "generic_ai" in {x.type for x in _one(j, "hi", "Beep boop, task added.").violations}


def test_rubric_batch_is_fast(rubric):
    items = [JudgeItem(str(i), [{"role": "user", "content": u}], r) for i, (u, r) in enumerate(CRAFTED_GOOD * 20)]
    import time

    t0 = time.perf_counter()
    out = rubric.judge_batch(items)
    assert len(out) == len(items) and [v.id for v in out] == [i.id for i in items]
    assert (time.perf_counter() - t0) / len(items) < 0.05  # well under a second per case


def test_get_judge_rejects_unknown_kind(persona):
    with pytest.raises(UserError, match="rubric, reader, llm"):
        get_judge("vibes", persona)


def test_llm_judge_without_endpoint_says_what_to_set(persona, settings):
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        get_judge("llm", persona, settings)


# ---- LLM judge through the real client and a real local server ----------------------------
def _verdict_json(persona, score=2, violations=()):
    return json.dumps({"traits": {t: score for t in persona.spec.trait_ids},
                       "violations": [dict(v) for v in violations],
                       "pattern": {p.id: True for p in persona.spec.pattern}})


def _client(srv, tmp_path=None, **kw):
    return LLMClient(ClientConfig(Endpoint(srv.base_url, "judge-model", "k"), backoff_base_s=0.01,
                                  cache_dir=tmp_path, **kw))


def test_llm_judge_scores_with_reasoning_first_and_temperature_zero(persona):
    def responder(body):
        reply = body["messages"][-1]["content"].split("<<<")[1].split(">>>")[0]
        if "obviously" in reply:
            return "REASONING: talks down.\n" + _verdict_json(
                persona, 1, [{"type": "condescending", "quote": "obviously", "reason": "talks down"}])
        return "REASONING: warm, specific, propels.\n```json\n" + _verdict_json(persona, 2) + "\n```"

    with OpenAIServer(responder=responder) as srv:
        judge = get_judge("llm", persona, client=_client(srv, max_retries=0))
        out = judge.judge_batch([
            JudgeItem("good", [{"role": "user", "content": "done with taxes"}], "Nice work! Want to file receipts next?"),
            JudgeItem("bad", [{"role": "user", "content": "not done"}], "It's obviously easy, just do it."),
        ])
        body = srv.requests[0]["body"]
    assert [v.id for v in out] == ["good", "bad"]
    assert out[0].ok and out[0].overall == 10 and out[0].violations == []
    assert "warm, specific" in out[0].reasons
    assert out[1].overall == 5 and [(x.type, x.quote) for x in out[1].violations] == [("condescending", "obviously")]
    assert body["temperature"] == 0.0
    system = body["messages"][0]["content"]
    for t in persona.spec.traits:  # the rubric anchors from the spec are in the prompt
        assert t.rubric[2] in system and t.rubric[0] in system
    assert judge.prompt_version.startswith("judge@") and judge.name.startswith("llm:judge-model:")


def test_llm_judge_unparseable_reply_is_retried_then_a_failure_not_a_score(persona):
    with OpenAIServer(responder=lambda body: "I think it is pretty good, maybe an 8.") as srv:
        judge = get_judge("llm", persona, client=_client(srv, max_retries=1))
        [v] = judge.judge_batch([JudgeItem("a", [{"role": "user", "content": "hi"}], "Hello! What's next?")])
        n = srv.count()
        last = srv.requests[-1]["body"]["messages"][-1]["content"]
    assert not v.ok and v.overall is None and not v.passes(0)
    assert "invalid JSON" in v.error
    assert n == 4  # client: 1 + 1 retry; judge: one more request with the format reminder (1 + 1 retry)
    assert "did not end with a valid JSON verdict" in last


def test_llm_judge_rejects_out_of_range_scores_and_recovers_on_the_extra_try(persona):
    bad = json.dumps({"traits": {t: 3 for t in persona.spec.trait_ids}, "violations": [],
                      "pattern": {p.id: True for p in persona.spec.pattern}})

    def responder(body):
        reminded = "did not end with a valid JSON verdict" in body["messages"][-1]["content"]
        return _verdict_json(persona, 1) if reminded else bad

    with OpenAIServer(responder=responder) as srv:
        judge = get_judge("llm", persona, client=_client(srv, max_retries=0))
        [v] = judge.judge_batch([JudgeItem("a", [{"role": "user", "content": "hi"}], "Hello!")])
    assert v.ok and v.overall == 5


def test_llm_judge_server_errors_become_failures_for_that_item_only(persona):
    def fault_fn(body, n):
        return "500" if "BROKEN" in body["messages"][-1]["content"] else None

    with OpenAIServer(responder=lambda b: _verdict_json(persona, 2), fault_fn=fault_fn) as srv:
        judge = get_judge("llm", persona, client=_client(srv, max_retries=1))
        out = judge.judge_batch([JudgeItem("ok", [{"role": "user", "content": "hi"}], "Hello there, what's next?"),
                                 JudgeItem("down", [{"role": "user", "content": "hi"}], "BROKEN reply")])
    assert out[0].ok and out[0].overall == 10
    assert not out[1].ok and "HTTP 500" in out[1].error


# ---- pairwise: both orders ----------------------------------------------------------------
@pytest.mark.parametrize("first,second,expected", [
    ("1", "2", ("a", True)),      # A first wins, and B-first order picks position 2 = A: consistent
    ("2", "1", ("b", True)),
    ("1", "1", ("tie", False)),   # always the first position: order-dependent -> tie
    ("2", "2", ("tie", False)),
    ("tie", "tie", ("tie", True)),
    ("1", "tie", ("tie", False)),
    (None, "1", (None, False)),   # a failed order makes the pair a failure
])
def test_combine_orders(first, second, expected):
    assert combine_orders(first, second) == expected


def test_llm_pairwise_position_bias_counts_as_ties_and_real_preference_as_wins(persona):
    def always_first(body):
        return 'REASONING: the first one.\n{"winner": "1"}'

    def prefers_nice(body):
        text = body["messages"][-1]["content"]
        r1 = text.split("RESPONSE 1:")[1].split("RESPONSE 2:")[0]
        return '{"winner": "1"}' if "Nice" in r1 else '{"winner": "2"}'

    items = [PairItem("p1", [{"role": "user", "content": "done"}], "Nice work! Next?", "ok"),
             PairItem("p2", [{"role": "user", "content": "done"}], "ok", "Nice work! Next?")]
    with OpenAIServer(responder=always_first) as srv:
        out = get_pairwise("llm", persona, client=_client(srv, max_retries=0)).judge_pairs(items)
        assert srv.count() == 4  # every pair in both orders
    assert [(v.winner, v.consistent) for v in out] == [("tie", False), ("tie", False)]
    with OpenAIServer(responder=prefers_nice) as srv:
        out = get_pairwise("llm", persona, client=_client(srv, max_retries=0)).judge_pairs(items)
    assert [(v.winner, v.consistent, v.orders) for v in out] == [("a", True, ["a", "a"]), ("b", True, ["b", "b"])]


def test_llm_pairwise_failure_is_recorded_not_counted(persona):
    with OpenAIServer(responder=lambda b: "no verdict here") as srv:
        [v] = get_pairwise("llm", persona, client=_client(srv, max_retries=0)).judge_pairs(
            [PairItem("p", [{"role": "user", "content": "x"}], "a", "b")])
    assert not v.ok and v.winner is None and "invalid JSON" in v.error


def test_score_pairwise_prefers_no_violation_then_higher_score(rubric):
    pw = ScorePairwise(rubric)
    good = "Nice work! I've marked it complete. Ready for what's next?"
    rude = "Obviously. Took you long enough."
    out = pw.judge_pairs([PairItem("1", [{"role": "user", "content": "I finished the report"}], good, rude),
                          PairItem("2", [{"role": "user", "content": "I finished the report"}], rude, good),
                          PairItem("3", [{"role": "user", "content": "I finished the report"}], good, good)])
    assert [v.winner for v in out] == ["a", "b", "tie"]
    assert all(v.consistent for v in out)


def test_avoided_vocabulary_is_lecturing_only_when_it_opens_a_sentence(rubric):
    lecture = _one(rubric, "I can't focus", "You need to put your phone away. Then start.")
    assert [(x.type, x.quote) for x in lecture.violations] == [("condescending", "You need to")]
    neutral = _one(rubric, "plan my afternoon", "Tell me where you need to be at 3pm and I'll set a reminder. Want that?")
    assert neutral.violations == [] and neutral.extra["avoided_hits"] == ["You need to"]
