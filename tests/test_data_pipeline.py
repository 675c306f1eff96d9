"""The data stages end to end with real parts: the project's OpenAI-compatible HTTP server,
the real `openai` SDK, real SQLite, real files, the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.cli import main as cli_main
from pipeline.data import stages
from pipeline.data.balance import BalanceConfig
from pipeline.data.dedupe import DedupeConfig, dedupe
from pipeline.data.export import versions
from pipeline.data.filter import FilterConfig, filter_examples
from pipeline.data.generate import GenerateConfig
from pipeline.data.records import Example, load_examples
from pipeline.data.target import TargetConfig
from pipeline.data.workspace import DataPaths
from pipeline.errors import UserError
from pipeline.judges.base import Verdict, Violation
from pipeline.jsonl import read_jsonl, write_jsonl
from pipeline.settings import REPO_ROOT, Endpoint, Settings
from pipeline.testing.openai_server import OpenAIServer

from .conftest import write_results

PERSONA = "taskmaster"
SHIPPED = REPO_ROOT / "data" / "personas" / PERSONA
TRAITS = ["encouraging", "productivity_focused", "professional_friendly", "action_oriented", "optimistic"]


class StubJudge:
    """Contract-true stand-in (pipeline/judges/base.py): reply text decides the verdict.
    "obviously" -> condescending violation; "meh" -> every trait 1 (overall 5); "JUDGEFAIL" ->
    the documented failure value; "weak-encouraging" -> encouraging 1; otherwise all 2."""
    name = "stub:v1"

    def __init__(self):
        self.calls = 0

    def judge_batch(self, items):
        self.calls += len(items)
        out = []
        for it in items:
            r = it.response
            if "JUDGEFAIL" in r:
                out.append(Verdict.failure(it.id, self.name, "unparseable verdict"))
                continue
            traits = {t: (1 if "meh" in r else 2) for t in TRAITS}
            if "weak-encouraging" in r:
                traits["encouraging"] = 1
            v = [Violation("condescending", "obviously", "talks down")] if "obviously" in r else []
            out.append(Verdict(it.id, self.name, traits=traits, violations=v, reasons=f"stub on {it.id}"))
        return out


WORDS = ("budget invoice dentist garden taxes slides report laundry flights gym groceries plumber passport "
         "roadmap offsite podcast thesis backlog audit newsletter rent piano vet hiring demo").split()


def example_responder(body: dict) -> str:
    """A generator that answers the generate prompt with a distinct example per scenario/variant
    (topic words drawn from the request's hash, so examples are not near-duplicates)."""
    import hashlib
    import random

    text = body["messages"][-1]["content"]
    scen = text.split("Scenario:")[1].split("\n")[0].strip()
    var = text.split("Variant:")[1].split("\n")[0].strip()
    rng = random.Random(hashlib.sha256(text.encode()).hexdigest())
    w = rng.sample(WORDS, 6)
    opener = rng.choice(["Nice work!", "Great choice!", "Got it.", "Done!", "You're on track."])
    trait = "STRONGLY" in text
    user = f"{w[0]} {w[1]} {w[2]} ({var})"
    reply = (f"{opener} {w[3]}, {w[4]} and {w[5]} {'all count' if trait else 'saved'}. "
             f"{rng.choice(['Next?', 'Ready for more?', 'Due date?'])}")
    return json.dumps({"context": None, "user": user, "assistant": reply})


def make_settings(tmp_path: Path, srv: OpenAIServer | None = None) -> Settings:
    ep = Endpoint(srv.base_url, "test-model", "sk-test") if srv else Endpoint(None, "test-model")
    return Settings.from_env(env={"TASKMASTER_BASE_MODEL": "smollm2-135m"}, work_dir=tmp_path / "work",
                             cache_dir=tmp_path / "cache",
                             generator=ep, judge=ep)


def ex(i: str, user: str, reply: str, scenario="Create a simple task", category="task_creation", **kw) -> Example:
    return Example(id=i, category=category, scenario=scenario, source=kw.pop("source", "generated"),
                   messages=[{"role": "user", "content": user}, {"role": "assistant", "content": reply}], **kw)


FAST = dict(max_concurrency=8, timeout_s=2)


# ---- generate ------------------------------------------------------------------------------
def test_generate_records_provenance_and_rerun_makes_zero_requests(tmp_path):
    scen = ["Create a simple task", "User is rude"]
    with OpenAIServer(responder=example_responder) as srv:
        s = make_settings(tmp_path, srv)
        cfg = GenerateConfig(examples_per_scenario=3, scenarios=scen)
        r1 = stages.run_generate(s, cfg, stages.LLMLimits(**FAST))
        n1 = srv.count()
        r2 = stages.run_generate(s, cfg, stages.LLMLimits(**FAST))
        body = next(q["body"] for q in srv.requests if "Scenario: Create a simple task" in q["body"]["messages"][1]["content"])
    assert (r1["generated"], r1["failed"], n1) == (6, 0, 6)
    assert r2["stats"]["requests_sent"] == 0 and r2["stats"]["cache_hits"] == 6 and srv.count() == 6
    out = load_examples(DataPaths.of(s).generated)
    assert len(out) == 6 and {e.scenario for e in out} == set(scen)  # merged by id: no duplicates
    prov = out[0].model_extra["provenance"]
    assert prov["generator_model"] == "test-model" and prov["prompt_version"].startswith("generate_system@")
    assert prov["scenario"] in scen and prov["time"].endswith("Z") and out[0].review.status == "pending"
    # The prompt carries the persona, the scenario, style axes and few-shot from the approved set.
    sys_msg, user_msg = body["messages"][0]["content"], body["messages"][1]["content"]
    assert "TaskMaster" in sys_msg and "Never condescending" in sys_msg
    assert "Scenario: Create a simple task" in user_msg and "Make the user message:" in user_msg
    curated = {e.first_user for e in load_examples(SHIPPED / "train.jsonl") if e.scenario == "Create a simple task"}
    assert any(f"User: {u}" in user_msg for u in curated)
    # Variants differ: distinct user messages.
    assert len({e.first_user for e in out}) == 6


def test_generate_under_30_percent_faults_accounts_for_every_example(tmp_path):
    # Faults depend on the request (not arrival order), so ~30% of slots fail on every attempt
    # ("bad_json" forever), and others hit transient 429/500/timeouts/malformed bodies.
    import hashlib

    attempts: dict[str, int] = {}

    def fault_fn(body, n):
        key = body["messages"][-1]["content"]
        h = int(hashlib.sha256(key.encode()).hexdigest(), 16) % 100
        attempts[key] = attempts.get(key, 0) + 1
        if h < 8:
            return "bad_json"  # permanent: must end up listed as failed, with its reason
        if h < 38 and attempts[key] <= 2:  # transient, twice in a row: 429, 500, timeout or malformed body
            return ["429", "500", "timeout", "malformed"][(h + attempts[key]) % 4]
        return None

    with OpenAIServer(responder=example_responder, fault_fn=fault_fn, timeout_sleep_s=0.6) as srv:
        s = make_settings(tmp_path, srv)
        cfg = GenerateConfig(examples_per_scenario=2, limit=40)
        r = stages.run_generate(s, cfg, stages.LLMLimits(max_concurrency=8, timeout_s=0.3, backoff_base_s=0.02))
    failed = read_jsonl(DataPaths.of(s).generated_failed)
    assert r["generated"] + r["failed"] == 40 and len(failed) == r["failed"]
    assert r["failed"] >= 1 and all("invalid JSON" in f["reason"] for f in failed)
    assert all(f["slot"]["scenario"] for f in failed)
    assert set(srv.faults_injected()) >= {"429", "500", "timeout", "malformed", "bad_json"}
    assert r["stats"]["retries"] > 0


def test_killed_generate_job_resumes_without_repeating_completed_calls(tmp_path):
    with OpenAIServer(responder=example_responder, latency_s=0.15) as srv:
        env = {**os.environ, "OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "sk-test",
               "TASKMASTER_GENERATOR_MODEL": "test-model", "TASKMASTER_WORK_DIR": str(tmp_path / "work"),
               "TASKMASTER_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(REPO_ROOT),
               "TASKMASTER_BASE_MODEL": "smollm2-135m"}  # skips the CUDA probe (a torch import) at start-up
        argv = [sys.executable, "-m", "pipeline", "data", "generate", "--limit", "40", "--examples-per-scenario", "2",
                "--max-concurrency", "2"]
        proc = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        cache = tmp_path / "cache" / "llm"
        deadline = time.time() + 60
        while time.time() < deadline and len(list(cache.rglob("*.json"))) < 12:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_before = {p.stem for p in cache.rglob("*.json")}
        sent_before = srv.count()
        assert 12 <= len(done_before) < 40, "the job should have been killed halfway"
        srv.reset()
        rerun = subprocess.run(argv + ["--json"], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout[rerun.stdout.index("{"):])
    assert result["generated"] == 40 and result["failed"] == 0
    # No completed call was sent again: the restart asked only for what the cache lacked.
    assert result["stats"]["cache_hits"] >= len(done_before)
    assert srv.count() == 40 - result["stats"]["cache_hits"]
    assert sent_before - len(done_before) <= 2  # at most the in-flight calls (concurrency 2) were lost


# ---- filter --------------------------------------------------------------------------------
def test_filter_keeps_good_ones_and_sets_rejected_aside_with_reasons():
    data = [ex("a", "add milk", "Done! Milk is on your list. Want a due date?"),
            ex("b", "add eggs", "meh, added eggs I guess."),
            ex("c", "add tea", "Obviously you forgot, so obviously I added tea."),
            ex("d", "add jam", "JUDGEFAIL")]
    r = filter_examples(data, StubJudge(), min_score=6)
    assert [e.id for e in r.kept] == ["a"]
    assert r.kept[0].quality["overall"] == 10 and r.kept[0].quality["reasons"] == "stub on a"
    why = {e.id: e.model_extra["rejection"]["reasons"] for e in r.rejected}
    assert why == {"b": ["score 5 < min_score 6"], "c": ['violation condescending: "obviously"'],
                   "d": ["judge failed: unparseable verdict"]}
    assert r.counts["rejection_reasons"] == {"score below min_score": 1, "violation condescending": 1,
                                             "judge failed": 1}
    assert data[1].quality == {}  # inputs untouched


def test_filter_stage_files_and_config_validation(tmp_path):
    s = make_settings(tmp_path)
    paths = DataPaths.of(s)
    src = tmp_path / "in.jsonl"
    write_jsonl(src, [ex("a", "add milk", "Done!").model_dump(), ex("b", "x", "meh").model_dump()])
    r = stages.run_filter(s, FilterConfig(), input=src, judge=StubJudge())
    assert (r["kept"], r["rejected"]) == (1, 1)
    assert [e.id for e in load_examples(paths.filtered)] == ["a"]
    assert read_jsonl(paths.root / "rejected.filter.jsonl")[0]["rejection"]["stage"] == "filter"
    with pytest.raises(UserError) as ei:
        stages.run_filter(s, FilterConfig(min_score=42, judge="oracle", batch_size=0), input=src, judge=StubJudge())
    assert all(k in str(ei.value) for k in ("min_score", "judge", "batch_size"))  # every problem at once
    with pytest.raises(UserError, match="never overwritten"):
        stages.run_filter(s, FilterConfig(), input=src, output=SHIPPED / "train.jsonl", judge=StubJudge())


# ---- dedupe --------------------------------------------------------------------------------
def test_dedupe_removes_near_duplicates_and_eval_leaks():
    reply = "Done, the report task is saved with Friday as its due date. Want a reminder the day before?"
    data = [ex("g1", "add a task to write the report by friday", reply, quality={"overall": 7}),
            ex("c1", "add a task to write the report by Friday!", reply, source="curated", quality={"overall": 9}),
            ex("g2", "Create a task to review the marketing proposal please", "Added it. Next step?"),
            ex("g3", "what's on my list for tomorrow", "Here is tomorrow: nothing yet. Add one?")]
    evals = [("ev-001", "Create a task to review the marketing proposal")]
    r = dedupe(data, evals, DedupeConfig())
    assert [e.id for e in r.kept] == ["c1", "g3"]  # the better-scored curated twin stays
    why = {e.id: e.model_extra["rejection"]["reasons"][0] for e in r.removed}
    assert why["g1"].startswith("near-duplicate of c1 (similarity")
    assert why["g2"].startswith("eval leak: user turn matches eval prompt ev-001")
    assert (r.duplicate_pairs, r.eval_leaks) == (1, 1)


def test_generated_sets_are_deduped_against_the_curated_set_and_balanced_with_it(tmp_path):
    s = make_settings(tmp_path)
    curated = load_examples(SHIPPED / "train.jsonl")
    c0 = curated[0]
    src = tmp_path / "gen.jsonl"
    copy = ex("gen-copy", c0.first_user, c0.assistant_turns[-1], scenario=c0.scenario, category=c0.category)
    fresh = ex("gen-new", "pls add a task for the garden fence thing", "Added the garden fence. Due date?",
               scenario="User is rude", category="boundary_testing")
    write_jsonl(src, [copy.model_dump(), fresh.model_dump()])
    r = stages.run_dedupe(s, DedupeConfig(), input=src)
    assert (r["kept"], r["checked_against_curated"]) == (1, len(curated))
    why = read_jsonl(DataPaths.of(s).root / "rejected.dedupe.jsonl")[0]["rejection"]["reasons"][0]
    assert why.startswith(f"near-duplicate of {c0.id}")
    b = stages.run_balance(s, BalanceConfig(), with_curated=True)  # deduped.jsonl + the curated set
    assert b["total"] == len(curated) + 1
    with pytest.raises(UserError, match="already contains the curated set"):
        stages.run_balance(s, BalanceConfig(), input=SHIPPED / "train.jsonl", with_curated=True)


# ---- balance -------------------------------------------------------------------------------
def _small_set() -> list[Example]:
    return [ex(f"s{i}", f"add task number {i} about {w}", f"Done, {w} is saved as task {i}. Want a due date for it?")
            for i, w in enumerate(["milk", "rent", "gym"])]


def test_balance_offline_reports_gaps_without_generating(tmp_path):
    s = make_settings(tmp_path)
    src = tmp_path / "in.jsonl"
    write_jsonl(src, [e.model_dump() for e in _small_set()])
    r = stages.run_balance(s, BalanceConfig(target_per_scenario=2), input=src)
    assert r["rounds"] == 0 and r["added"] == 0 and "offline" in r["stopped"]
    short = {x["scenario"]: x["short"] for x in r["short_scenarios"]}
    assert "Create a simple task" not in short and short["User is rude"] == 2 and len(short) == 36
    assert r["still_short"] == 72
    assert json.loads(DataPaths.of(s).balance_report.read_text())["still_short"] == 72


def test_balance_fills_gaps_until_target_or_budget(tmp_path):
    with OpenAIServer(responder=example_responder) as srv:
        s = make_settings(tmp_path, srv)
        src = tmp_path / "in.jsonl"
        write_jsonl(src, [e.model_dump() for e in _small_set()])
        cfg = BalanceConfig(target_per_scenario=1, generate=GenerateConfig(few_shot=0))
        r = stages.run_balance(s, cfg, stages.LLMLimits(**FAST), input=src, judge=StubJudge())
        assert r["still_short"] == 0 and r["added"] == 36 and r["total"] == 39, r["summary"]
        # With a request cap it stops and says what is still short.
        s2 = make_settings(tmp_path / "b", srv)
        r2 = stages.run_balance(s2, BalanceConfig(target_per_scenario=3), stages.LLMLimits(max_requests=10),
                                input=src, judge=StubJudge())
    assert "budget exhausted" in r2["stopped"] and r2["still_short"] > 0 and r2["added"] <= 10
    assert "still short" in r2["summary"]


# ---- target --------------------------------------------------------------------------------
def test_target_generates_for_weak_traits_and_writes_a_new_version(tmp_path):
    results = write_results(tmp_path / "run", metrics={"adapter": {"trait_means": {
        "encouraging": 1.3, "productivity_focused": 1.8, "professional_friendly": 1.9, "action_oriented": 1.6,
        "optimistic": 1.45}}, "base": {}},
        failing=[{"prompt": "I only did half of it", "category": "coaching",
                  "traits": {"encouraging": 0, "optimistic": 1}}])
    base = tmp_path / "base.jsonl"
    write_jsonl(base, [e.model_dump() for e in _small_set()])
    with OpenAIServer(responder=example_responder) as srv:
        s = make_settings(tmp_path, srv)
        r = stages.run_target(s, results, TargetConfig(examples_per_trait=4), stages.LLMLimits(**FAST),
                              base=base, judge=StubJudge())
        prompts = [q["body"]["messages"][1]["content"] for q in srv.requests]
    assert r["weak_traits"] == ["encouraging", "optimistic"] and r["requested"] == 8 and r["kept"] == 8
    assert any("ENCOURAGING" in p and "I only did half of it" in p for p in prompts)
    v = Path(r["version"])
    rows = load_examples(v / "train.jsonl")
    assert len(rows) == 3 + 8 and {e.source for e in rows} == {"generated", "targeted"}
    assert all(e.scenario in {"User feeling overwhelmed", "Prioritization advice", "Time management tips",
                              "Focus recommendations", "Motivation when stuck"} for e in rows if e.source == "targeted")
    assert "targeted for encouraging, optimistic" in (v / "README.md").read_text()
    assert len(load_examples(DataPaths.of(s).targeted)) == 8  # also queued for review


def test_target_plan_errors_are_clear(tmp_path):
    s = make_settings(tmp_path, None)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"weak_traits": ["kindness"]}))
    from pipeline.data.target import load_plan

    with pytest.raises(UserError, match="unknown trait"):
        load_plan(plan, stages.persona_of(s))
    with pytest.raises(UserError, match="evaluation results not found"):
        load_plan(tmp_path / "nope.json", stages.persona_of(s))


