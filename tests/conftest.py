"""Shared fixtures: a tiny random Llama built locally, the embedded model, isolated settings.

Nothing here downloads anything: HF_HUB_OFFLINE is forced on for the whole suite.
"""

from __future__ import annotations

import os
import time
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
    from pipeline.testing.tiny_model import build_tiny_llama

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


# A test that asks for one of these loads, trains or generates with a real model (or serves the
# whole studio, which loads one on demand): it is `slow` by what it uses, not by a list to keep.
MODEL_FIXTURES = {"tiny_model_dir", "embedded_model_dir", "tiny_run", "launched_studio"}
# Modules whose every test runs the pipeline's CLI or the app in a child process (torch imports).
SLOW_MODULES = {"test_app_launch.py", "test_run_all.py"}
# Tests that start many CLI child processes or a whole studio: each took 10 s or more in the fast
# lane (`pytest -m "not slow and not browser" --durations=60`, 2 cores at load ~10, 2026-12-02; their
# 291 s were 56% of the lane's 523 s). They run in `make test`; the fast lane keeps one of each kind.
SLOW_TESTS = {
    "test_bad_data_files.py::test_the_cli_answers_a_bad_file_with_a_message_and_exit_2",  # 47 s
    "test_data_tab.py::test_data_tab_end_to_end",  # 38 s
    "test_spec.py::test_cli_validate_ok_and_bad",  # 31 s
    "test_data_files.py::test_stats_cli_reports_unmet_targets_and_exits_1",  # 25 s
    "test_data_files.py::test_stats_cli_bad_file_is_a_user_error",  # 21 s
    "test_data_pipeline.py::test_killed_generate_job_resumes_without_repeating_completed_calls",  # 18 s
    "test_data_files.py::test_stats_cli_json_matches_function",  # 18 s
    "test_space_deploy.py::test_cli_space_deploy",  # 15 s
    "test_data_files.py::test_stats_cli_table",  # 15 s
    "test_bad_specs.py::test_bad_persona_yaml_is_refused_naming_the_file[deep_nesting]",  # 15 s
    "test_bad_specs.py::test_the_cli_never_echoes_control_characters",  # 12 s
    "test_persona_tab.py::test_persona_tab_through_gradio_client",  # 11 s
    "test_secret_scan_plants.py::test_every_planted_secret_is_found_and_none_is_shown",  # 11 s
}


def pytest_collection_modifyitems(config, items):
    """`browser`: everything under tests/browser/ (Chromium). `slow`: see MODEL_FIXTURES,
    SLOW_MODULES and SLOW_TESTS. `make test-fast` runs `-m "not slow and not browser"`."""
    for item in items:
        path = str(item.fspath).replace(os.sep, "/")
        if "tests/browser/" in path:
            item.add_marker(pytest.mark.browser)
        elif (path.rsplit("/", 1)[-1] in SLOW_MODULES or MODEL_FIXTURES & set(getattr(item, "fixturenames", ()))
              or f"{path.rsplit('/', 1)[-1]}::{item.name}" in SLOW_TESTS):
            item.add_marker(pytest.mark.slow)


def write_results(run_dir: Path, *, gates: list[dict] | None = None, pairs: list[dict] | None = None,
                  decision: str = "REQUIRES ITERATION", **fields) -> Path:
    """A schema-valid EVALUATION_RESULTS.json in `run_dir` (a finished run folder with the few
    fields a test sets), for tests of the readers; the evaluation stage writes the real ones."""
    import json

    from pipeline.evaluation.results import SCHEMA_VERSION
    from pipeline.runs import RunFolder

    run = RunFolder(run_dir)
    run.eval_dir.mkdir(parents=True, exist_ok=True)
    if not run.status_path.is_file():
        run.write_status("finished")
    run.results_path.write_text(json.dumps({
        "schema_version": SCHEMA_VERSION, "created_at": "2026-12-01T00:00:00Z", "decision": decision,
        "gates": gates or [], "metrics": {"adapter": {}, "base": {}},
        "ab": {"wins": 0, "losses": 0, "ties": 0, "n": 0, "win_rate": None, "ci_low": None, "ci_high": None,
               "pairs": pairs or []},
        "judge": {"kind": "rubric", "name": "rubric"}, "eval_set": {"path": "eval.yaml", "sha256": "0", "n": 0},
        "adapter": {"path": "adapter", "sha256": None, "size_bytes": None}, "run_config": {}, **fields}))
    return run.results_path


# ---- the real app on 127.0.0.1 ------------------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _patient_url_ok(url: str, timeout_s: float = 300) -> bool:
    """gradio.networking.url_ok's condition (the page answers), retried up to `timeout_s`."""
    import httpx

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            if httpx.head(url, timeout=60, verify=False).status_code in (200, 401, 301, 302, 303, 307, 308):
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


class launched:
    """`with launched(demo) as url:` serves any Gradio Blocks (queued) on a free 127.0.0.1 port
    and closes it afterwards; `queue` and `launch` take Gradio's own arguments."""

    def __init__(self, demo, *, queue: dict | None = None, **launch):
        self.demo, self.queue, self.launch = demo, queue or {}, {"quiet": True, **launch}

    def __enter__(self) -> str:
        import gradio.networking as networking

        self.demo.queue(**self.queue)
        port = free_port()
        # Gradio's launch checks its own page with ONE 3 s HEAD request and raises "When localhost
        # is not accessible, a shareable link must be created" on a timeout: on a loaded 2-core box
        # the page can take longer to render. Wait for the same condition, patiently, instead.
        check, networking.url_ok = networking.url_ok, _patient_url_ok
        try:
            self.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, **self.launch)
        finally:
            networking.url_ok = check
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc):
        self.demo.close()


@pytest.fixture()
def launched_studio():
    """`with launched_studio(settings[, ctx]) as url:` the studio of `build_app(settings)`, served
    for real (one place for the launch boilerplate every app-level test needs)."""

    def start(settings: Settings, ctx=None, *, queue: dict | None = None, **launch) -> launched:
        from studio.app import build_app

        demo = build_app(settings, ctx) if ctx is not None else build_app(settings)
        # the launch settings app.py uses (upload caps, ...), so the test serves what users get
        return launched(demo, queue=queue, **{**getattr(demo, "studio_launch_kwargs", {}), **launch})

    return start
