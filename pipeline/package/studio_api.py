"""What the studio's Publish tab calls: one function per control, returning rows and dataclasses.

The tab (studio/tabs/publish.py) lays out components and wires them to these; Gradio updates,
toasts and downloads stay in studio/. A user's mistake raises UserError naming the fix; the push
is the exception: its failure comes back in `PushView.error`, because the tab keeps the reason on
the page next to the button (and clears the token field) instead of only toasting it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from ..errors import UserError
from ..settings import Settings
from .build import PackageConfig, build_package, default_package_dir, publishable_runs
from .validate import validate_package

FINDING_HEADERS = ["level", "file", "problem", "fix"]


@dataclass
class PackageView:
    summary: str  # markdown: what was built, and the next step
    command: str  # the same from the command line


@dataclass
class ValidationView:
    verdict: str  # markdown: passed or failed, counts, what a push then needs
    rows: list[list[str]]  # one finding per row, FINDING_HEADERS


@dataclass
class PushView:
    markdown: str  # the result (links), or why it failed
    command: str  # the `python -m pipeline publish` line (token never shown); "" when the form was unusable
    error: str | None = None  # the user-facing reason, when the push did not happen


def runs(settings: Settings) -> list[tuple[str, str]]:
    """(label, run folder) of every finished run, newest first, labelled with its evaluation decision."""
    return publishable_runs(settings)


def package(run: str | None, settings: Settings, engine_factory=None) -> PackageView:
    result = build_package(PackageConfig(run=run or ""), settings, engine_factory=engine_factory)
    return PackageView(result.summary() + "\n\nNext: **Validate**.",
                       f"Same from the command line: `python -m pipeline package --run {run}`")


def validate(run: str | None, settings: Settings) -> ValidationView:
    rep = validate_package(default_package_dir(run, settings), settings)
    return ValidationView(rep.markdown(), rep.rows())


def push_command(cfg) -> str:
    """The `python -m pipeline publish` line that does what the form does (token never shown)."""
    argv = ["HF_TOKEN=...", "python -m pipeline publish", shlex.quote(cfg.package), "--repo-id", shlex.quote(cfg.repo_id)]
    argv.append("--private" if cfg.private else "--public")
    if cfg.dataset_repo:
        argv += ["--dataset-repo", shlex.quote(cfg.dataset_repo)]
    if cfg.override_validation:
        argv.append("--override-validation")
    return " ".join(argv)


def push(run: str | None, settings: Settings, *, token: str | None, repo_id: str | None, dataset_repo: str | None,
         private: bool, override_validation: bool, user_errors: tuple = (UserError,), message=str) -> PushView:
    """Push the run's package to the Hub. The token lives only in this call (never stored, logged or
    echoed). `user_errors`/`message`: which exceptions are the user's and how they read (the studio's)."""
    from ..hub import PushConfig, push_package

    cli = ""
    try:
        cfg = PushConfig(package=str(default_package_dir(run, settings)), repo_id=repo_id or "",
                         private=bool(private), override_validation=bool(override_validation),
                         dataset_repo=(dataset_repo or "").strip() or None)
        cli = "Same from the command line: `" + push_command(cfg) + "`"
        result = push_package(cfg, settings, token=token)
    except user_errors as exc:
        msg = message(exc)
        return PushView(f"**Push failed:** {msg}", cli, error=msg)
    return PushView(result.markdown(), cli)