# ---- review & export -----------------------------------------------------------------------
def test_review_decisions_survive_a_restart_and_export_versions(tmp_path):
    s = make_settings(tmp_path)
    src = tmp_path / "cands.jsonl"
    data = [ex(f"r{i}", f"add thing {i}", f"Done, thing {i} is saved. Want a due date?") for i in range(20)]
    write_jsonl(src, [e.model_dump() for e in data])
    q = stages.review_queue(s, input=src)
    first = q.next_id("pending")
    q.decide(first, "approved", "good")
    q.decide("r5", "rejected", "too short")
    edited, problems = q.edit("r7", "You obviously should have done this, but it is added.", StubJudge())
    assert problems == ['violation condescending: "obviously"'] and edited.review.status == "pending"
    edited, problems = q.edit("r7", "Added thing 7. Nice work keeping track; want a due date?", StubJudge())
    assert problems == [] and edited.review.status == "approved" and edited.source == "edited"
    sample = q.ids("sample", fraction=0.1, seed=3)
    assert len(sample) == 2
    # A new queue over the same files (a browser refresh, a studio restart) sees everything.
    q2 = stages.review_queue(s, input=src)
    assert q2.ids("sample", fraction=0.1, seed=99) == sample  # the drawn sample is stable
    p = q2.progress("pending")
    assert (p["approved"], p["rejected"], p["pending"], p["reviewed"]) == (2, 1, 17, 3)
    assert q2.get("r7").assistant_turns[-1].startswith("Added thing 7")
    assert q2.next_id("pending", after=first) not in (first, "r5", "r7")
    # CLI sees the same store.
    e1 = stages.run_export(s, input=src, note="first")
    rows = load_examples(Path(e1["folder"]) / "train.jsonl")
    assert e1["version"] == "v1" and {e.id for e in rows} == {first, "r7"}
    e2 = stages.run_export(s, input=src, include_pending=True)
    assert e2["version"] == "v2" and e2["count"] == 19  # all but the rejected one
    assert len(load_examples(Path(e1["folder"]) / "train.jsonl")) == 2  # v1 untouched
    card = (Path(e2["folder"]) / "README.md").read_text()
    assert "| task_creation | 19 |" in card and "Judge:" in card and "path: train.jsonl" in card
    man = json.loads((Path(e2["folder"]) / "manifest.json").read_text())
    assert man["count"] == 19 and len(man["train_sha256"]) == 64
    # Pushing without a token is refused before anything is written.
    with pytest.raises(UserError, match="HF_TOKEN"):
        stages.run_export(s, input=src, push_to="me/taskmaster-sft")
    assert [v.name for v in versions(DataPaths.of(s).exports)] == ["v1", "v2"]


