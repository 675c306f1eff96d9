"""A refused action's reason stays on the page, next to the control (issue 19): the toast is
gone after 10 s. The real studio (build_app, its error guard, real background jobs) served on
127.0.0.1 and driven through gradio_client, as the page's buttons call it. Before the refusal
notes, every one of these outputs came back unchanged ({"__type__": "update"}) and the reason
lived only in the toast.
"""

from __future__ import annotations

import shutil
import sys

import pytest
from gradio_client import Client

from pipeline.settings import Settings
from studio.context import StudioContext

from .conftest import REPO

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _settings(tmp_path, env: dict | None = None) -> Settings:
    shutil.copytree(REPO / "data", tmp_path / "root" / "data")
    return Settings.from_env(env=env or {}, root=tmp_path / "root", work_dir=tmp_path / "work",
                             cache_dir=REPO / ".cache")


def _run_with_adapter(settings: Settings, name: str) -> str:
    run = settings.runs_dir / name
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text("{}")
    return str(run)


def test_refusals_stay_next_to_the_control_in_every_tab(tmp_path, launched_studio):
    settings = _settings(tmp_path)
    ctx = StudioContext(settings)
    run = _run_with_adapter(settings, "run-a")
    with launched_studio(settings, ctx) as url:
        client = Client(url, verbose=False)

        # Evaluate: no run chosen; a bad setting; a job already running. The reason is in the
        # Markdown under Start, angle brackets and all; a good Start replaces it with the command.
        note, *_ = client.predict("", "rubric", None, 96, None, None, api_name="/eval_start")
        assert note.startswith("**Not started:** choose a run folder first"), note
        assert "runs/&lt;id&gt; with an adapter/" in note and "Train tab" in note
        note, *_ = client.predict(run, "llm", None, 96, None, None, api_name="/eval_start")
        assert "the LLM judge needs an endpoint: set OPENAI_API_KEY" in note, note
        busy = ctx.jobs.start("evaluate", [], run_dir=run, label="eval run-a", program=SLEEPER)
        try:
            note, *_ = client.predict(run, "rubric", None, 96, None, None, api_name="/eval_start")
            assert note.startswith("**Not started:** An evaluate job is already running"), note
            assert len(ctx.jobs.list("evaluate")) == 1
        finally:
            ctx.jobs.stop(busy.id, force=True)
        note, *_ = client.predict("run-a", "run-b", api_name="/eval_compare")
        assert note.startswith("**Not compared:**"), note

        # Train: a form with bad settings names each one under the buttons; nothing starts.
        form = ["smoke", "smollm2-135m", "taskmaster", str(tmp_path / "missing.jsonl"), 4, 8, 0.0,
                ["q_proj"], 1, 2, 1, -0.005, 384, 0, 3, "grouped", 0, "sft", "", "", "none"]
        *_, note = client.predict(*form, api_name="/train_start")
        assert note.startswith("**Refused:** invalid training config"), note
        assert "missing.jsonl" in note and "learning_rate" in note, note
        assert ctx.jobs.latest("train") is None
        *_, note = client.predict(None, api_name="/train_resume")
        assert note == "**Refused:** no run to resume: start one first", note

        # Publish: Package and Validate each keep their refusal under the buttons.
        note, *_ = client.predict("", api_name="/publish_package")
        assert note.startswith("**Not packaged:**") and len(note) > len("**Not packaged:** "), note
        note, _ = client.predict("", api_name="/publish_validate")
        assert note.startswith("**Not validated:**") and len(note) > len("**Not validated:** "), note

        # Arena admin: saving no contender is refused in the section's status line.
        note = client.predict([], api_name="/arena_contenders_save")
        assert note.startswith("**Refused:** choose at least one run"), note

        # Data: exporting to the Hub without a token.
        note = client.predict(False, "", "me/taskmaster-sft", api_name="/data_export")
        assert note.startswith("**Not exported:**") and "HF_TOKEN" in note, note


def test_arena_admin_refusal_for_an_anonymous_visitor_stays_in_the_section(tmp_path, launched_studio):
    settings = _settings(tmp_path, {"TASKMASTER_ADMIN_PASSWORD": "a long admin password"})
    _run_with_adapter(settings, "run-a")
    with launched_studio(settings, show_error=False) as url:
        # (an anonymous page's list is empty: run names only reach an admin)
        note = Client(url, verbose=False).predict([], api_name="/arena_contenders_save")
    assert note.startswith("**Refused:** Admin login required"), note
    assert "a long admin password" not in note
