"""`python -m pipeline run`: the stages in order, a rerun continues, a missing stage is named.

Runs the real CLI on the tiny model with the `smoke` preset (5 training steps) so it takes
seconds; the cpu-demo preset's wall time and gate table are measured in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pipeline import run_all
from pipeline.settings import Settings

from .conftest import REPO


def _cli(args: list[str], work, timeout=600) -> subprocess.CompletedProcess:
    env = dict(os.environ, TASKMASTER_WORK_DIR=str(work), TASKMASTER_CACHE_DIR=str(REPO / ".cache"))
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_run_trains_then_runs_or_names_each_later_stage_and_a_rerun_continues(tmp_path, tiny_model_dir):
    out = tmp_path / "runs" / "smoke"
    r = _cli(["run", "--preset", "smoke", "--base", str(tiny_model_dir), "--out", str(out)], tmp_path / "work")
    record = json.loads((out / run_all.RECORD).read_text())
    states = {s["name"]: s for s in record["stages"]}
    assert states["train"]["state"] == "done", r.stdout + r.stderr
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert "total wall time" in r.stdout
    missing = [s for s in ("evaluate", "package", "validate") if not run_all.stage_available(s)]
    if missing:
        first = missing[0]
        assert states[first]["state"] == "missing" and f"stage {first!r} is not available" in r.stdout
        assert r.returncode == 3, "a missing stage is not a success"
        assert "(no gate table" in r.stdout or "QUALITY GATE STATUS" in r.stdout
    else:
        assert [states[s]["state"] for s in ("evaluate", "package")] == ["done", "done"], r.stdout
        assert "QUALITY GATE STATUS" in r.stdout and record["gates"], r.stdout
        assert (out / "eval" / "EVALUATION_RESULTS.json").is_file() and (out / "package" / "README.md").is_file()
        # 5 steps on a random tiny model cannot pass the gates: validation must say so (never a fake pass).
        if record["approved"]:
            assert states["validate"]["state"] == "done" and r.returncode == 0
        else:
            assert states["validate"]["state"] == "failed" and "quality gate" in states["validate"]["message"]
            assert "REQUIRES ITERATION" in r.stdout and r.returncode == 1
    # The same command again: training is not repeated.
    r2 = _cli(["run", "--preset", "smoke", "--base", str(tiny_model_dir), "--out", str(out), "--stages", "train"],
              tmp_path / "work")
    assert r2.returncode == 0, r2.stderr
    again = json.loads((out / run_all.RECORD).read_text())
    assert [s["state"] for s in again["stages"]] == ["skipped"]


def test_a_missing_stage_is_named_never_faked(monkeypatch, tmp_path):
    with pytest.raises(run_all.StageMissing, match=r"stage 'evaluate' is not available.*pipeline\.nowhere\.run_it"):
        run_all._find([("pipeline.nowhere", "run_it")], "evaluate")
    with pytest.raises(run_all.StageMissing, match="pipeline.spec.no_such_function"):
        run_all._find([("pipeline.spec", "no_such_function")], "package")

    def trained(out, *a):
        out.mkdir(parents=True, exist_ok=True)
        return "done", {"final_loss": 0.3}

    def missing(*a):
        raise run_all.StageMissing("stage 'package' is not available in this build (looked for x.y)")

    monkeypatch.setitem(run_all.STAGE_FNS, "train", trained)
    monkeypatch.setitem(run_all.STAGE_FNS, "evaluate", lambda *a: ("done", {}))
    monkeypatch.setitem(run_all.STAGE_FNS, "package", missing)
    report = run_all.run_all("smoke", tmp_path / "r", Settings.from_env(env={}, work_dir=tmp_path), echo=False)
    assert [s.state for s in report.stages] == ["done", "done", "missing", "not run"]
    assert report.exit_code == 3


def test_gate_table_reads_the_evaluation_results(tmp_path):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "EVALUATION_RESULTS.json").write_text(json.dumps({"gates": {
        "overall_score": {"value": 8.1, "threshold": 7.5, "passed": True},
        "no_violations": {"value": 1, "threshold": 0, "passed": False}}}))
    gates, approved = run_all.read_gates(tmp_path)
    assert approved is False and [g["gate"] for g in gates] == ["overall_score", "no_violations"]
    table = run_all.gate_table(gates, approved)
    assert "overall_score" in table and "✓ PASS" in table and "✗ FAIL" in table and "REQUIRES ITERATION" in table


def test_unknown_preset_or_stage_says_what_to_use(tmp_path):
    r = _cli(["run", "--preset", "smoke", "--stages", "train,deploy", "--out", str(tmp_path / "x")], tmp_path)
    assert r.returncode == 2 and "deploy" in r.stderr and "train, evaluate, package, validate" in r.stderr


def test_a_stopped_training_is_reported_as_stopped_and_resumable(monkeypatch, tmp_path):
    def stopped(out, *a):
        out.mkdir(parents=True, exist_ok=True)
        raise run_all.StageStopped("training stopped at step 3; rerun the same command to resume it")

    monkeypatch.setitem(run_all.STAGE_FNS, "train", stopped)
    report = run_all.run_all("smoke", tmp_path / "r", Settings.from_env(env={}, work_dir=tmp_path), echo=False)
    assert [s.state for s in report.stages] == ["stopped", "not run", "not run", "not run"]
    assert report.exit_code == 1 and "resume" in report.stages[0].message
    assert json.loads((tmp_path / "r" / run_all.RECORD).read_text())["stages"][0]["state"] == "stopped"
