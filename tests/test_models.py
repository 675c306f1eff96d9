import json
import subprocess
import sys

import pytest
import torch

from pipeline import models
from pipeline.inference import ChatEngine, SamplingConfig
from pipeline.settings import Settings

from .conftest import REPO


def test_tiny_model_loads_through_from_pretrained(tiny_model_dir, settings):
    engine = ChatEngine(str(tiny_model_dir), settings)
    assert engine.model.config.num_hidden_layers == 2
    replies = engine.generate_batch([[{"role": "user", "content": "hi"}], [{"role": "user", "content": "a longer prompt"}]],
                                    sampling=SamplingConfig(max_new_tokens=4, temperature=0))
    assert len(replies) == 2 and all(isinstance(r, str) for r in replies)
    streamed = list(engine.stream([{"role": "user", "content": "hi"}], sampling=SamplingConfig(max_new_tokens=4, temperature=0)))
    assert streamed, "stream yields the growing reply"
    assert streamed[-1].strip() == replies[0], "streaming and batch decoding agree under greedy decoding"


def test_resolve_names_paths_and_hub_ids(tiny_model_dir):
    assert models.resolve("smollm2-135m").embedded
    assert models.resolve("llama-3.1-8b-instruct").train_id == "unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit"
    assert models.resolve(str(tiny_model_dir)).serve_id == str(tiny_model_dir.resolve())
    assert models.resolve("someone/some-model").serve_id == "someone/some-model"
    with pytest.raises(models.ModelNotAvailable, match="Unknown base model"):
        models.resolve("not a model")


def test_hub_model_not_in_cache_is_reported_missing(settings):
    ok, why = models.availability(models.resolve("someone/not-downloaded-model"), settings)
    assert not ok and "huggingface-cli download" in why
    with pytest.raises(models.ModelNotAvailable, match="not available here"):
        models.local_path("someone/not-downloaded-model", settings)


def test_production_target_needs_gpu_here(settings):
    ok, why = models.availability(models.REGISTRY["llama-3.1-8b-instruct"], settings)
    if torch.cuda.is_available():  # a GPU machine: the target is not refused for want of a GPU
        assert "needs a CUDA GPU" not in why, why
    else:
        assert not ok and "GPU" in why


@pytest.mark.slow
def test_embedded_model_generates(embedded_model_dir, settings):
    assert (embedded_model_dir / "model.safetensors").is_file()
    engine = ChatEngine("smollm2-135m", settings)
    assert engine.model.config.model_type == "llama"
    text = engine.generate([{"role": "system", "content": "You are TaskMaster."},
                            {"role": "user", "content": "I finished the quarterly report"}],
                           sampling=SamplingConfig(max_new_tokens=8, temperature=0))
    assert len(text.split()) >= 2


def test_models_list_cli_shows_embedded_ready(embedded_model_dir):
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "pipeline", "models", "list", "--json"], cwd=REPO, env=env,
                         capture_output=True, text=True, check=True)
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["smollm2-135m"]["ready"] is True
    prep = subprocess.run([sys.executable, "-m", "pipeline", "models", "prepare", "smollm2-135m"], cwd=REPO, env=env,
                          capture_output=True, text=True, check=True)
    assert "already prepared" in prep.stdout


def _cache_repo(cache, repo_id: str) -> None:
    """A repo in a Hugging Face hub cache laid out as `huggingface-cli download` leaves it."""
    d = cache / ("models--" + repo_id.replace("/", "--"))
    (d / "refs").mkdir(parents=True)
    (d / "refs" / "main").write_text("0" * 40)
    (d / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (d / "snapshots" / ("0" * 40) / "config.json").write_text("{}")


def test_training_availability_checks_the_training_repo_not_the_serving_repo(settings, tmp_path, monkeypatch):
    """A model whose trainer loads another repo (the 8B's pre-quantized 4-bit copy) is ready to serve
    with only the serving repo downloaded, but not ready to train: the run is refused before it starts,
    naming the repo to download, instead of trying to fetch it at its first step."""
    from huggingface_hub import constants

    from pipeline.train.config import ConfigError
    from pipeline.train.runner import prepare

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    entry = models.ModelEntry(name="two-repos", description="", train_id="org/model-bnb-4bit", serve_id="org/model")
    monkeypatch.setitem(models.REGISTRY, "two-repos", entry)
    _cache_repo(tmp_path / "hub", "org/model")
    assert models.availability(entry, settings) == (True, "in the local Hugging Face cache")
    ok, why = models.availability(entry, settings, "train")
    assert not ok and "huggingface-cli download org/model-bnb-4bit" in why and "serving uses org/model" in why
    assert models.local_path("two-repos", settings) == "org/model"
    with pytest.raises(ConfigError) as err:
        prepare({"base_model": "two-repos"}, settings)
    assert any(p.startswith("base_model:") and "org/model-bnb-4bit" in p for p in err.value.problems), err.value.problems
    _cache_repo(tmp_path / "hub", "org/model-bnb-4bit")
    assert models.local_path("two-repos", settings, purpose="train") == "org/model-bnb-4bit"
    row = {r["name"]: r for r in models.list_models(settings)}["two-repos"]
    assert row["ready"] and row["train_ready"]
