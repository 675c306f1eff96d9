"""What the Evaluate and Publish tabs offer to download for a run: the adapter and the package
as zip files, and the evaluation results file as it is.

The zips are built on demand under `state/downloads/<run>/` (never inside the run folder, which
holds only what training, evaluation and packaging wrote) and rebuilt when their source is newer.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.runs import RunFolder
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
    """Paths to offer for `run`: adapter zip, package zip, the evaluation results (those that exist)."""
    if not run:
        return []
    folder = RunFolder(run)
    out = settings.state_dir / "downloads" / folder.id
    files = []
    if folder.has_adapter():
        files.append(_zip(folder.adapter_dir, out / f"{folder.id}-adapter"))
    if folder.package_dir.is_dir() and any(folder.package_dir.iterdir()):
        files.append(_zip(folder.package_dir, out / f"{folder.id}-package"))
    if folder.has_results():
        files.append(folder.results_path)
    return [str(f) for f in files]
