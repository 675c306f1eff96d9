"""Training under faults (issue 18), real TRL runs on the tiny Llama: a broken newest checkpoint is
skipped (saying which and why) for the newest intact one; after a hard kill between two saves,
resume neither repeats steps in metrics.jsonl nor loses the first segment's tokens; a cut-short
config.yaml is named as the broken file."""

from __future__ import annotations

import json
import shutil

import pytest

from pipeline.errors import UserError
from pipeline.train.checkpoints import checkpoint_problem
from pipeline.train.runner import read_metrics, run_training

from pipeline.jsonl import write_jsonl
from pipeline.testing.stop_after import StopAfter

from .test_train import _record, _tiny_cfg


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


CORRUPTIONS = {
    "adapter truncated": lambda c: _truncate(c / "adapter_model.safetensors"),
    "adapter emptied": lambda c: (c / "adapter_model.safetensors").write_bytes(b""),
    "optimizer truncated": lambda c: _truncate(c / "optimizer.pt"),
    "scheduler truncated": lambda c: _truncate(c / "scheduler.pt", 0.7),
    "trainer_state truncated": lambda c: _truncate(c / "trainer_state.json"),
}


@pytest.fixture(scope="module")
def stopped_run(tiny_model_dir, tmp_path_factory):
    """A run stopped at step 4 with checkpoints at steps 2 and 4, and the same run uninterrupted."""
    from pipeline.settings import Settings

    from .conftest import REPO
    root = tmp_path_factory.mktemp("faults")
    settings = Settings.from_env(env={}, work_dir=root / "work", cache_dir=REPO / ".cache")
    data = root / "train.jsonl"
    write_jsonl(data, [_record(i, [(f"add task {i}", f"Done: task {i} is on your list. Want a due date?")])
                       for i in range(6)])
    cfg = _tiny_cfg(tiny_model_dir, data, max_steps=6, save_steps=2, logging_steps=1)
    run_training(cfg, root / "stopped", settings, stop_event=StopAfter(4), echo=False)
    whole = run_training(cfg, root / "whole", settings, echo=False)
    return settings, root, whole


@pytest.mark.slow
def test_a_corrupt_newest_checkpoint_is_skipped_for_the_newest_intact_one(stopped_run, capfd):
    settings, root, whole = stopped_run
    survived = 0
    for i, (what, corrupt) in enumerate(CORRUPTIONS.items()):
        run = root / f"corrupt-{i}"
        shutil.copytree(root / "stopped", run)
        ckpt4 = run / "checkpoints" / "checkpoint-4"
        assert checkpoint_problem(ckpt4) is None
        corrupt(ckpt4)
        assert checkpoint_problem(ckpt4), what
        s = run_training(None, run, settings, resume=True, echo=False)
        err = capfd.readouterr().err
        assert s["state"] == "finished" and s["steps"] == 6, what
        assert s["resumed_from"].endswith("checkpoint-2"), what
        assert s["skipped_checkpoints"] and s["skipped_checkpoints"][0].startswith("checkpoint-4: "), what
        assert "skipping checkpoint-4" in err and "checkpoint-2" in err, what
        assert (run / "checkpoints" / "broken-checkpoint-4").is_dir(), "the broken checkpoint is kept aside"
        survived += 1
    assert survived == 5


@pytest.mark.slow
def test_resume_after_a_hard_kill_keeps_metrics_and_tokens_whole(stopped_run):
    settings, root, whole = stopped_run
    run = root / "killed"
    shutil.copytree(root / "stopped", run)
    # kill -9 after step 4 was logged but before checkpoint-4 was written: only checkpoint-2 is on disk
    shutil.rmtree(run / "checkpoints" / "checkpoint-4")
    st = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**st, "state": "running", "pid": 2 ** 22 + 12345}))
    assert [m["step"] for m in read_metrics(run)] == [1, 2, 3, 4]
    s = run_training(None, run, settings, resume=True, echo=False)
    steps = [m["step"] for m in read_metrics(run)]
    assert steps == [1, 2, 3, 4, 5, 6], "replayed steps 3-4 are not repeated"
    assert s["train_tokens"] == whole["train_tokens"], (s["train_tokens"], whole["train_tokens"])
    tokens = [m["tokens"] for m in read_metrics(run)]
    assert tokens == sorted(tokens), "the token count only grows across the resume"


@pytest.mark.slow
def test_no_intact_checkpoint_is_a_message(stopped_run):
    settings, root, _ = stopped_run
    run = root / "all-broken"
    shutil.copytree(root / "stopped", run)
    for c in (run / "checkpoints").glob("checkpoint-*"):
        (c / "optimizer.pt").write_bytes(b"")
    with pytest.raises(UserError, match=r"no intact checkpoint.*checkpoint-4: optimizer.pt is empty.*checkpoint-2"):
        run_training(None, run, settings, resume=True, echo=False)


@pytest.mark.slow
def test_a_truncated_config_yaml_names_the_broken_file(stopped_run):
    settings, root, _ = stopped_run
    run = root / "cut-config"
    shutil.copytree(root / "stopped", run)
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text[: text.index("\ntrain:")])
    with pytest.raises(UserError, match=r"config.yaml: this run's config.yaml is incomplete"):
        run_training(None, run, settings, resume=True, echo=False)
