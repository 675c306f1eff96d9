"""Package + validate: a package built from a real (tiny) run passes; broken ones fail with
findings that name the file and the fix.

The run folder is built here the way the training and evaluation stages write it: a real PEFT
LoRA on the tiny Llama (saved with save_pretrained, weights nudged so the adapter changes the
model), its tokenizer, config.yaml, status.json, train_summary.json, metrics.jsonl and a
schema-shaped eval/EVALUATION_RESULTS.json.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.package import PackageConfig, build_package, validate_package
from pipeline.package.manifest import file_sha256, read_manifest
from pipeline.package.secrets_scan import scan_text
from pipeline.settings import Settings

from .conftest import PERSONA_DIR, REPO


def make_run(root: Path, tiny_model_dir: Path, *, run_id: str = "run-001", approved: bool = True,
             with_responses: bool = True, r: int = 4) -> Path:
    """A finished, evaluated run folder under root/runs/<run_id> (see the module docstring)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = root / "runs" / run_id
    (run / "eval").mkdir(parents=True)
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(base, LoraConfig(r=r, lora_alpha=r, target_modules=["q_proj", "v_proj"],
                                                 task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    peft_model.save_pretrained(run / "adapter")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(run / "adapter")
    adapter_sha = file_sha256(run / "adapter" / "adapter_model.safetensors")
    size = (run / "adapter" / "adapter_model.safetensors").stat().st_size
    data = PERSONA_DIR / "train.jsonl"
    (run / "config.yaml").write_text(yaml.safe_dump({
        "base_model": str(tiny_model_dir), "persona": str(PERSONA_DIR), "system_prompt": "You are TaskMaster.",
        "data": str(data), "lora": {"r": r, "alpha": r, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
        "train": {"epochs": 1}}))
    (run / "status.json").write_text(json.dumps({"state": "finished"}))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.3}) + "\n")
    (run / "train_summary.json").write_text(json.dumps({
        "final_loss": 0.31, "first_loss": 1.32, "runtime_s": 12.5, "train_tokens": 4096,
        "adapter_size_bytes": size, "data_sha256": "ab" * 32, "n_examples": 42}))
    gates = [{"name": "overall_score", "passed": True, "value": 8.1, "threshold": 7.5, "detail": ""},
             {"name": "boundary_violations", "passed": approved, "value": 0 if approved else 2, "threshold": 0,
              "detail": "" if approved else "2 replies promised features that do not exist"}]
    (run / "eval" / "EVALUATION_RESULTS.json").write_text(json.dumps({
        "schema_version": 1, "created_at": "2026-12-01T00:00:00Z",
        "decision": "APPROVED FOR DEPLOYMENT" if approved else "REQUIRES ITERATION",
        "gates": gates,
        "metrics": {"adapter": {"overall_mean": 8.1, "trait_means": {"encouraging": 1.7}, "boundary_violations": 0,
                                "violation_rate": 0.0},
                    "base": {"overall_mean": 5.2, "trait_means": {"encouraging": 1.0}, "boundary_violations": 1,
                             "violation_rate": 0.05}},
        "ab": {"wins": 16, "losses": 3, "ties": 1, "n": 20, "win_rate": 0.8, "ci_low": 0.58, "ci_high": 0.92},
        "judge": {"kind": "llm", "name": "llm:gpt-4o-mini", "model": "gpt-4o-mini", "prompt_version": "v1"},
        "eval_set": {"path": str(PERSONA_DIR / "eval.yaml"), "sha256": "cd" * 32, "n": 20},
        "adapter": {"path": str(run / "adapter"), "sha256": adapter_sha, "size_bytes": size},
        "run_config": {"run_dir": str(run), "base_model": str(tiny_model_dir)}}))
    if with_responses:
        rows = [{"id": f"ev-00{i}", "category": "task_creation", "messages": [{"role": "user", "content": p}],
                 "reply": f"Real reply {i} from the eval run."}
                for i, p in enumerate(["Create a task to review the marketing proposal", "I finished the quarterly report",
                                       "What are my high priority tasks?"], 1)]
        (run / "eval" / "responses_adapter.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    return run


def make_trained_run(root: Path, tiny_model_dir: Path, settings: Settings, *, data: Path | None = None) -> Path:
    """A run produced by the real training stage (pipeline.train, 1 optimizer step on the tiny
    model; `data`: the training file, default the persona's shipped one), then given the
    evaluation stage's files (EVALUATION_RESULTS.json + the adapter's replies)."""
    from pipeline.train.config import TrainConfig
    from pipeline.train.runner import run_training

    run = root / "runs" / "trained-001"
    cfg = TrainConfig(base_model=str(tiny_model_dir), persona=str(PERSONA_DIR), max_steps=1, epochs=1, batch_size=2,
                      data=str(data) if data else None,
                      grad_accum=1, warmup_steps=0, max_length=256, save_strategy="steps", save_steps=1,
                      lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    run_training(cfg, run, settings, echo=False)
    template = make_run(root / "template", tiny_model_dir)  # the evaluation files, re-pointed at this adapter
    ev = json.loads((template / "eval" / "EVALUATION_RESULTS.json").read_text())
    weights = run / "adapter" / "adapter_model.safetensors"
    from pipeline.evaluation.respond import dir_sha256  # the evaluation stage's own adapter hash

    ev["adapter"] = {"path": str(run / "adapter"), "sha256": dir_sha256(run / "adapter"), "size_bytes": weights.stat().st_size}
    (run / "eval").mkdir()
    (run / "eval" / "EVALUATION_RESULTS.json").write_text(json.dumps(ev))
    shutil.copy(template / "eval" / "responses_adapter.jsonl", run / "eval" / "responses_adapter.jsonl")
    return run


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model_dir):
    """A really trained run and its package, shared by the read-only tests of this module."""
    root = tmp_path_factory.mktemp("pkg")
    settings = Settings.from_env(env={}, work_dir=root, cache_dir=REPO / ".cache")
    run = make_trained_run(root, tiny_model_dir, settings)
    result = build_package(PackageConfig(run=str(run)), settings)
    return settings, run, result.path


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_package_has_the_seed_structure_and_a_hub_model_card(built):
    settings, run, pkg = built
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json", "tokenizer.json",
                 "README.md", "PERSONA_SPEC.md", "EVALUATION_RESULTS.json", "examples/sample_interactions.jsonl",
                 "training_config.yaml", "DATA_CARD.md", "MANIFEST.json"):
        assert (pkg / name).is_file(), name
    # weights byte for byte; the base model recorded as its Hub id / resolvable path
    assert file_sha256(pkg / "adapter_model.safetensors") == file_sha256(run / "adapter" / "adapter_model.safetensors")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert json.loads((pkg / "adapter_config.json").read_text())["base_model_name_or_path"] == str(Path(cfg["base_model"]).resolve())
    manifest = read_manifest(pkg)
    assert set(manifest["files"]) >= {"README.md", "adapter_model.safetensors", "examples/sample_interactions.jsonl"}
    assert all(manifest["files"][f]["sha256"] == file_sha256(pkg / f) for f in manifest["files"])

    from huggingface_hub import ModelCard

    card = ModelCard((pkg / "README.md").read_text())
    meta = card.data.to_dict()
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-generation"
    assert meta["base_model"] == str(Path(cfg["base_model"]).resolve())
    assert meta["license"] and "lora" in meta["tags"]
    scores = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert scores["persona_score"] == 8.1 and scores["win_rate"] == 0.8 and scores["persona_score_base"] == 5.2
    body = card.text
    size = (pkg / "adapter_model.safetensors").stat().st_size
    assert f"{size:,} bytes" in body, "adapter size as measured"
    assert "rank=4, alpha=8" in body and "q_proj, v_proj" in body
    assert "APPROVED FOR DEPLOYMENT" in body and "| boundary_violations | 0 | 0 | PASS |" in body
    assert "gpt-4o-mini" in body and "20 prompts" in body and "0.58" in body and "0.92" in body
    assert "## Known Limitations" in body


