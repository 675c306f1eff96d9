"""The Train tab through the real app and gradio_client: plan before Start, a real training job
started from the tab, one job at a time, re-attach from a new session, the runs table."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import yaml
from gradio_client import Client

from pipeline.jobs import JobManager
from pipeline.jsonl import write_jsonl
from pipeline.runs import RunFolder
from pipeline.settings import REPO_ROOT, Settings


@pytest.mark.timeout(1500)  # above pytest.ini's 600 s: the job's wait below may take 15 min on a loaded box
def test_train_tab_plans_starts_refuses_second_and_reattaches(tmp_path, tiny_model_dir, launched_studio):
    data = tmp_path / "train.jsonl"
    write_jsonl(data, [{"id": f"t{i}", "category": "task_creation", "scenario": "Create a simple task",
                        "messages": [{"role": "user", "content": f"add task {i}"},
                                     {"role": "assistant", "content": "Done. Nice work! Ready for what's next?"}],
                        "review": {"status": "approved"}} for i in range(6)])
    settings = Settings.from_env(env={}, work_dir=tmp_path / "work", cache_dir=REPO_ROOT / ".cache",
                                 base_model=str(tiny_model_dir))
    with launched_studio(settings) as url:
        client = Client(url, verbose=False)
        # the form: preset, base, persona, data, r, alpha, dropout, targets, epochs, batch, accum, lr, max_len,
        # warmup, max_steps, batching, layers, method, from_run, pairs, report_to
        form = ["smoke", str(tiny_model_dir), "taskmaster", str(data), 4, 8, 0.0, ["q_proj", "v_proj"], 1, 2, 1,
                0.005, 384, 0, 3, "grouped", 0, "sft", "", "", "tensorboard"]
        progress, plot, log, command, *_ = client.predict(*form, api_name="/train_start")
        jobs = JobManager(settings.state_dir / "jobs")
        job_id = jobs.latest("train").id
        # Freeze the job (its own process group) while the page is reloaded and Start pressed
        # again, so both happen while it runs on any machine, fast or loaded; it resumes after.
        os.killpg(jobs.get(job_id).pid, signal.SIGSTOP)
        try:
            # the job gets the form's whole config as a file in its run folder, not a diff in argv
            run_dir = Path(jobs.get(job_id).run_dir)
            config_file = RunFolder(run_dir).train_config_path
            assert f"python -m pipeline train --config {config_file} --out {run_dir}" in command
            written = yaml.safe_load(config_file.read_text())
            assert written["lora"]["r"] == 4 and written["max_steps"] == 3 and written["data"] == str(data)
            # Bug 8: a reloaded page (a new session) shows the running job's own settings, not the
            # default preset (and keeps the Data field).
            assert jobs.get(job_id).state == "running"
            reloaded = Client(url, verbose=False).predict(api_name="/train_form")
            assert reloaded[0] == "smoke" and reloaded[3] == str(data) and reloaded[4] == 4, reloaded
            # one training job per studio: a second Start is refused while the first runs
            client.predict(*form, api_name="/train_start")
            assert len(jobs.list("train")) == 1
        finally:
            os.killpg(jobs.get(job_id).pid, signal.SIGCONT)
        # a loaded CI box takes minutes to import torch in the job: wait for its end, not a guess
        done = jobs.wait(job_id, timeout=900)
        assert done.state == "finished", done.log_tail()
        run_dir = Path(done.run_dir)
        assert run_dir.parent == settings.runs_dir and (run_dir / "adapter" / "adapter_model.safetensors").is_file()
        # a new session (a refreshed page) re-attaches to the latest job and sees its curve
        other = Client(url, verbose=False)
        progress2, plot2, _, command2, *_ = other.predict(api_name="/train_poll")
        assert job_id and "finished" in progress2 and "step 3/3" in progress2
        # the tab links the run's tracker (report_to tensorboard: local event files, one command)
        assert f"tensorboard --logdir {run_dir.parent}" in progress2
        assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
        plot_rows = (plot2.get("value") or plot2)["data"]
        assert [row[0] for row in plot_rows] == [1, 2, 3]
        table = other.predict(api_name="/train_runs")
        assert table["data"][0][0] == run_dir.name and table["data"][0][1] == "finished"
        # Bug 2: the run records which data it used (version, count, hash), shown in the Runs table.
        col = table["headers"].index("dataset")
        assert table["data"][0][col].startswith("train.jsonl · 6 conv.")


def test_train_form_builds_a_preference_round_config():
    """The form's values become the TrainConfig the job's config file holds (a DPO round here)."""
    from pipeline.train import monitor
    from pipeline.train.config import TrainConfig

    form = {"preset": "dpo", "method": "dpo", "from_run": "runs/sft-1", "pairs": "a.jsonl, b.jsonl",
            "report_to": "trackio", "base_model": "smollm2-135m", "persona": "taskmaster"}
    preset, values = monitor.form_values(form)
    cfg = TrainConfig.model_validate(values)
    assert preset == "dpo" and cfg.method == "dpo" and cfg.from_run == "runs/sft-1"
    assert list(cfg.pairs) == ["a.jsonl", "b.jsonl"] and cfg.report_to == "trackio"
    assert monitor.command_argv("runs/x/train_config.yaml", "runs/x") == [
        "train", "--config", "runs/x/train_config.yaml", "--out", "runs/x"]


def test_the_progress_html_is_made_in_the_tab_and_escapes_the_message():
    """The train seam gives numbers and text (no HTML in pipeline/); the tab's HTML shows a
    message with <...> in it as text instead of losing it as a tag."""
    from pipeline.train.monitor import View
    from studio.tabs.train import progress_html

    view = View("job-1", "failed", "error: cannot read <runs/x>/config.yaml", step=3, max_steps=12)
    out = progress_html(view)
    assert "&lt;runs/x&gt;/config.yaml" in out and "<runs/x>" not in out
    assert "step 3/12 (25%)" in out and "max='12'" in out
    assert progress_html(View(None, "idle", "")) == "<div>No training run yet.</div>"
    assert not hasattr(View, "progress_html")
