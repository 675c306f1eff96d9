"""benchmarks/recipe_sweep.py end to end on the tiny model: a setting is really trained and evaluated
through the pipeline's CLI, a DPO round on it is evaluated with the base replies reused and compared
with its SFT parent, the table is read back from the run folders, and a finished setting is not redone.
(The figures mean nothing at 2 steps; the sweep's real numbers are in docs/benchmarks.md.)"""

from __future__ import annotations

import pytest

from benchmarks import recipe_sweep


# four CLI processes (train, eval, DPO train, eval), each importing torch: ~2 min quiet, ~9 under load
@pytest.mark.timeout(1200)
def test_sweep_trains_evaluates_and_tabulates_then_reuses(tiny_model_dir, tmp_path, capsys):
    runs = tmp_path / "sweep"
    common = ["--runs-dir", str(runs), "--base", str(tiny_model_dir), "--max-steps", "2", "--limit", "2",
              "--threads", "1", "--set", "lora.layers=0"]  # the tiny model has 2 layers
    assert recipe_sweep.main(["A-cpu-demo", *common, "--dpo-from", "A-cpu-demo", "--self-play", "2"]) == 0
    out = capsys.readouterr().out
    for name in ("A-cpu-demo", "A-cpu-demo+dpo"):
        assert (runs / name / "adapter" / "adapter_config.json").is_file(), name
        assert (runs / name / "eval" / "EVALUATION_RESULTS.json").is_file(), name
        assert (runs / f"{name}.load.json").is_file(), name  # the load each training ran under
    assert (runs / "A-cpu-demo+dpo" / "pairs.jsonl").is_file()  # self-play pairs, as the round trained on
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert "(reference)" in rows["A-cpu-demo"] and "vs A-cpu-demo:" in rows["A-cpu-demo+dpo"]
    assert all("reader:" in rows[n] and "| 2 |" in rows[n] for n in ("A-cpu-demo", "A-cpu-demo+dpo"))
    # the base replies were generated once and reused by the DPO run's evaluation
    assert "base: reusing 2 replies" in (runs / "A-cpu-demo+dpo.eval.log").read_text()

    adapter = runs / "A-cpu-demo" / "adapter" / "adapter_model.safetensors"
    before = adapter.stat().st_mtime_ns
    assert recipe_sweep.main(["A-cpu-demo", *common]) == 0  # finished and evaluated: nothing redone
    assert adapter.stat().st_mtime_ns == before
    assert "A-cpu-demo: training" not in capsys.readouterr().out


def test_unknown_setting_is_named(capsys):
    assert recipe_sweep.main(["Z-nope"]) == 2
    assert "Z-nope" in capsys.readouterr().err
