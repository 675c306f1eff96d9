"""Shared fixtures: a tiny random Llama built locally, the embedded model, isolated settings.

Nothing here downloads anything: HF_HUB_OFFLINE is forced on for the whole suite.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# The suite must not pick up a developer's real keys or tokens.
for _var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "HF_TOKEN", "TASKMASTER_ADMIN_PASSWORD", "SPACE_ID"):
    os.environ.pop(_var, None)

from pipeline.settings import REPO_ROOT, Settings  # noqa: E402

REPO = REPO_ROOT
PERSONA_DIR = REPO / "data" / "personas" / "taskmaster"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer random Llama with a locally trained tokenizer and a ChatML template."""
    from pipeline.tiny_model import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture()
def settings(tmp_path) -> Settings:
    """Settings whose mutable state (runs, databases, jobs) lives in a temp folder, while the
    shipped data and the prepared-model cache are the repository's own."""
    return Settings.from_env(env={}, work_dir=tmp_path / "work", base_model="smollm2-135m",
                             cache_dir=REPO / ".cache")


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    """The prepared embedded SmolLM2 (make test prepares it; this is a no-op then)."""
    from pipeline.models import prepare_embedded

    return prepare_embedded(Settings.from_env(env={}, cache_dir=REPO / ".cache"))


def pytest_collection_modifyitems(config, items):
    """Everything under tests/browser/ drives Chromium: mark it `browser` so `make test-fast`
    (`-m "not slow and not browser"`) leaves it out without each file repeating the marker."""
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)
