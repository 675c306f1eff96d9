"""The Data tab through the real app (build_app, served in-process) and gradio_client:
overview, dedupe, review across sessions, export, a generate job against the project's
OpenAI-compatible server, and the clear refusals."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
from gradio_client import Client

from pipeline.data.records import load_examples
from pipeline.data.workspace import DataPaths
from pipeline.settings import REPO_ROOT, Endpoint, Settings
from pipeline.testing.openai_server import OpenAIServer

from .conftest import launched


@pytest.fixture()
def root_settings(tmp_path) -> Settings:
    shutil.copytree(REPO_ROOT / "data", tmp_path / "root" / "data")
    return Settings.from_env(env={"TASKMASTER_BASE_MODEL": "smollm2-135m"}, root=tmp_path / "root", work_dir=tmp_path / "work",
                             cache_dir=tmp_path / "cache")


def served(settings: Settings) -> launched:
    from studio.app import build_app

    return launched(build_app(settings))


def test_data_tab_end_to_end(root_settings):
    """One studio (building the app costs ~15 s of CPU here), with a local endpoint configured:
    the offline stages first (rubric filter, dedupe, gap report, review, export), then a
    generate job against the project's OpenAI-compatible server."""
    from pipeline.data import studio_api
    from pipeline.errors import UserError
    from pipeline.jobs import JobManager

    shipped_before = (root_settings.persona_dir() / "train.jsonl").read_bytes()
    with OpenAIServer() as srv:  # the default responder answers the generate prompt with an example
        ep = Endpoint(srv.base_url, "test-model", "sk-ui-secret")
        s = replace(root_settings, generator=ep, judge=ep)
        with served(s) as url:
            client = Client(url, verbose=False)
            _offline_flow(client, s, url)
            _generate_job(client, s)
    gen = load_examples(DataPaths.of(s).generated)
    assert len(gen) == 5 and srv.count() == 5
    assert all(r["headers"]["authorization"] == "Bearer sk-ui-secret" for r in srv.requests)
    # Refusals carry a message naming the fix (the guard shows them as warnings).
    offline = root_settings  # no endpoint, no HF_TOKEN
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        studio_api.start_job(JobManager(offline.state_dir / "jobs"), offline, "generate", {"examples_per_scenario": 3})
    with pytest.raises(UserError, match="HF_TOKEN"):
        studio_api.export_from_ui(offline, False, "", "me/taskmaster-sft")
    with pytest.raises(UserError) as ei:
        studio_api.job_argv("generate", {"examples_per_scenario": 0, "max_concurrency": 0, "max_requests": 0})
    assert all(k in str(ei.value) for k in ("examples_per_scenario", "max_concurrency", "max requests"))
    assert (s.persona_dir() / "train.jsonl").read_bytes() == shipped_before


