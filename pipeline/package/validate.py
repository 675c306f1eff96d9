"""`validate_package(folder)`: is this package fit to publish? Every problem, each naming its
file and what to do.

Checks, in order (all run; nothing stops at the first problem):
  1. required files present (the seed's structure + training config, data card, manifest);
  2. MANIFEST.json: every file's SHA-256 matches, nothing added or removed since packaging;
  3. adapter size within the persona's `deployment.max_adapter_mb` (1 MB = 10^6 bytes);
  4. the evaluation results (load_results): decision and gates as the evaluation wrote them (a failing
     gate is an error: iterate, or push with an explicit override);
  5. README.md front matter: what the Hub needs (`base_model`, `library_name: peft`, `model-index`);
  6. examples/sample_interactions.jsonl: real replies, one conversation per line;
  7. the adapter loads onto its base model with PEFT and generates a few tokens;
  8. no secret in any file (secrets_scan.py).

Levels: "error" blocks a push (unless overridden); "warning" is shown but does not block.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from .. import models
from ..errors import UserError
from ..evaluation.results import load_results
from ..settings import Settings
from .build import ADAPTER_CONFIG, ADAPTER_WEIGHTS, DATA_CARD, EVAL_FILE, SAMPLES, TRAINING_CONFIG
from .manifest import MANIFEST, read_manifest, verify_manifest
from .secrets_scan import scan_folder

REQUIRED_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS, "tokenizer_config.json", "README.md", "PERSONA_SPEC.md",
                  EVAL_FILE, SAMPLES, TRAINING_CONFIG, DATA_CARD, MANIFEST)
APPROVED = "APPROVED FOR DEPLOYMENT"
MB = 1e6


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "warning"
    file: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"[{self.level}] {self.file}: {self.problem}. Fix: {self.fix}"


@dataclass
class ValidationReport:
    folder: str
    findings: list[Finding] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)  # what ran, for the UI and the CLI
    decision: str | None = None
    adapter_bytes: int | None = None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, level: str, file: str, problem: str, fix: str) -> None:
        self.findings.append(Finding(level, file, problem, fix))

    def rows(self) -> list[list[str]]:
        return [[f.level, f.file, f.problem, f.fix] for f in self.findings]

    def to_dict(self) -> dict:
        return {"folder": self.folder, "ok": self.ok, "decision": self.decision, "adapter_bytes": self.adapter_bytes,
                "checks": self.checks, "findings": [asdict(f) for f in self.findings]}

    def markdown(self) -> str:
        verdict = "**PASSED**" if self.ok else "**FAILED**"
        size = f", adapter {self.adapter_bytes / MB:.2f} MB" if self.adapter_bytes is not None else ""
        return (f"Validation {verdict}: {len(self.errors)} error(s), {len(self.findings) - len(self.errors)} "
                f"warning(s){size}; evaluation decision: {self.decision or 'n/a'}. Checks: {', '.join(self.checks)}."
                + ("" if self.ok else " A push is refused unless you tick the override (it is recorded in the card)."))

    def summary(self) -> str:
        head = (f"{self.folder}: {'PASSED' if self.ok else 'FAILED'} validation "
                f"({len(self.errors)} error(s), {len(self.findings) - len(self.errors)} warning(s))")
        return "\n".join([head] + [f"  - {f}" for f in self.findings])


def _training_config(folder: Path) -> dict:
    try:
        data = yaml.safe_load((folder / TRAINING_CONFIG).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, yaml.YAMLError):
        return {}


def _max_adapter_mb(folder: Path, manifest: dict | None, cfg: dict) -> float:
    """The persona spec's limit: from the persona folder when present here, else the value
    recorded at packaging, else the seed's 50 MB."""
    persona = cfg.get("persona")
    if persona and (Path(persona) / "persona.yaml").is_file():
        try:
            raw = yaml.safe_load((Path(persona) / "persona.yaml").read_text(encoding="utf-8")) or {}
            return float(raw["deployment"]["max_adapter_mb"])
        except (KeyError, TypeError, ValueError, yaml.YAMLError):
            pass
    return float(((manifest or {}).get("card") or {}).get("max_adapter_mb") or 50.0)


