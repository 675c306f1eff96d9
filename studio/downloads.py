"""What the Evaluate and Publish tabs offer to download for a run: the adapter and the package
as zip files, and EVALUATION_RESULTS.json as it is.

The zips are built on demand under `state/downloads/<run>/` (never inside the run folder, which
holds only what training, evaluation and packaging wrote) and rebuilt when their source is newer.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.evaluation.results import RESULTS_FILE
from pipeline.settings import Settings


def _newest_mtime(folder: Path) -> float:
    return max((p.stat().st_mtime for p in folder.rglob("*") if p.is_file()), default=0.0)


def _zip(folder: Path, dest: Path) -> Path:
    zip_path = dest.with_suffix(".zip")
    if not zip_path.is_file() or zip_path.stat().st_mtime < _newest_mtime(folder):
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = shutil.make_archive(str(dest) + ".partial", "zip", root_dir=folder)
        Path(tmp).replace(zip_path)  # a half-written zip is never offered
    return zip_path


def run_downloads(run: str | None, settings: Settings) -> list[str]:
    """Paths to offer for `run`: adapter zip, package zip, EVALUATION_RESULTS.json (those that exist)."""
    if not run:
        return []
    run_dir = Path(run)
    out = settings.state_dir / "downloads" / run_dir.name
    files = []
    if (run_dir / "adapter" / "adapter_config.json").is_file():
        files.append(_zip(run_dir / "adapter", out / f"{run_dir.name}-adapter"))
    if (run_dir / "package").is_dir() and any((run_dir / "package").iterdir()):
        files.append(_zip(run_dir / "package", out / f"{run_dir.name}-package"))
    if (run_dir / "eval" / RESULTS_FILE).is_file():
        files.append(run_dir / "eval" / RESULTS_FILE)
    return [str(f) for f in files]
