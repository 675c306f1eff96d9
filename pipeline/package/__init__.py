"""The package stage: build the production package of a run, validate it, (push: pipeline.hub).

    build.py         PackageConfig + build_package(cfg, settings) -> PackageResult
    model_card.py    README.md (Hub model card) from measured facts
    manifest.py      MANIFEST.json: SHA-256 of every file
    validate.py      validate_package(folder, settings) -> ValidationReport (findings: file + fix)
    secrets_scan.py  API keys, Hub tokens, passwords: found, masked, never printed
"""

from .build import PackageConfig, PackageResult, build_package, default_package_dir, publishable_runs, refresh_card, resolve_run_dir
from .validate import REQUIRED_FILES, Finding, ValidationReport, validate_package

__all__ = ["PackageConfig", "PackageResult", "build_package", "default_package_dir", "publishable_runs", "refresh_card", "resolve_run_dir",
           "REQUIRED_FILES", "Finding", "ValidationReport", "validate_package"]