def _check_evaluation(folder: Path, rep: ValidationReport, card: dict) -> None:
    path = folder / EVAL_FILE
    if not path.is_file():
        return
    try:
        res = load_results(path)
    except (UserError, ValueError) as exc:  # not JSON, another schema version, or not the schema
        rep.add("error", EVAL_FILE, f"not readable as evaluation results ({str(exc).splitlines()[0][:200]})",
                "rebuild the package from an evaluated run")
        return
    from ..evaluation.studio_api import readable  # rounded, as the Evaluate tab's gates table shows them

    rep.decision = res.decision
    failed = [g for g in res.gates if not g.passed]
    for g in failed:
        rep.add("error", EVAL_FILE,
                f"quality gate `{g.name}` failed (value {readable(g.value)}, threshold {readable(g.threshold)})"
                + (f": {g.detail}" if g.detail else ""),
                "iterate (targeted data, retrain, re-evaluate), or push with an explicit validation override")
    if rep.decision != APPROVED and not failed:
        rep.add("error", EVAL_FILE, f"decision is {rep.decision!r}, not {APPROVED!r}",
                "iterate until the evaluation approves the adapter, or push with an explicit override")
    ad = {"sha256": res.adapter.sha256}
    if ad.get("sha256") and (folder / ADAPTER_WEIGHTS).is_file():
        from .manifest import file_sha256

        weights_sha = file_sha256(folder / ADAPTER_WEIGHTS)
        # The evaluation hashes either the weights file or the run's adapter folder (weights +
        # config, recorded at packaging, valid while the weights are the ones packaged).
        same = {weights_sha}
        if card.get("run_adapter_sha256") and card.get("adapter_sha256") == weights_sha:
            same.add(card["run_adapter_sha256"])
        if ad["sha256"] not in same:
            rep.add("error", EVAL_FILE, "the evaluation was run on a different adapter (SHA-256 differs from "
                    "adapter_model.safetensors)", "re-evaluate this adapter, then rebuild the package")


def _check_card(folder: Path, rep: ValidationReport) -> None:
    path = folder / "README.md"
    if not path.is_file():
        return
    from huggingface_hub import ModelCard

    try:
        card = ModelCard(path.read_text(encoding="utf-8"), ignore_metadata_errors=False)
        meta = card.data.to_dict()
    except Exception as exc:  # the Hub would reject the same front matter
        rep.add("error", "README.md", f"front matter is not valid Hub metadata ({type(exc).__name__}: {exc})",
                "rebuild the package (the card is generated)")
        return
    for key, want in (("base_model", None), ("library_name", "peft"), ("license", None), ("model-index", None)):
        have = meta.get(key) if key != "model-index" else meta.get("model-index") or meta.get("model_index")
        if not have:
            rep.add("error" if key != "model-index" else "warning", "README.md",
                    f"front matter has no `{key}`", "rebuild the package from an evaluated run")
        elif want and have != want:
            rep.add("error", "README.md", f"front matter `{key}` is {have!r}, expected {want!r}", "rebuild the package")
    if card.data.eval_results is None and (meta.get("model-index") or meta.get("model_index")):
        rep.add("warning", "README.md", "model-index did not parse into evaluation results", "rebuild the package")


def _check_samples(folder: Path, rep: ValidationReport) -> None:
    path = folder / SAMPLES
    if not path.is_file():
        return
    n = 0
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            rep.add("error", SAMPLES, f"line {lineno} is not valid JSON", "rebuild the package")
            continue
        msgs = row.get("messages") if isinstance(row, dict) else None
        if not (isinstance(msgs, list) and msgs and msgs[-1].get("role") == "assistant"
                and str(msgs[-1].get("content", "")).strip()):
            rep.add("error", SAMPLES, f"line {lineno} is not a conversation ending with the adapter's reply",
                    "rebuild the package (examples are generated, never hand-written)")
        elif not row.get("source"):
            rep.add("warning", SAMPLES, f"line {lineno} does not say where its reply came from", "rebuild the package")
        n += 1
    if n == 0:
        rep.add("error", SAMPLES, "no sample interactions", "rebuild the package")