def _offline_flow(client: Client, s: Settings, url: str) -> None:
    summary, cov, scores, reasons, rejected = client.predict(None, api_name="/data_load")
    assert "Candidate set" in summary and "train.jsonl" in summary
    rows = cov["data"]
    assert {r[0] for r in rows} >= {"Create a simple task", "User is rude"}  # scenario, kind, examples
    # The real rubric judge, in-process; the overview comes back with it (bug 3: no stale charts).
    out, _, _, summary, _, scores, reasons, rejected = client.predict("rubric", 6, api_name="/data_filter")
    assert "Quality filter:" in out and "passed (min_score 6" in out
    assert "filtered" in summary and any(r[0] == "score below min_score" for r in reasons["data"])
    out, summary, *_ = client.predict(0.6, 0.5, api_name="/data_dedupe")
    assert "dedupe: kept" in out and DataPaths.of(s).deduped.is_file()
    assert "deduped" in summary, "the summary names the new candidate set without a Refresh"
    # The charts now show the judge's score distribution and the rejection reasons.
    _, _, scores, reasons, rejected = client.predict(None, api_name="/data_load")
    assert sum(r[1] for r in scores["data"]) == len(load_examples(s.persona_dir() / "train.jsonl"))
    assert any(r[0] == "score below min_score" for r in reasons["data"])
    assert rejected["data"] and all(r[1] == "filter" and r[2] for r in rejected["data"])
    out, _, _, summary, *_ = client.predict(10, True, False, "rubric", 8, None, None, api_name="/data_balance")
    assert "still short" in out and "Coverage:" in summary
    # Review: the seed's random sample; approve one, reject one.
    card, reply, prog = client.predict("sample", 0.1, "", "", "rubric", api_name="/data_review_load")
    first = card.split("**")[1]
    assert "random sample (10%)" in prog and "0/" in prog and reply
    card2, _, prog = client.predict("sample", 0.1, "good", "", "rubric", api_name="/data_review_approve")
    second = card2.split("**")[1]
    assert second != first and "1/" in prog
    card3, _, prog = client.predict("sample", 0.1, "off-tone", "", "rubric", api_name="/data_review_reject")
    assert "2/" in prog and "rejected 1" in prog
    assert f"{second}: rejected." in prog and "rejectd" not in prog  # bug 5
    # Edit the shown reply: it is saved and re-judged at once (approved, or kept pending with the reasons).
    third = card3.split("**")[1]
    new_reply = "Nice work getting that down! I've saved it to your list. Want a due date so it stays on track?"
    _, _, prog = client.predict("sample", 0.1, "", new_reply, "rubric", api_name="/data_review_edit")
    assert "edit saved, re-judged and approved" in prog or "Edit saved but not approved" in prog
    from pipeline.data import stages

    edited = stages.review_queue(s).get(third)
    assert edited.assistant_turns[-1] == new_reply and edited.quality["judge"].startswith("rubric:")
    # A new session (a refreshed or reopened browser) sees the same decisions and the same sample.
    other = Client(url, verbose=False)
    card4, _, prog = other.predict("sample", 0.1, "", "", "rubric", api_name="/data_review_load")
    assert "3/" in prog and card4.split("**")[1] not in (first, second, third)
    # Export a version; the rejected one is left out; nothing shipped changed.
    msg = client.predict(False, "ui test", "", api_name="/data_export")
    assert "exported" in msg and "/v1" in msg
    v1 = DataPaths.of(s).exports / "v1"
    ids = {e.id for e in load_examples(v1 / "train.jsonl")}
    assert second not in ids and first in ids
    # Pushing without HF_TOKEN: a warning (the guard turns UserError into gr.Warning), the reason
    # kept under the Export button (its refusal note), no new version written.
    refused = client.predict(False, "", "me/taskmaster-sft", api_name="/data_export")
    assert refused.startswith("**Not exported:**") and "HF_TOKEN" in refused, refused
    assert sorted(p.name for p in DataPaths.of(s).exports.iterdir()) == ["v1"]


def _generate_job(client: Client, s: Settings) -> None:
    from pipeline.jobs import JobManager

    # Invalid caps: a warning, no job.
    client.predict(1, None, 4, 0, -1, api_name="/data_generate")  # caps of 0 requests / -1 USD
    assert not (s.state_dir / "jobs").exists()
    started, status, _ = client.predict(1, 5, 4, 50, None, api_name="/data_generate")
    assert "python -m pipeline data generate --examples-per-scenario 1 --limit 5" in started
    jm = JobManager(s.state_dir / "jobs")
    job = jm.wait(jm.latest("data").id, timeout=120)
    assert job.state == "finished", job.log_tail()
    assert "sk-ui-secret" not in json.dumps(job.to_dict()) and "sk-ui-secret" not in job.log_tail(200)


def test_chart_frames_are_typed_even_when_empty(root_settings):
    """An empty frame must still type "examples" as a number: the chart's y axis keeps the type
    it saw on page load (seen in a browser: categorical axes after the first filter)."""
    from studio.tabs.data import overview_frames

    md, cov, scores, reasons = overview_frames(root_settings, 10)
    assert scores.empty and reasons.empty
    assert str(scores["examples"].dtype) == "int64" and str(reasons["examples"].dtype) == "int64"
    row = cov[cov["scenario"] == "Create a simple task"].set_index("kind")["examples"]
    n = sum(1 for e in load_examples(root_settings.persona_dir() / "train.jsonl") if e.scenario == "Create a simple task")
    assert row["at target"] == min(n, 10) and row["short"] == max(0, 10 - n) and row["above target"] == max(0, n - 10)
    assert "0 examples" not in md and "Coverage:" in md
