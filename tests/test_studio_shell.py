"""The studio shell: the header never shows a secret and says what is off; the error policy
turns user mistakes into a warning (outputs untouched) and bugs into a one-line message."""

from __future__ import annotations


import gradio as gr
import pytest
from gradio_client import Client

from pipeline.errors import UserError
from pipeline.settings import Settings
from studio.guard import BUG_MESSAGE, guard_events
from studio.header import render_header

from .conftest import launched

SECRETS = {"OPENAI_API_KEY": "sk-live-0123456789", "HF_TOKEN": "hf_abcdefghijklmnop",
           "TASKMASTER_ADMIN_PASSWORD": "hunter2-admin", "TASKMASTER_JUDGE_API_KEY": "sk-judge-999"}


def test_header_names_what_is_active_and_never_a_secret():
    s = Settings.from_env(env={**SECRETS, "OPENAI_BASE_URL": "https://user:pa55word@llm.example.com/v1"})
    text = render_header(s)
    for secret in [*SECRETS.values(), "pa55word"]:
        assert secret not in text
    assert "llm.example.com" in text and "gpt-4o-mini" in text and "admin login required" in text
    assert "Base model" in text and "Device" in text
    bare = render_header(Settings.from_env(env={}))
    assert "No API key" in bare and "offline reader judge" in bare and "No HF_TOKEN" in bare and "open (local)" in bare


@pytest.fixture()
def guarded_app():
    calls = []
    with gr.Blocks() as demo:
        box = gr.Textbox("kept")
        out = gr.Textbox("untouched")

        def user_mistake(text):
            raise UserError("Set 'Min score' between 0 and 10 (it is 12).")

        def bug(text):
            raise RuntimeError("token sk-live-0123456789 leaked in a traceback")

        def gen_mistake(text):
            yield "first"
            raise UserError("Stop after (examples) must be positive.")

        def strict_step(text):
            raise UserError("Choose a run first.")

        gr.Button("a").click(user_mistake, [box], [out], api_name="mistake")
        gr.Button("b").click(bug, [box], [out], api_name="bug")
        gr.Button("c").click(gen_mistake, [box], [out], api_name="gen_mistake")
        gr.Button("d").click(strict_step, [box], [out], api_name="strict").success(
            lambda: calls.append("chained") or "chained", None, [out])
    assert guard_events(demo) == 5
    with launched(demo, show_error=False) as url:
        yield Client(url, verbose=False), calls


def test_user_mistakes_warn_and_leave_outputs_and_bugs_show_one_line(guarded_app):
    client, calls = guarded_app
    # A user mistake: no exception, the output is left as it was (a skip update), the warning is logged.
    job = client.submit("x", api_name="/mistake")
    result = job.result(timeout=30)
    assert result in (None, {"__type__": "update"}, "untouched"), result
    # A generator's mistake after a first output: the first output stays.
    assert client.predict("x", api_name="/gen_mistake") in ("first", {"__type__": "update"}, None)
    # A bug: one line naming the exception type, never the message or a traceback.
    with pytest.raises(Exception) as exc:
        client.predict("x", api_name="/bug")
    text = str(exc.value)
    assert BUG_MESSAGE.format(kind="RuntimeError") in text
    assert "sk-live" not in text and "Traceback" not in text
    # A mistake before a `.success()` step stops the chain, with the message.
    with pytest.raises(Exception, match="Choose a run first"):
        client.predict("x", api_name="/strict")
    assert calls == []


def test_jobs_panel_lists_running_and_finished_jobs_from_the_files(tmp_path):
    import sys

    from studio.context import StudioContext
    from studio.jobs_panel import jobs_table

    settings = Settings.from_env(env={}, work_dir=tmp_path)
    ctx = StudioContext(settings)
    done = ctx.jobs.start("generate", ["-c", "print('ok')"], label="quick", program=[sys.executable])
    ctx.jobs.wait(done.id, timeout=30)
    running = ctx.jobs.start("train", ["-c", "import time; time.sleep(30)"], label="slow", program=[sys.executable])
    try:
        # A fresh context (a restarted studio) sees the same jobs: the files are the truth.
        table = jobs_table(StudioContext(settings))
        states = dict(zip(table["label"], table["state"]))
        assert states == {"quick": "finished", "slow": "running"}
    finally:
        ctx.jobs.stop(running.id, force=True)