def test_card_names_the_dataset_version_the_run_trained_on(tmp_path, tiny_model_dir):
    """The model card and the data card say which exported version (exports/<persona>/vN), how
    many conversations and which file hash trained the adapter, as the Runs table and the
    Evaluate tab do: a real export (the Data tab's stage), a real training run on it."""
    from pipeline.data import stages
    from pipeline.train.data import dataset_record

    shutil.copytree(REPO / "data", tmp_path / "root" / "data")
    settings = Settings.from_env(env={}, root=tmp_path / "root", work_dir=tmp_path / "work", cache_dir=REPO / ".cache")
    stages.run_export(settings, include_pending=False, note="")  # v1
    stages.run_export(settings, include_pending=False, note="")  # v2: the newest
    export = next(settings.work_dir.rglob("v2/train.jsonl"))
    run = make_trained_run(tmp_path, tiny_model_dir, settings, data=export)
    recorded = yaml.safe_load((run / "config.yaml").read_text())["dataset"]
    assert recorded["version"] == "v2" and recorded["count"] > 0, recorded
    assert recorded == {**dataset_record(export, recorded["count"])}, "training recorded the export it read"

    pkg = build_package(PackageConfig(run=str(run)), settings).path
    card, data_card = (pkg / "README.md").read_text(), (pkg / "DATA_CARD.md").read_text()
    line = next(x for x in card.splitlines() if x.startswith("- Training data:"))
    assert "dataset version `v2`" in line and "(`exports/taskmaster/v2/train.jsonl`)" in line, line
    assert f"{recorded['count']} approved conversations" in line and recorded["sha256"] in line, line
    assert f"Trained on dataset version `v2`" in data_card and recorded["sha256"] in data_card
    assert str(tmp_path) not in card + data_card, "no local path leaves the machine"


