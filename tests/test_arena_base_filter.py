"""The Arena pairs only adapters trained on the studio's current base model; the others are listed
with the reason, for the admin. Real run folders on disk (status.json, config.yaml, adapter/)."""

from __future__ import annotations

import json

import yaml

from pipeline.arena.service import arena_runs, finished_runs
from pipeline.runs import list_runs, same_base, same_base_model
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


def test_one_base_filter_the_arena_and_list_runs_share_names_a_model_by_any_of_its_names(tmp_path):
    """`pipeline.runs.same_base` is the one filter: a registry name and its Hub id are the same weights,
    and a run whose config.yaml is broken is left out with a reason instead of breaking the listing."""
    runs = tmp_path / "runs"
    _run(runs, "by-hub-id", "HuggingFaceTB/SmolLM2-135M-Instruct")
    _run(runs, "by-name", "smollm2-135m")
    _run(runs, "broken-config", "smollm2-135m")
    (runs / "broken-config" / "config.yaml").write_text("base_model: [unclosed")
    assert same_base_model("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert not same_base_model("smollm2-135m", "llama-3.1-8b-instruct") and not same_base_model(None, "smollm2-135m")
    assert sorted(r.id for r in list_runs(runs, where=same_base("smollm2-135m"))) == ["by-hub-id", "by-name"]
    paired, left_out = arena_runs(runs, "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert sorted(paired) == ["by-hub-id", "by-name"]
    assert left_out == {"broken-config": "trained on an unknown base model, not on the base model "
                                         "HuggingFaceTB/SmolLM2-135M-Instruct"}
