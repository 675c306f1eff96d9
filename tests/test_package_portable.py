"""A published package names no local path and no command line (issue 18): training_config.yaml,
EVALUATION_RESULTS.json and MANIFEST.json say where things are relative to the run, the
package or the project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline.package.build import PackageConfig, build_package
from pipeline.package.portable import portable
from pipeline.settings import Settings

from .conftest import REPO
from .test_package import make_run


def test_portable_rewrites_paths_by_root_and_drops_command_lines(tmp_path):
    run = tmp_path / "runs" / "r1"
    obj = {"adapter": str(run / "adapter"), "data": str(REPO / "data/personas/taskmaster/train.jsonl"),
           "elsewhere": "/home/alice/models/llama", "command": "python /home/alice/x.py --token t",
           "note": f"read from {run}/eval/x.json", "n": 3, "items": [str(run / "eval")]}
    out = portable(obj, [run, REPO])
    assert out == {"adapter": "adapter", "data": "data/personas/taskmaster/train.jsonl", "elsewhere": "llama",
                   "note": "read from eval/x.json", "n": 3, "items": ["eval"]}


@pytest.mark.slow
def test_the_package_carries_no_absolute_local_path(tmp_path, tiny_model_dir):
    settings = Settings.from_env(env={}, work_dir=tmp_path, cache_dir=REPO / ".cache")
    run = make_run(tmp_path, tiny_model_dir)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["command"] = f"{Path('/usr/bin/python3')} -m pipeline train --out {run} --set secret_dir=/home/alice"
    cfg["out"] = str(run)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    ev = json.loads((run / "eval" / "EVALUATION_RESULTS.json").read_text())
    # Absolute paths planted into the typed results (the other fields kept as the writer made them).
    ev["eval_set"] = {**ev["eval_set"], "path": str(REPO / "data/personas/taskmaster/eval.yaml"), "sha256": "ab" * 32}
    ev["adapter"] = {**ev["adapter"], "path": str(run / "adapter"), "sha256": "cd" * 32}
    (run / "eval" / "EVALUATION_RESULTS.json").write_text(json.dumps(ev))
    pkg = build_package(PackageConfig(run=str(run), n_examples=2, max_new_tokens=4), settings).path
    for name in ("training_config.yaml", "EVALUATION_RESULTS.json", "MANIFEST.json", "README.md", "DATA_CARD.md"):
        text = (pkg / name).read_text()
        for local in (str(tmp_path), str(REPO), "/home/alice", "/usr/bin"):
            assert local not in text, f"{name} names {local}"
    tc = yaml.safe_load((pkg / "training_config.yaml").read_text())
    assert "command" not in tc and tc["data"] == "data/personas/taskmaster/train.jsonl" and tc["out"] == "."
    man = json.loads((pkg / "MANIFEST.json").read_text())
    assert man["card"]["evaluation"]["adapter"]["path"] == "adapter"