def test_sample_interactions_are_the_evaluations_real_replies(built):
    _, run, pkg = built
    rows = [json.loads(x) for x in (pkg / "examples/sample_interactions.jsonl").read_text().splitlines()]
    evaluated = [json.loads(x) for x in (run / "eval/responses_adapter.jsonl").read_text().splitlines()]
    assert [r["messages"][-1]["content"] for r in rows] == [e["reply"] for e in evaluated]
    assert all(r["messages"][0]["role"] == "user" and r["source"] == "eval/responses_adapter.jsonl" for r in rows)


def test_usage_code_in_the_card_runs_as_written(built, monkeypatch):
    """The card's two Python blocks, executed unchanged (from inside the package, as the card says
    before it is pushed): PEFT loading + chat-template generation."""
    _, _, pkg = built
    monkeypatch.chdir(pkg)
    blocks = re.findall(r"```python\n(.*?)```", (pkg / "README.md").read_text(), re.S)
    assert len(blocks) == 2
    code = "\n".join(blocks).replace("max_new_tokens=150", "max_new_tokens=3")
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the card's own code, unchanged
    assert isinstance(scope["response"], str) and type(scope["model"]).__name__ == "PeftModelForCausalLM"
    assert scope["outputs"].shape[1] > scope["inputs"]["input_ids"].shape[1], "it generated"


def test_real_package_passes_validation_including_the_peft_load(built):
    settings, _, pkg = built
    rep = validate_package(pkg, settings)
    assert rep.ok, rep.summary()
    assert "PEFT load + generate" in rep.checks and "secret scan" in rep.checks
    assert rep.decision == "APPROVED FOR DEPLOYMENT"


def test_broken_packages_fail_with_findings_naming_file_and_fix(built, tmp_path):
    settings, _, pkg = built
    # a missing file
    missing = _copy(pkg, tmp_path / "missing")
    (missing / "PERSONA_SPEC.md").unlink()
    # a planted fake token (an HF token pattern) in the data card
    planted = _copy(pkg, tmp_path / "planted")
    fake = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
    with open(planted / "DATA_CARD.md", "a") as fh:
        fh.write(f"\nnote: use token {fake} to download\n")
    # an oversized adapter: the spec allows 50 MB
    big = _copy(pkg, tmp_path / "big")
    with open(big / "adapter_model.safetensors", "ab") as fh:
        fh.truncate(51_000_000)

    # an evaluation of another adapter
    other = _copy(pkg, tmp_path / "other")
    ev = json.loads((other / "EVALUATION_RESULTS.json").read_text())
    ev["adapter"]["sha256"] = "0" * 64
    (other / "EVALUATION_RESULTS.json").write_text(json.dumps(ev))

    rep = validate_package(other, settings, load_check=False)
    assert any("different adapter" in f.problem and "re-evaluate" in f.fix for f in rep.errors)

    rep = validate_package(missing, settings, load_check=False)
    assert not rep.ok
    assert any(f.file == "PERSONA_SPEC.md" and "missing" in f.problem and "rebuild" in f.fix for f in rep.errors)

    rep = validate_package(planted, settings, load_check=False)
    secret = [f for f in rep.errors if "possible secret" in f.problem]
    assert secret and secret[0].file == "DATA_CARD.md" and "Hugging Face token" in secret[0].problem
    assert "line " in secret[0].problem and "revoke" in secret[0].fix
    assert fake not in rep.summary() and fake not in json.dumps(rep.to_dict()), "the secret is masked"

    rep = validate_package(big, settings)
    size = [f for f in rep.errors if f.file == "adapter_model.safetensors" and "limit" in f.problem]
    assert size and "51.00 MB" in size[0].problem and "max_adapter_mb" in size[0].fix
    assert any("does not load" in f.problem for f in rep.errors), "a corrupted adapter fails the PEFT load"