def _check_loads(folder: Path, rep: ValidationReport, settings: Settings, cfg: dict, base: str | None) -> None:
    """PEFT-load the adapter onto its base and generate a few tokens (CPU, greedy)."""
    base = base or cfg.get("base_model")
    if not base:
        rep.add("error", TRAINING_CONFIG, "no base_model recorded", "rebuild the package from its run")
        return
    try:
        path = models.local_path(base, settings)
    except models.ModelNotAvailable as exc:
        rep.add("error", ADAPTER_CONFIG, f"cannot check that the adapter loads: {exc}",
                "make the base model available here, then validate again")
        return
    try:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        model = PeftModel.from_pretrained(model, folder)
        model.eval()
        msgs = [{"role": "system", "content": str(cfg.get("system_prompt") or "You are a helpful assistant.")},
                {"role": "user", "content": "Create a task to review the budget"}]
        enc = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=4, do_sample=False,
                                 pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
        if out.shape[1] <= enc["input_ids"].shape[1]:
            rep.add("error", ADAPTER_WEIGHTS, "the adapter loaded but generated no tokens", "retrain or rebuild the package")
    except Exception as exc:
        rep.add("error", ADAPTER_WEIGHTS, f"the adapter does not load onto {base} with PEFT "
                f"({type(exc).__name__}: {str(exc)[:200]})", "rebuild the package from a finished run with the same base model")


def validate_package(folder: str | Path, settings: Settings, *, load_check: bool = True,
                     base_model: str | None = None) -> ValidationReport:
    folder = Path(folder)
    rep = ValidationReport(str(folder))
    if not folder.is_dir():
        rep.add("error", str(folder), "package folder not found", "build it with `python -m pipeline package --run <run>`")
        return rep

    rep.checks.append("required files")
    for name in REQUIRED_FILES:
        if not (folder / name).is_file():
            rep.add("error", name, "required file is missing", "rebuild the package (`python -m pipeline package --run <run>`)")
    if not any((folder / n).is_file() for n in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        rep.add("error", "tokenizer.json", "no tokenizer vocabulary file", "rebuild the package (it copies the run's tokenizer)")

    rep.checks.append("manifest hashes")
    manifest = read_manifest(folder)
    if manifest is not None:
        for rel, problem in verify_manifest(folder, manifest):
            rep.add("error", rel, problem, "rebuild the package, or restore the file as packaged")
    elif (folder / MANIFEST).is_file():
        rep.add("error", MANIFEST, "not valid JSON", "rebuild the package")

    cfg = _training_config(folder)
    rep.checks.append("adapter size")
    weights = folder / ADAPTER_WEIGHTS
    if weights.is_file():
        rep.adapter_bytes = weights.stat().st_size
        limit = _max_adapter_mb(folder, manifest, cfg)
        if rep.adapter_bytes > limit * MB:
            rep.add("error", ADAPTER_WEIGHTS, f"adapter is {rep.adapter_bytes / MB:.2f} MB, over the spec's "
                    f"{limit:g} MB limit (deployment.max_adapter_mb)",
                    "retrain with a lower LoRA rank or fewer target modules, or raise deployment.max_adapter_mb in persona.yaml")

    rep.checks.append("evaluation gates")
    _check_evaluation(folder, rep, (manifest or {}).get("card") or {})
    rep.checks.append("model card metadata")
    _check_card(folder, rep)
    rep.checks.append("sample interactions")
    _check_samples(folder, rep)
    if load_check and (folder / ADAPTER_CONFIG).is_file() and weights.is_file():
        rep.checks.append("PEFT load + generate")
        _check_loads(folder, rep, settings, cfg, base_model)

    rep.checks.append("secret scan")
    for s in scan_folder(folder, settings):
        rep.add("error", s.file, f"line {s.line}: possible secret: {s.kind} ({s.masked})",
                "remove it from the file (and revoke it if it is real), then rebuild the package")
    return rep
