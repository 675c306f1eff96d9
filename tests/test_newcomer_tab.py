"""Issue 19's numbered bugs, as a newcomer met them in the studio; one test each (the Data tab's
bugs 3 and 5 are in tests/test_data_tab.py, the Persona editor's undo (4) in tests/browser/).

Real pieces throughout: the guard the studio wraps every handler with, the persona store on a
copy of the shipped data, real background jobs (JobManager), the real app through gradio_client.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import gradio as gr
import pytest

from pipeline import persona_store as store
from pipeline.errors import UserError
from pipeline.jobs import JobManager
from pipeline.settings import Settings
from pipeline.spec import SpecError

from .conftest import REPO, launched


@pytest.fixture()
def root_settings(tmp_path) -> Settings:
    shutil.copytree(REPO / "data", tmp_path / "root" / "data")
    return Settings.from_env(env={}, root=tmp_path / "root", work_dir=tmp_path / "work", cache_dir=REPO / ".cache")


# ---- 1. toasts render HTML: "<id>" and "<unicode string>" must survive ----------------------

def test_toast_messages_keep_text_in_angle_brackets(root_settings):
    from pipeline.evaluation.studio_api import eval_argv
    from studio.guard import guard_fn

    def start_without_run():
        eval_argv("", "rubric", None, None)

    with pytest.raises(gr.Error) as exc:
        guard_fn(start_without_run, n_outputs=1, strict=True)()
    assert "runs/&lt;id&gt; with an adapter/" in exc.value.message, exc.value.message
    assert "train one in the Train tab" in exc.value.message  # the rest of the sentence is kept

    view = store.open_persona(root_settings, "taskmaster")
    broken = view.spec_text.replace("display_name: TaskMaster", "display_name: [TaskMaster", 1)

    def save():
        store.save_persona(root_settings, "taskmaster", broken, view.scenarios_text, base_hash=view.hash)

    with pytest.raises(gr.Error) as exc:
        guard_fn(save, n_outputs=1, strict=True)()
    msg = exc.value.message
    # Whatever the YAML parser's wording ("<unicode string>" in some versions), the position stays.
    assert "line 5, column" in msg and "<" not in msg, msg


# ---- 6. Save keeps the final newline; an untouched file is not rewritten ---------------------

def test_save_keeps_final_newlines_and_leaves_untouched_file_alone(root_settings):
    view = store.open_persona(root_settings, "taskmaster")
    folder = view.folder
    scen_before = (folder / "scenarios.yaml").read_bytes()
    assert view.spec_text.endswith("\n") and scen_before.endswith(b"\n")
    # The browser's editor hands both texts back without their final newline.
    spec, scen = view.spec_text.rstrip("\n"), view.scenarios_text.rstrip("\n")
    assert "No changes" in store.save_persona(root_settings, "taskmaster", spec, scen, base_hash=view.hash).message
    mtime = (folder / "scenarios.yaml").stat().st_mtime_ns
    time.sleep(0.01)
    saved = store.save_persona(root_settings, "taskmaster", spec.replace("version: 1", "version: 2"), scen,
                               base_hash=view.hash)
    assert "Saved taskmaster" in saved.message
    assert (folder / "persona.yaml").read_text().endswith("version: 2\n") or \
        (folder / "persona.yaml").read_text().endswith("\n")
    assert (folder / "scenarios.yaml").read_bytes() == scen_before
    assert (folder / "scenarios.yaml").stat().st_mtime_ns == mtime


# ---- 9. Evaluate after a reload: the run shown is the run of the latest evaluation job -----

def test_evaluate_opens_on_the_run_of_the_latest_eval_job(root_settings):
    from pipeline.evaluation import studio_api as api

    runs = root_settings.runs_dir
    for name in ("run-a", "run-b"):
        (runs / name / "adapter").mkdir(parents=True)
        (runs / name / "adapter" / "adapter_config.json").write_text("{}")
        time.sleep(0.02)
    os.utime(runs / "run-b", None)  # run-b is the newest folder
    jobs = JobManager(root_settings.state_dir / "jobs")
    assert Path(api.default_run(jobs, root_settings)).name == "run-b"
    job = jobs.start(api.JOB_KIND, ["eval", "--run", str(runs / "run-a")], run_dir=str(runs / "run-a"),
                     label="eval run-a", program=[sys.executable, "-c", "pass"])
    jobs.wait(job.id, timeout=30)
    assert Path(api.default_run(jobs, root_settings)).name == "run-a"


# ---- 13. "An eval job is already running" -------------------------------------------------

def test_busy_message_uses_the_right_article(tmp_path):
    jobs = JobManager(tmp_path / "jobs")
    sleeper = [sys.executable, "-c", "import time; time.sleep(20)"]
    job = jobs.start("eval", [], program=sleeper)
    try:
        with pytest.raises(UserError, match=r"^An eval job is already running"):
            jobs.start("eval", [], program=sleeper)
    finally:
        jobs.stop(job.id, force=True)
    job = jobs.start("train", [], program=sleeper)
    try:
        with pytest.raises(UserError, match=r"^A train job is already running"):
            jobs.start("train", [], program=sleeper)
    finally:
        jobs.stop(job.id, force=True)


# ---- 10, 11: Publish; 12: Arena trash icon (one app for all three) --------------------------

def test_publish_push_clears_token_and_names_every_flag_and_arena_clear_restores(root_settings):
    from gradio_client import Client

    from pipeline.arena.battle import ArenaSession, Battle
    from pipeline.hub import PushConfig
    from studio.app import build_app
    from pipeline.package.studio_api import push_command

    line = push_command(PushConfig(package="runs/x/package", repo_id="me/tm", private=False,
                                   override_validation=True, dataset_repo="me/tm-data"))
    assert "--override-validation" in line and "--public" in line and "--dataset-repo me/tm-data" in line
    assert "--override-validation" not in push_command(PushConfig(package="p", repo_id="me/tm"))

    demo = build_app(root_settings)
    with launched(demo) as url:
        client = Client(url, verbose=False)
        # A push that fails (a run not packaged yet): the token field comes back empty, the reason
        # is on the page, and the command line names the override.
        (root_settings.runs_dir / "r1").mkdir(parents=True)
        result, token, cli = client.predict(str(root_settings.runs_dir / "r1"), "hf_secret_token", "me/tm", "",
                                            True, True, api_name="/publish_push")
        assert token == "", "the token field is cleared after a failed push"
        assert "Push failed" in result and "hf_secret_token" not in result + cli
        assert "--override-validation" in cli

    # 12: the per-chat trash icon empties one side in the browser; the clear handler puts both
    # sides back from the battle (and the CSS hides the icon).
    clears = [bf for bf in demo.fns.values() if any(ev == "clear" for _, ev in bf.targets)
              and {getattr(o, "elem_id", None) for o in bf.outputs} == {"arena-left", "arena-right"}]
    assert len(clears) == 2, "both Arena chats restore the battle when cleared"
    s = ArenaSession()
    s.battle = Battle.__new__(Battle)
    s.battle.conv_left = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "left reply"}]
    s.battle.conv_right = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "right reply"}]
    s.battle.state = "ready"
    fn = getattr(clears[0].fn, "__wrapped__", clears[0].fn)
    while hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    left, right = fn(s)
    assert left[-1]["content"] == "left reply" and right[-1]["content"] == "right reply"
    assert 'aria-label="Clear"' in demo.studio_launch_kwargs["css"]


# ---- 2. Training uses the Data tab's newest exported version by default, and records it ------

def test_train_defaults_to_the_newest_export_and_records_it(root_settings):
    from pipeline.data import stages
    from pipeline.train import monitor
    from pipeline.train.data import dataset_record

    shipped = root_settings.persona_dir() / "train.jsonl"
    assert monitor.form_defaults("cpu-demo", root_settings)["data"] == ""
    note = monitor.data_note("", root_settings)
    assert "shipped set" in note and "no exported version" in note
    stages.run_export(root_settings, include_pending=False, note="")  # v1: the approved shipped examples
    stages.run_export(root_settings, include_pending=False, note="")  # v2
    d = monitor.form_defaults("cpu-demo", root_settings)["data"]
    assert d.endswith("v2/train.jsonl"), d
    assert "`v2`" in monitor.data_note(d, root_settings)
    rec = dataset_record(d, 12)
    assert rec["version"] == "v2" and rec["count"] == 12 and len(rec["sha256"]) == 64
    assert not rec["path"].startswith("/"), "no absolute local path in what travels into a package"
    assert dataset_record(shipped)["version"] == "shipped"


# ---- 7. A run resumed outside the studio shows as running, with its steps -------------------

def test_attach_follows_a_run_resumed_outside_the_studio(tmp_path):
    import json

    from pipeline.train import monitor

    jobs = JobManager(tmp_path / "jobs")
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("base_model: tiny\n")
    job = jobs.start("train", ["train", "--out", str(run)], run_dir=str(run), program=[sys.executable, "-c", "pass"])
    jobs.wait(job.id, timeout=30)
    # The CLI resumed it: status.json says running with a live pid (this test process), steps advance.
    (run / "status.json").write_text(json.dumps({"state": "running", "pid": os.getpid(), "step": 7, "max_steps": 20}))
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": i, "loss": 2.0 - i / 10}) + "\n" for i in (5, 6, 7)))
    view = monitor.attach(jobs, job.id)
    assert view.state == "running" and view.step == 7, (view.state, view.step)
    assert "resumed outside the studio" in view.message and "step 7" in view.log


# ---- Resume pressed the moment a run says "stopped", while its process is still exiting -------

def test_resume_waits_for_the_stopped_runs_process_instead_of_refusing(tmp_path):
    import json

    from pipeline.train import monitor

    jobs = JobManager(tmp_path / "jobs")
    run = tmp_path / "runs" / "r1"
    (run / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (run / "checkpoints" / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (run / "config.yaml").write_text("base_model: tiny\n")
    # The run has written "stopped"; its process takes 3 s more to exit (saving, torch shutdown).
    (run / "status.json").write_text(json.dumps({"state": "stopped", "step": 2, "max_steps": 12}))
    exiting = jobs.start("train", ["train", "--out", str(run)], run_dir=str(run),
                         program=[sys.executable, "-c", "import time; time.sleep(3)"])
    view = monitor.attach(jobs, exiting.id)
    assert view.state == "stopped" and not view.resumable  # the button waits for the process
    resumed = monitor.resume(jobs, str(run))  # pressed anyway (an API call, a stale page): it waits
    try:
        assert jobs.get(exiting.id).state == "finished" and resumed.argv == ["train", "--resume", str(run)]
        assert monitor.attach(jobs, exiting.id).job_id == resumed.id  # the page follows the resumed job
    finally:
        jobs.stop(resumed.id, force=True)
        jobs.wait(resumed.id, timeout=30)


# ---- 8. A reload during a run shows that run's form, not the default preset ---------------

def test_reloaded_form_is_the_running_jobs_form(root_settings, tmp_path):
    from pipeline.train import monitor

    from pipeline.runs import RunFolder
    from pipeline.train.config import TrainConfig

    form = {**monitor.form_defaults("smoke", root_settings), "data": "/data/v3/train.jsonl", "lora.r": 4,
            "learning_rate": 0.005, "lora.target_modules": ["q_proj", "v_proj"], "max_steps": 3}
    jobs = JobManager(root_settings.state_dir / "jobs")
    assert monitor.page_form(jobs, root_settings) is None  # nothing running: the tab shows defaults
    # what Start writes: the form's TrainConfig as the run's config file (the job then reads it)
    run = RunFolder(tmp_path / "20261202-000000-smoke")
    run.path.mkdir()
    run.train_config_path.write_text(TrainConfig.model_validate(monitor.form_values(form)[1]).to_yaml())
    job = jobs.start("train", monitor.command_argv(str(run.train_config_path), str(run.path)), run_dir=str(run.path),
                     program=[sys.executable, "-c", "import time; time.sleep(20)"])
    try:
        assert monitor.page_form(jobs, root_settings) == form
    finally:
        jobs.stop(job.id, force=True)


# ---- Arena: "both bad" counted the same in win rate and Bradley-Terry; admin-chosen contenders

def _vote(i, vote, left, right="base"):
    return {"battle_id": f"b{i}", "model_left": left, "model_right": right, "vote": vote,
            "winner": {"left": left, "right": right}.get(vote), "conversation_left": [], "conversation_right": [],
            "turns": 1, "prompt_id": None, "category": None, "voter_id": f"anon:{i}", "started_at": 1000.0 + i,
            "voted_at": 1001.0 + i, "sampling": {}}


def test_both_bad_counts_the_same_in_win_rate_and_bradley_terry():
    from pipeline.arena import stats

    votes = [_vote(i, "left" if i < 5 else "tie", "x") for i in range(10)]
    votes += [_vote(10 + i, "left" if i < 2 else "both_bad", "y") for i in range(10)]
    s = stats.summarize(votes)
    rate = {r["model"]: r["win_rate"] for r in s["vs_base"]}
    assert rate["y"] == pytest.approx(0.6) and rate["x"] == pytest.approx(0.75)
    bt = {r["model"]: r["rating"] for r in s["bradley_terry"]}
    # Each model met only the base: its rating implies exactly its win rate against it.
    for m in ("x", "y"):
        implied = 1 / (1 + 10 ** ((bt["base"] - bt[m]) / 400))
        assert implied == pytest.approx(rate[m], abs=0.03), (m, implied, rate[m])
    assert "both bad" in stats.RULE and "Bradley-Terry" in stats.RULE


def test_admin_chooses_the_arena_contenders(root_settings):
    import json

    import yaml

    from pipeline.arena import Arena

    # Finished runs trained on the studio's own base (the Arena pairs only those, #13), and one
    # trained on another base that no admin choice can bring in.
    for name, base in (("good-run", root_settings.base_model), ("smoke-run", root_settings.base_model),
                       ("other-base", "llama-3.1-8b-instruct")):
        run = root_settings.runs_dir / name
        (run / "adapter").mkdir(parents=True)
        (run / "adapter" / "adapter_config.json").write_text("{}")
        (run / "status.json").write_text(json.dumps({"state": "finished"}))
        (run / "config.yaml").write_text(yaml.safe_dump({"base_model": base}))
    arena = Arena(root_settings, lambda: None)
    assert set(arena.contenders()) == {"base", "good-run", "smoke-run"} and arena.chosen_contenders() is None
    assert arena.set_contenders(["good-run"]) == ["good-run"]
    assert set(Arena(root_settings, lambda: None).contenders()) == {"base", "good-run"}  # kept on disk
    assert Arena(root_settings, lambda: None).chosen_contenders() == ["good-run"]
    with pytest.raises(UserError, match="not finished runs"):
        arena.set_contenders(["no-such-run"])
    with pytest.raises(UserError, match="not finished runs"):  # on another base: not choosable either
        arena.set_contenders(["good-run", "other-base"])
    with pytest.raises(UserError, match="at least one"):
        arena.set_contenders([])
    assert set(arena.contenders()) == {"base", "good-run"}  # a refused choice leaves the old one
    assert arena.set_contenders(None) == ["good-run", "smoke-run"]
    assert set(arena.contenders()) == {"base", "good-run", "smoke-run"}
    assert "other-base" in arena.left_out()


# ---- cosmetics: the exported data card names no absolute local path -------------------------

def test_exported_data_card_has_no_absolute_path(root_settings):
    from pipeline.data import stages

    out = stages.run_export(root_settings, include_pending=False, note="")
    folder = Path(out["folder"])
    for name in ("README.md", "manifest.json"):
        text = (folder / name).read_text()
        assert str(root_settings.root) not in text and str(root_settings.work_dir) not in text, name
    assert "data/personas/taskmaster/train.jsonl" in (folder / "README.md").read_text()


# ---- cosmetics: what the Train tab shows is readable (rounded, whole steps, nothing cut off) ----

def test_train_tab_rounds_runs_plots_whole_steps_and_spells_out_the_preset(root_settings):
    import json as _json
    import urllib.request

    from pipeline.train import monitor
    from pipeline.train.config import PRESETS
    from studio.app import build_app
    from studio.tabs.train import MIN_STEPS_AXIS, _loss_plot, _preset_note, _runs_frame

    df = _runs_frame([{"run": "r", "first_loss": 6.223239898681641, "final_loss": 3.3981821537017822,
                       "runtime_s": 51.27, "adapter_mb": 0.03}, {"run": "q", "first_loss": None}])
    assert df.loc[0, "first_loss"] == 6.223 and df.loc[0, "final_loss"] == 3.398 and df.loc[0, "runtime_s"] == 51
    assert df.loc[1, "first_loss"] is None or df.loc[1, "first_loss"] != df.loc[1, "first_loss"]  # None or NaN
    # A 5-step run: the axis spans 0..20, so Vega's ticks fall on whole steps (not 1.5, 2.5, ...);
    # a long run: its whole planned length.
    short = monitor.View("j", "running", "", step=3, max_steps=5, metrics=[{"step": s, "loss": 1.0} for s in (1, 2, 3)])
    assert _loss_plot(short).x_lim == [0, MIN_STEPS_AXIS]
    assert _loss_plot(monitor.View("j", "running", "", max_steps=300)).x_lim == [0, 300]
    # The preset box holds names only (a description is cut off there); the note says it in full.
    with launched(build_app(root_settings)) as url:
        cfg = _json.loads(urllib.request.urlopen(f"{url}/config").read().decode())
    box = next(c["props"] for c in cfg["components"] if c.get("props", {}).get("elem_id") == "train-preset")
    assert [c[0] for c in box["choices"]] == list(PRESETS)
    assert _preset_note("cpu-demo") == f"**cpu-demo**: {PRESETS['cpu-demo'][0]}"
    from studio.app import CSS

    assert "#train-plan pre" in CSS and "pre-wrap" in CSS  # the plan's long lines wrap
