"""Issue 19's newcomer path, end to end in a real browser on the tiny model, one studio:

validate the persona -> filter, review (one reject, one approve) and export the data -> train
from that exported version -> stop -> resume from the UI -> reload mid-run (form and status
stay right) -> evaluate with a progress bar -> compare two evaluated runs -> package the run
and download the zip -> an admin chooses the Arena's contenders -> one battle and a vote.

Everything is real: `python app.py` in a subprocess, background jobs (train, evaluate) that
load torch, the SQLite review and vote stores. The second run of the comparison is a finished
run with a real (untrained) adapter, evaluated by the CLI in the background while the page
walks through the Data tab, with the same settings the page uses (same eval set, judge and
sampling: the comparison refuses anything else).

`screenshots=DIR` (env TASKMASTER_WALK_SHOTS) saves a full-page screenshot of each tab as the
walk leaves it: `make`-free README screenshots from the same walk (tests/browser/screenshots.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from pipeline.arena.votes import VoteStore
from pipeline.runs import RunFolder
from pipeline.testing.finished_run import make_finished_run

from ..conftest import REPO
from .conftest import open_studio, open_tab

EVAL_ARGS = ["--judge", "rubric", "--limit", "3", "--max-new-tokens", "8"]  # what the page's form sends below
OTHER_RUN = "walk-other-run"
SHOTS = os.environ.get("TASKMASTER_WALK_SHOTS")


def _shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(1500)
        # a toast ("taskmaster is valid.") would cover the page's top right: close them first
        for close in page.locator(".toast-close").all():
            try:
                close.click(timeout=1000)
            except Exception:
                pass  # gone by itself meanwhile
        page.wait_for_timeout(300)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def _text(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id}").inner_text()


def _wait_text(page, elem_id: str, pattern: str, timeout_ms: int = 120_000) -> str:
    """Wait until #elem_id's text matches the regex `pattern`; return the text. On a timeout the
    failure names what the element showed and every toast (warning) seen meanwhile."""
    import time

    deadline, toasts = time.time() + timeout_ms / 1000, []
    while True:
        text = _text(page, elem_id) if page.locator(f"#{elem_id}").count() else ""
        if re.search(pattern, text):
            return text
        toasts += [t for t in page.locator(".toast-body").all_inner_texts() if t not in toasts]
        if time.time() > deadline:
            raise AssertionError(f"#{elem_id} never matched {pattern!r}; it shows {text[:300]!r}; toasts: {toasts}")
        page.wait_for_timeout(400)


def _wait_value(page, selector: str, expected: str, timeout_ms: int = 120_000) -> None:
    """Wait until the input at `selector` holds `expected`: a value a page-load handler fills in
    arrives on its own schedule, so it is waited for, never read once."""
    try:
        page.wait_for_function("([sel, want]) => document.querySelector(sel)?.value === want",
                               arg=[selector, expected], timeout=timeout_ms)
    except Exception:
        value = page.evaluate("(sel) => document.querySelector(sel)?.value", selector)
        raise AssertionError(f"{selector} never held {expected!r}; it holds {value!r}") from None


def _open(page, label: str) -> None:
    """open_tab, tolerant of a tab bar that the page-load handlers are still redrawing (after a
    reload the access panel re-shows the tabs; a click on a button being replaced can stall)."""
    from .conftest import tab_button

    selected = "(l) => [...document.querySelectorAll('[role=tab]')].some(b => b.textContent.trim() === l " \
               "&& b.getAttribute('aria-selected') === 'true')"
    for _ in range(3):
        if page.evaluate(selected, label):
            return
        try:
            tab_button(page, label).click(timeout=10_000)
            page.wait_for_function(selected, arg=label, timeout=10_000)
            return
        except Exception:
            page.wait_for_timeout(1000)
    open_tab(page, label)


def _choose(page, elem_id: str, text: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.locator("[role=option]").filter(has_text=text).first.click()


class _FrozenAtFirstStep:
    """SIGSTOP the training job (its process group) as soon as a run under `runs_dir` reports
    `running` at step >= 1; SIGCONT on exit. Signals sent meanwhile (the page's Stop) wait in the
    frozen processes and are delivered on SIGCONT, so the stop lands at a step below max_steps
    however fast the machine trains."""

    def __init__(self, runs_dir: Path):
        import threading

        self.runs_dir, self.pgid, self.done = runs_dir, None, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        import json
        import signal

        while not self.done.is_set():
            for status in self.runs_dir.glob("*/status.json"):
                try:
                    st = json.loads(status.read_text())
                except (OSError, ValueError):
                    continue  # being rewritten
                if st.get("state") == "running" and (st.get("step") or 0) >= 1 and st.get("pid"):
                    try:
                        self.pgid = os.getpgid(st["pid"])
                        os.killpg(self.pgid, signal.SIGSTOP)
                    except ProcessLookupError:
                        continue
                    return
            self.done.wait(0.002)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        import signal

        self.done.set()
        self.thread.join()
        if self.pgid is not None:
            os.killpg(self.pgid, signal.SIGCONT)


def _train_step(page) -> int:
    m = re.search(r"step (\d+)/", _text(page, "train-progress"))
    return int(m.group(1)) if m else 0


# pytest.ini's 600 s per test is under what this walk of four background jobs takes on a loaded
# 2-core box (572 s measured at load 5-11): its own limit, above the sum of its waits' worst cases.
@pytest.mark.timeout(2400)
def test_a_newcomer_walks_from_persona_to_arena(studio_server, page, tiny_model_dir, tmp_path):
    server = studio_server(env={"TASKMASTER_ARENA_MAX_NEW_TOKENS": "8"}, fresh=True)
    runs_dir = server.work_dir / "runs"
    # The comparison's other run, evaluated in the background by the CLI while the page works.
    other = make_finished_run(runs_dir, tiny_model_dir, OTHER_RUN)
    other_eval = subprocess.Popen([sys.executable, "-m", "pipeline", "evaluate", "--run", str(other), *EVAL_ARGS],
                                  cwd=REPO, env=server.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
    try:
        _walk(page, server, runs_dir, other_eval, tmp_path)
    finally:
        if other_eval.poll() is None:
            other_eval.kill()


def _walk(page, server, runs_dir: Path, other_eval, tmp_path: Path) -> None:
    open_studio(page, server.url)

    # ---- Persona: validate ------------------------------------------------------------------
    _open(page, "Persona")
    page.locator("#persona-spec .cm-content").wait_for(timeout=60_000)
    page.locator("#persona-validate").click()
    assert "Valid: TaskMaster" in _wait_text(page, "persona-status", "Valid:")
    _shot(page, "persona")

    # ---- Data: filter, review (reject one, approve one), export ----------------------------
    _open(page, "Data")
    page.get_by_role("tab", name="Filter", exact=True).click()
    page.locator("#data-filter").click()
    assert "Quality filter:" in _wait_text(page, "data-stage-out", "Quality filter")
    page.locator("#data-review-mode").get_by_text("Random sample", exact=True).click()
    card = _wait_text(page, "data-review-card", r"status")
    rejected_id = re.match(r"\s*(\S+) · ", card).group(1)
    page.locator("#data-review-note").locator("input, textarea").first.fill("too long for a first reply")
    page.locator("#data-reject").click()
    _wait_text(page, "data-review-progress", r"rejected 1")
    page.locator("#data-approve").click()
    _wait_text(page, "data-review-progress", r"2/\d+ reviewed")
    page.locator("#data-export").click()
    exported = _wait_text(page, "data-export-out", r"exported \d+ examples")
    count = int(re.search(r"exported (\d+) examples", exported).group(1))
    _shot(page, "data")

    # ---- Train from the exported version; stop; resume from the UI; reload mid-run ----------
    _open(page, "Train")  # opening the tab moves the untouched Data field to the new export
    data_field = page.locator("#train-data textarea, #train-data input").first
    page.wait_for_function("() => /exports/.test(document.querySelector('#train-data textarea, "
                           "#train-data input')?.value || '')", timeout=120_000)
    export_path = data_field.input_value()
    version = Path(export_path).parent.name  # exports/<persona>/v<N>/train.jsonl
    # The plan is redrawn after the field moved (its own event): wait for it to name the export.
    _wait_text(page, "train-plan", rf"Data:\W+{re.escape(version)}\b")
    _choose(page, "train-preset", "smoke")
    # the preset's values arrive from the server (r 16 -> 8): only then set max steps, or they land on it
    _wait_value(page, "#train-r input", "8")
    steps = page.locator("#train-maxsteps input")
    steps.fill("12")
    steps.press("Tab")
    assert data_field.input_value() == export_path, "choosing a preset must not drop the Data field"
    # A quiet machine trains the tiny model's 12 steps in under a second, faster than the page
    # polls: the job is frozen at its first logged step until the page has seen it and Stop is pressed.
    with _FrozenAtFirstStep(runs_dir):
        page.locator("#train-start").click()
        # (The status reads "<state>: step N/M": a message further on may say "running" or "stopped".)
        _wait_text(page, "train-progress", r"\brunning: step [1-9]", 600_000)
        page.locator("#train-stop").click()
    _wait_text(page, "train-progress", r"\bstopped: step", 300_000)
    page.wait_for_function("() => !document.querySelector('#train-resume').disabled", timeout=300_000)
    stopped_at = _train_step(page)
    assert 0 < stopped_at < 12, _text(page, "train-progress")
    page.locator("#train-resume").click()
    _wait_text(page, "train-progress", r"\brunning: step", 300_000)
    page.reload()  # mid-run: the form is the running job's, the status follows it
    open_studio(page, server.url, timeout_ms=180_000)
    _open(page, "Train")
    _wait_text(page, "train-progress", r"\b(running|finished): step", 180_000)
    # the form comes from its own page-load event: wait for each value, do not read it once
    _wait_value(page, "#train-maxsteps input", "12")
    _wait_value(page, "#train-preset input", "smoke")
    _wait_value(page, "#train-data textarea, #train-data input", export_path)
    _wait_text(page, "train-progress", r"\bfinished: step 12/12", 600_000)
    run_id = re.search(r"runs/([\w.-]+)/adapter", _text(page, "train-progress")).group(1)
    run = RunFolder(runs_dir / run_id)
    recorded = run.config()["dataset"]
    assert recorded["version"] == version and recorded["count"] == count, recorded
    assert f'"id": "{rejected_id}"' not in Path(export_path).read_text(), "the rejected example was exported"
    _wait_text(page, "train-runs", run_id)
    _shot(page, "train")

    # ---- Evaluate with a progress bar; then compare with the other run ----------------------
    out, _ = other_eval.communicate(timeout=600)
    assert other_eval.returncode == 0, out[-2000:]
    _open(page, "Evaluate")
    _choose(page, "eval-run", run_id)
    page.locator("#eval-judge").get_by_text("rubric", exact=True).click()
    page.locator("#eval-limit input").fill("3")
    tokens = page.locator("#eval-max-new input")
    tokens.fill("8")
    tokens.press("Tab")
    # Empty decoding fields stay empty (= the model's defaults), so the form as it loads can start.
    assert page.locator("#eval-temperature input").input_value() == ""
    assert page.locator("#eval-top-p input").input_value() == ""
    page.locator("#eval-start").click()
    assert "python -m pipeline evaluate" in _wait_text(page, "eval-started", "Started")
    bar = _wait_text(page, "eval-progress", r"\d+/\d+ prompts", 600_000)
    assert page.locator("#eval-progress progress").count() == 1, bar
    _wait_text(page, "eval-progress", r"finished: .*100% of the evaluation", 600_000)
    # The results appear by themselves once the job is done.
    _wait_text(page, "eval-decision", r"REQUIRES ITERATION|APPROVED", 180_000)
    assert "3 prompts" in _text(page, "eval-decision")
    assert f"Trained on {version}" in _text(page, "eval-decision")
    _shot(page, "evaluate")
    page.reload()
    open_studio(page, server.url, timeout_ms=180_000)
    _open(page, "Evaluate")
    page.locator("#eval-compare").get_by_text("Compare two runs").first.click()
    _choose(page, "eval-compare-a", OTHER_RUN)
    _choose(page, "eval-compare-b", run_id)
    page.locator("#eval-compare-run").click()
    summary = _wait_text(page, "eval-compare-summary", r"compared with", 180_000)
    assert f"{run_id} compared with {OTHER_RUN}" in summary and "same eval set (3 prompts)" in summary
    assert "95% interval" in _text(page, "eval-compare-traits")

    # ---- Publish: package, then download the zip --------------------------------------------
    _open(page, "Publish")
    _choose(page, "publish-run", run_id)
    page.locator("#publish-package").click()
    _wait_text(page, "publish-package-status", r"Next: Validate", 600_000)
    link = page.locator(f"#publish-downloads a[href*='{run_id}-package.zip']").first
    link.wait_for(timeout=120_000)
    with page.expect_download(timeout=120_000) as dl:
        link.click()
    zip_path = tmp_path / "package.zip"
    dl.value.save_as(zip_path)
    names = zipfile.ZipFile(zip_path).namelist()
    assert any(n.endswith("adapter_config.json") for n in names) and any(n.endswith("README.md") for n in names), names
    # the package says which data version trained it (its training_config.yaml is the run's config)
    with zipfile.ZipFile(zip_path) as z:
        config = yaml.safe_load(z.read(next(n for n in names if n.endswith("training_config.yaml"))))
    assert (config["dataset"]["version"], config["dataset"]["count"]) == (version, count), config.get("dataset")
    # Validate the package: the findings table (level, file, problem, fix) is what publish.png shows.
    page.locator("#publish-validate").click()
    verdict = _wait_text(page, "publish-verdict", r"Validation \w+:", 600_000)
    assert "Checks:" in verdict, verdict
    _shot(page, "publish")

    # ---- Arena: the admin chooses the contenders, then one battle and a vote ----------------
    _open(page, "Arena")
    page.locator("#arena-contenders").get_by_text("Contenders (admin)").first.click()
    page.locator("#arena-contenders-load").click()
    box = page.locator("#arena-contenders-runs")
    box.get_by_text(OTHER_RUN, exact=True).wait_for(timeout=120_000)
    box.get_by_text(OTHER_RUN, exact=True).click()  # untick the other run: only the walk's run battles
    page.locator("#arena-contenders-save").click()
    assert f"Saved: {run_id} battle" in _wait_text(page, "arena-contenders-status", "Saved", 120_000)
    page.locator("#arena-prompt textarea").fill("I have too many tasks and don't know where to start")
    page.locator("#arena-send").click()
    page.wait_for_function("() => !document.querySelector('#arena-vote-left').disabled", timeout=600_000)
    # The tiny model never stops by itself: both replies hit the 8-token limit and say so.
    assert "cut at 8 tokens" in _text(page, "arena-left") and "cut at 8 tokens" in _text(page, "arena-right")
    page.locator("#arena-vote-tie").click()
    reveal = _wait_text(page, "arena-reveal", "You voted", 180_000)
    assert run_id in reveal and OTHER_RUN not in reveal
    _shot(page, "arena")
    rows = VoteStore(server.work_dir / "state" / "arena" / "votes.sqlite").votes()
    assert len(rows) == 1 and {rows[0]["model_left"], rows[0]["model_right"]} == {"base", run_id}
    # the cut marks the voter saw are stored with the vote (message 1: the first reply of each side)
    assert (rows[0]["cut_left"], rows[0]["cut_right"], rows[0]["cut"]) == ({1: 8}, {1: 8}, "both"), rows[0]

