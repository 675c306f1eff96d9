"""The Train tab through the real app and gradio_client: plan before Start, a real training job
started from the tab, one job at a time, re-attach from a new session, the runs table."""

from __future__ import annotations

import socket
from pathlib import Path

from gradio_client import Client

from pipeline.jobs import JobManager
from pipeline.jsonl import write_jsonl
from pipeline.settings import REPO_ROOT, Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_train_tab_plans_starts_refuses_second_and_reattaches(tmp_path, tiny_model_dir):
    from studio.app import build_app

    data = tmp_path / "train.jsonl"
    write_jsonl(data, [{"id": f"t{i}", "category": "task_creation", "scenario": "Create a simple task",
                        "messages": [{"role": "user", "content": f"add task {i}"},
                                     {"role": "assistant", "content": "Done. Nice work! Ready for what's next?"}],
                        "review": {"status": "approved"}} for i in range(6)])
    settings = Settings.from_env(env={}, work_dir=tmp_path / "work", cache_dir=REPO_ROOT / ".cache",
                                 base_model=str(tiny_model_dir))
    demo = build_app(settings)
    demo.queue()
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        url = f"http://127.0.0.1:{port}"
        client = Client(url, verbose=False)
        # the form: preset, base, persona, data, r, alpha, dropout, targets, epochs, batch, accum, lr, max_len,
        # warmup, max_steps, batching, layers, method, from_run, pairs, report_to
        form = ["smoke", str(tiny_model_dir), "taskmaster", str(data), 4, 8, 0.0, ["q_proj", "v_proj"], 1, 2, 1,
                0.005, 384, 0, 3, "grouped", 0, "sft", "", "", "tensorboard"]
        progress, plot, log, command, *_ = client.predict(*form, api_name="/train_start")
        assert "python -m pipeline train --preset smoke" in command and "lora.r=4" in command
        jobs = JobManager(settings.state_dir / "jobs")
        job_id = jobs.latest("train").id
        # Bug 8: a reloaded page (a new session) shows the running job's own settings, not the
        # default preset (and keeps the Data field).
        # (The job is still loading torch here: seconds, on any machine.)
        reloaded = Client(url, verbose=False).predict(api_name="/train_form")
        assert jobs.get(job_id).state == "running" or jobs.get(job_id).exit, "checked while the job ran"
        assert reloaded[0] == "smoke" and reloaded[3] == str(data) and reloaded[4] == 4, reloaded
        # one training job per studio: a second Start is refused while the first runs (or leaves it alone)
        client.predict(*form, api_name="/train_start")
        assert len(jobs.list("train")) == 1
        done = jobs.wait(job_id, timeout=120)
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
    finally:
        demo.close()


def test_train_form_builds_a_preference_round_command():
    from pipeline.train import monitor

    form = {"preset": "dpo", "method": "dpo", "from_run": "runs/sft-1", "pairs": "a.jsonl, b.jsonl",
            "report_to": "trackio", "base_model": "smollm2-135m", "persona": "taskmaster"}
    argv = monitor.command_argv(form, "runs/x")
    assert argv[:3] == ["train", "--preset", "dpo"]
    joined = " ".join(argv)
    assert "--from-run runs/sft-1" in joined and "--pairs a.jsonl --pairs b.jsonl" in joined
    assert "--report-to trackio" in joined and "--method" not in joined  # the dpo preset already says dpo
