"""Per-base-model default decoding (pipeline.models registry -> pipeline.inference.default_sampling),
recorded with every reply: respond rows, evaluation reply files, Arena votes."""

from __future__ import annotations

import json

import pytest

from pipeline.cli import main
from pipeline.inference import SamplingConfig, default_sampling
from pipeline.models import REGISTRY, sampling_defaults


def test_the_registry_gives_a_small_model_greedy_decoding_and_the_8b_the_seeds():
    small = default_sampling("smollm2-135m")
    assert small.temperature == 0 and small.generate_kwargs()["do_sample"] is False
    assert small.repetition_penalty == 1.1
    # The same model named by its Hub id decodes the same way.
    assert default_sampling(REGISTRY["smollm2-135m"].serve_id) == small
    big = default_sampling("llama-3.1-8b-instruct")
    assert (big.temperature, big.top_p) == (0.7, 0.9) and big.generate_kwargs()["do_sample"] is True
    # Overrides win; None means "not set".
    assert default_sampling("smollm2-135m", temperature=0.3, top_p=None).temperature == 0.3
    assert default_sampling("smollm2-135m", max_new_tokens=12).max_new_tokens == 12
    assert sampling_defaults("no-such-model")[0]["temperature"] == 0.7  # unknown: the seed's, no exception
    with pytest.raises(TypeError, match="unknown sampling"):
        default_sampling("smollm2-135m", temprature=0.1)


def test_a_small_local_folder_is_greedy(tiny_model_dir):
    s, why = sampling_defaults(str(tiny_model_dir))
    assert s["temperature"] == 0 and "greedy" in why


def test_respond_records_the_models_default_sampling_in_every_row(tiny_model_dir, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "a", "prompt": "I finished the report"}\n{"id": "b", "prompt": "Add a task"}\n')
    out = tmp_path / "r.jsonl"
    assert main(["respond", "--base", str(tiny_model_dir), "--prompts", str(prompts), "--out", str(out),
                 "--max-new-tokens", "4"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    expected = default_sampling(str(tiny_model_dir), max_new_tokens=4).to_dict()
    assert len(rows) == 2 and all(r["sampling"] == expected for r in rows)
    assert expected["temperature"] == 0
    # A flag the user set replaces only that setting.
    assert main(["respond", "--base", str(tiny_model_dir), "--prompts", str(prompts), "--out", str(out),
                 "--max-new-tokens", "4", "--temperature", "0.5"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(r["sampling"] == {**expected, "temperature": 0.5} for r in rows)


def test_sampling_describe_names_greedy():
    assert SamplingConfig(temperature=0).describe().startswith("greedy")
    assert "temperature 0.7" in SamplingConfig().describe()
