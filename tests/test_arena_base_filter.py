"""The Arena pairs only adapters trained on the studio's current base model; the others are listed
with the reason, for the admin. Real run folders on disk (status.json, config.yaml, adapter/)."""

from __future__ import annotations

import json

import yaml

from pipeline.arena.service import arena_runs, finished_runs
from studio.tabs.arena import _results_markdown


def _run(runs, name, base, state="finished"):
    d = runs / name
    (d / "adapter").mkdir(parents=True)
    (d / "adapter" / "adapter_config.json").write_text("{}")
    (d / "status.json").write_text(json.dumps({"state": state}))
    (d / "config.yaml").write_text(yaml.safe_dump({"base_model": base}))


def test_only_adapters_of_the_current_base_are_paired_and_the_rest_say_why(tmp_path):
    runs = tmp_path / "runs"
    _run(runs, "on-smol", "smollm2-135m")
    _run(runs, "on-llama", "llama-3.1-8b-instruct")
    _run(runs, "unfinished", "smollm2-135m", state="running")
    paired, left_out = arena_runs(runs, "smollm2-135m")
    assert list(paired) == ["on-smol"] and paired["on-smol"] == runs / "on-smol" / "adapter"
    assert list(left_out) == ["on-llama"]
    assert "trained on llama-3.1-8b-instruct" in left_out["on-llama"] and "smollm2-135m" in left_out["on-llama"]
    # the studio on the 8B base: the other way round
    assert list(finished_runs(runs, "llama-3.1-8b-instruct")) == ["on-llama"]
    # no base given: every finished run (the CLI's listing)
    assert sorted(finished_runs(runs)) == ["on-llama", "on-smol"]
    # the admin's results view names the left-out run and why, with or without votes
    md = _results_markdown({"votes": 0, "left_out": left_out})
    assert "Not in the Arena: `on-llama`: trained on llama-3.1-8b-instruct" in md