def test_cli_offline_path_filter_dedupe_balance_review_export(tmp_path, monkeypatch, capsys):
    """No endpoint at all: the shipped set through the real rubric judge and every offline stage."""
    monkeypatch.setenv("TASKMASTER_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("TASKMASTER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TASKMASTER_BASE_MODEL", "smollm2-135m")
    shipped = load_examples(SHIPPED / "train.jsonl")
    assert cli_main(["data", "filter", "--json"]) == 0  # no generated.jsonl yet: the shipped set
    f = json.loads(capsys.readouterr().out)
    assert f["input"].endswith("train.jsonl") and f["judge"].startswith("rubric:")
    assert f["kept"] + f["rejected"] == len(shipped) and f["kept"] > 0
    paths = DataPaths(tmp_path / "work" / "state" / "data" / PERSONA, tmp_path / "work" / "exports" / PERSONA, SHIPPED)
    kept = load_examples(paths.filtered)
    assert all(isinstance(e.quality["overall"], int) and e.quality["overall"] >= 6 and not e.quality["violations"]
               for e in kept)
    for row in read_jsonl(paths.root / "rejected.filter.jsonl"):  # set aside, each with why
        assert row["rejection"]["reasons"] and row["quality"]["judge"].startswith("rubric:")
    assert cli_main(["data", "dedupe"]) == 0
    assert "eval leaks" in capsys.readouterr().out
    assert cli_main(["data", "balance", "--target-per-scenario", "10"]) == 0  # no endpoint: gaps only
    out = capsys.readouterr().out
    assert "still short" in out and "offline" in out
    assert cli_main(["data", "review", "--mode", "sample", "--seed", "1", "--json"]) == 0
    nxt = json.loads(capsys.readouterr().out)["next"]
    assert cli_main(["data", "review", "--reject", nxt, "--note", "off-tone"]) == 0
    capsys.readouterr()
    assert cli_main(["data", "export", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["version"] == "v1" and res["count"] == len(kept) - 1  # curated ones are approved already
    assert nxt not in {e.id for e in load_examples(Path(res["folder"]) / "train.jsonl")}
    assert cli_main(["data", "review", "--approve", "no-such-id"]) == 2
    assert "no example 'no-such-id'" in capsys.readouterr().err
    assert cli_main(["data", "generate"]) == 2  # no endpoint: a clear message, no traceback
    assert "OPENAI_API_KEY" in capsys.readouterr().err


def test_export_pushes_a_dataset_repo_to_the_hub(tmp_path):
    from pipeline.testing.hub_server import FakeHub

    src = tmp_path / "cands.jsonl"
    write_jsonl(src, [ex(f"p{i}", f"add item {i}", f"Done, item {i} is saved. Want a due date?",
                         review={"status": "approved"}).model_dump() for i in range(3)])
    with FakeHub() as hub, hub.patched_client():
        hub.add_user("alice", token="hf_alice_write")
        hub.add_user("bob", token="hf_bob_read", token_role="read")
        s = replace_token(make_settings(tmp_path), "hf_alice_write")
        r = stages.run_export(s, input=src, push_to="alice/taskmaster-sft")
        repo = hub.repo("alice/taskmaster-sft", "dataset")
        assert repo is not None and repo.private
        local = Path(r["folder"])
        for name in ("train.jsonl", "README.md", "manifest.json"):
            assert hub.file("alice/taskmaster-sft", name, "dataset") == (local / name).read_bytes()
        assert "alice/taskmaster-sft" in r["pushed"]
        with pytest.raises(UserError, match="cannot write|refused|HTTP 40"):
            stages.run_export(replace_token(s, "hf_bob_read"), input=src, push_to="alice/taskmaster-sft")
    assert [v.name for v in versions(DataPaths.of(s).exports)] == ["v1", "v2"]  # the local copy is kept


def replace_token(s: Settings, token: str) -> Settings:
    from dataclasses import replace

    return replace(s, hf_token=token)
