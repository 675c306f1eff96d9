"""Screenshots of every tab of a real running studio, for the README: docs/images/<tab>.png.

    python -m tests.browser.screenshots --run runs/smoke-embedded-note9 --tabs Persona,Data,Evaluate,Arena,Publish
    python -m tests.browser.screenshots --base /tmp/tiny-llama --tabs Train --train-steps 40   # a live run

The studio runs as in production (`python app.py`), on a copy of the shipped data and a temp
work folder holding a copy of the given finished run(s) (their adapter, metrics and
evaluation, without checkpoints), so the Evaluate, Arena and Publish tabs show a real run.
The Arena screenshot is taken after one real battle and vote; the Train screenshot after a
real run started from its form (`--train-steps`, on a tiny `--base` so it takes seconds;
build one with `python -c "from pipeline.testing.tiny_model import build_tiny_llama as b; b('/tmp/tiny-llama')"`). Needs /usr/bin/chromium
(`make browser`).
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from .conftest import (CHROMIUM, CHROMIUM_ARGS, REPO, TAB_LABELS, launch_studio, open_studio, open_tab)

VIEWPORT = {"width": 1400, "height": 1000}
# A shared, loaded machine (the script runs under `nice -n 19` beside others' jobs) can take
# minutes to serve the first page or a battle: every wait below is on a condition, never a guess.
WAIT_MS = 600_000


def _copy_run(src: Path, runs_dir: Path) -> Path:
    dest = runs_dir / src.name
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("checkpoints", "*.partial", "*.old-*"))
    return dest


def _settle(page, ms: int = 2500) -> None:
    """Let load handlers, timers and plots finish drawing."""
    try:
        page.wait_for_load_state("networkidle", timeout=15_000)
    except Exception:
        pass  # a studio with a live timer never goes idle; the fixed wait below covers it
    page.wait_for_timeout(ms)


def _arena_battle(page, timeout_ms: int = WAIT_MS) -> None:
    page.locator("#arena-prompt textarea").fill("I have too many tasks and don't know where to start")
    page.locator("#arena-send").click()
    page.wait_for_function("() => !document.querySelector('#arena-vote-left').disabled", timeout=timeout_ms)
    page.locator("#arena-vote-left").click()
    page.locator("#arena-reveal").get_by_text("You voted").wait_for(timeout=timeout_ms)


def _choose(page, elem_id: str, text: str) -> None:
    """Pick the option of a Gradio dropdown whose label contains `text`."""
    page.locator(f"#{elem_id} input").first.click()
    page.locator("[role=option]").filter(has_text=text).first.click()
    page.wait_for_timeout(800)


def _train_in_ui(page, steps: int) -> None:
    """A real short run started from the Train tab, on the studio's base model."""
    max_steps = page.locator("#train-maxsteps input")
    max_steps.fill(str(steps))
    max_steps.press("Tab")
    page.wait_for_timeout(1500)
    page.locator("#train-start").click()
    page.locator("#train-progress b").get_by_text("finished").wait_for(timeout=600_000)


def take(out_dir: Path, runs: list[Path], base_model: str, *, train_steps: int = 0,
         tabs: tuple[str, ...] = TAB_LABELS, full_page: bool = True) -> list[Path]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        raise SystemExit(f"{CHROMIUM} not found: run `make browser`")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="studio-shots-"))
    (tmp / "work" / "runs").mkdir(parents=True)
    for r in runs:
        _copy_run(r, tmp / "work" / "runs")
    server = launch_studio(tmp, base_model=base_model)
    written = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(WAIT_MS)
            open_studio(page, server.url, timeout_ms=WAIT_MS)
            _settle(page)
            # Train last: a run trained on the tiny model must not be drawn into the Arena's battle.
            for label in [t for t in ("Persona", "Data", "Evaluate", "Arena", "Publish", "Train") if t in tabs]:
                open_tab(page, label)
                _settle(page)
                if label == "Evaluate" and runs:
                    # The newest run is preselected and shown on load.
                    page.locator("#eval-decision").get_by_text(re.compile("APPROVED|REQUIRES")).first.wait_for(
                        timeout=WAIT_MS)
                if label == "Arena" and runs:
                    _arena_battle(page)
                if label == "Publish" and runs:
                    _choose(page, "publish-run", runs[0].name)
                    page.locator("#publish-validate").click()
                    page.locator("#publish-verdict").get_by_text(re.compile(r"\w")).first.wait_for(timeout=WAIT_MS)
                if label == "Train" and train_steps:
                    _train_in_ui(page, train_steps)
                _settle(page, 1500)
                path = out_dir / f"{label.lower()}.png"
                page.screenshot(path=str(path), full_page=full_page)
                written.append(path)
                print(f"wrote {path}", flush=True)
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.browser.screenshots", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", action="append", default=[], help="finished run folder to show (repeatable)")
    ap.add_argument("--base", default="smollm2-135m", help="base model the studio serves (default: embedded)")
    ap.add_argument("--out", default=str(REPO / "docs" / "images"), help="output folder (default: docs/images)")
    ap.add_argument("--tabs", default=",".join(TAB_LABELS), help="comma list of tabs to shoot (default: all)")
    ap.add_argument("--train-steps", type=int, default=0,
                    help="start a run of this many steps from the Train tab first (use a tiny --base: seconds)")
    args = ap.parse_args(argv)
    # A stopped script must still stop its studio (the finally blocks run on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.time()
    take(Path(args.out), [Path(r) for r in args.run], args.base, train_steps=args.train_steps,
         tabs=tuple(t.strip() for t in args.tabs.split(",") if t.strip()))
    print(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