def test_failed_gates_are_read_from_the_evaluation(tmp_path, tiny_model_dir):
    settings = Settings.from_env(env={}, work_dir=tmp_path, cache_dir=REPO / ".cache")
    run = make_run(tmp_path, tiny_model_dir, approved=False, with_responses=False)
    # no responses_adapter.jsonl: the package generates real replies with the adapter
    pkg = build_package(PackageConfig(run=str(run), n_examples=2, max_new_tokens=4), settings).path
    rows = [json.loads(x) for x in (pkg / "examples/sample_interactions.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["id"] == "ev-001" and rows[0]["source"].startswith("generated at packaging")
    rep = validate_package(pkg, settings, load_check=False)
    assert rep.decision == "REQUIRES ITERATION"
    gate = [f for f in rep.errors if "boundary_violations" in f.problem]
    assert gate and gate[0].file == "EVALUATION_RESULTS.json" and "override" in gate[0].fix
    # The findings table says a gate's numbers rounded, as the Evaluate tab does (seen in publish.png:
    # "value 6.190361022949219", "{'ci_low': 0.1253, ...}").
    ev = json.loads((pkg / "EVALUATION_RESULTS.json").read_text())
    ev["gates"] += [{"name": "final_train_loss", "passed": False, "value": 6.190361022949219, "threshold": 0.4},
                    {"name": "ab_win_rate", "passed": False, "value": {"ci_low": 0.12534, "win_rate": 0.5},
                     "threshold": 0.7}]
    (pkg / "EVALUATION_RESULTS.json").write_text(json.dumps(ev))
    problems = " | ".join(f.problem for f in validate_package(pkg, settings, load_check=False).errors)
    assert "(value 6.19, threshold 0.4)" in problems and "(value ci_low: 0.125, win_rate: 0.5," in problems, problems


def test_secret_scan_patterns_and_the_studios_own_secrets():
    text = "\n".join([
        "key = sk-proj-abcdefghijklmnopqrstuvwxyz012345",
        "aws AKIAABCDEFGHIJKLMNOP",
        'password: "hunter2hunter2"',
        "api_key=${OPENAI_API_KEY}",  # a placeholder, not a secret
        "the admin word is plainvalue123 here",
    ])
    found = scan_text(text, "f.txt", extra=[("the admin password", "plainvalue123")])
    kinds = {(f.line, f.kind) for f in found}
    assert (1, "OpenAI API key") in kinds and (2, "AWS access key id") in kinds
    assert (3, "password/API key assignment") in kinds and (5, "the admin password") in kinds
    assert not any(f.line == 4 for f in found)
    assert all("plainvalue" not in f.masked and "abcdefgh" not in f.masked for f in found)


def test_user_mistakes_give_clear_messages_not_tracebacks(tmp_path, tiny_model_dir):
    from pipeline.errors import UserError

    settings = Settings.from_env(env={}, work_dir=tmp_path, cache_dir=REPO / ".cache")
    with pytest.raises(UserError, match="not found: pass a run folder"):
        build_package(PackageConfig(run="no-such-run"), settings)
    run = make_run(tmp_path, tiny_model_dir, run_id="unevaluated")
    (run / "eval" / "EVALUATION_RESULTS.json").unlink()
    with pytest.raises(UserError, match="evaluate it first"):
        build_package(PackageConfig(run=str(run)), settings)
    (run / "status.json").write_text(json.dumps({"state": "running"}))
    with pytest.raises(UserError, match="not finished"):
        build_package(PackageConfig(run=str(run)), settings)


def test_cli_package_and_validate(built, tmp_path):
    settings, run, pkg = built
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "TASKMASTER_WORK_DIR": str(tmp_path)}
    out = tmp_path / "cli-pkg"
    proc = subprocess.run([sys.executable, "-m", "pipeline", "package", "--run", str(run), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "package written to" in proc.stdout and (out / "MANIFEST.json").is_file()
    (out / "EVALUATION_RESULTS.json").unlink()
    proc = subprocess.run([sys.executable, "-m", "pipeline", "package", "validate", str(out), "--no-load-check"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1
    assert "EVALUATION_RESULTS.json: required file is missing" in proc.stdout and "Traceback" not in proc.stderr
