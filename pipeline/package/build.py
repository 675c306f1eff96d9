"""Build the production package of a finished run (the seed's Phase 5 "Package Structure").

    <out>/                              (default: runs/<id>/package/)
      adapter_config.json               LoRA configuration (base_model_name_or_path = the Hub id)
      adapter_model.safetensors         trained weights, byte for byte from runs/<id>/adapter/
      tokenizer.json, tokenizer_config.json, chat_template.jinja, ...   what transformers wrote
      README.md                         Hub model card (model_card.py)
      PERSONA_SPEC.md                   rendered from the persona's YAML
      EVALUATION_RESULTS.json           the evaluation stage's results, unchanged
      examples/sample_interactions.jsonl  real replies of this adapter on eval prompts
      training_config.yaml              the run's config.yaml
      DATA_CARD.md                      what the adapter was trained on
      MANIFEST.json                     SHA-256 + size of every file above, and the card's facts

The package is assembled in `<out>.partial/` and renamed into place at the end, so a crash
never leaves a half-built package and a previous package stays intact until the new one is
complete.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from .. import models
from ..errors import UserError
from ..jsonl import atomic_write_text, iter_jsonl, write_json, write_jsonl
from ..evaluation.results import RESULTS_FILE
from ..prompting import with_persona_system
from ..runs import RunFolder, list_runs, resolve_run
from ..settings import Settings
from ..spec import load_persona, render_markdown
from .manifest import file_sha256, write_manifest
from .model_card import BASE_LICENSES, CardFacts, dataset_line, render_card
from .portable import portable

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
EVAL_FILE = RESULTS_FILE
SAMPLES = "examples/sample_interactions.jsonl"
TRAINING_CONFIG = "training_config.yaml"
DATA_CARD = "DATA_CARD.md"
# Tokenizer files transformers 5 writes with save_pretrained (tokenizer.json + tokenizer_config.json
# always; the chat template as its own file; special_tokens_map.json only from older versions).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                   "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json")
# What the run's adapter/ folder may hold besides the tokenizer (never copied: trainer state).
_SKIP_FROM_ADAPTER = {"training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"}


class PackageConfig(BaseModel):
    """The package stage's one config (CLI flags and the Publish tab build it)."""

    model_config = ConfigDict(extra="forbid")
    run: str = Field(description="run folder, or a run id under the studio's runs/")
    out: str | None = Field(None, description="package folder (default: <run>/package)")
    n_examples: int = Field(5, ge=1, le=100, description="sample interactions to include")
    max_new_tokens: int = Field(150, ge=1, le=2048, description="reply length when examples must be generated")
    regenerate_examples: bool = Field(False, description="generate replies even when eval/responses_adapter.jsonl exists")


@dataclass
class PackageResult:
    path: Path
    manifest: dict
    adapter_bytes: int
    sample_source: str

    def summary(self) -> str:
        return (f"package written to {self.path}: {len(self.manifest['files']) + 1} files, adapter "
                f"{self.adapter_bytes / 1e6:.2f} MB, examples from {self.sample_source}")


def resolve_run_dir(run: str | Path | None, settings: Settings) -> Path:
    return resolve_run(run, settings).path


def packaging_inputs(folder: RunFolder) -> dict:
    """config.yaml, status, summary and evaluation of a run; raise naming what is missing."""
    if not folder.config_path.is_file():
        raise UserError(f"{folder.path} is not a training run (no config.yaml): pick a folder under runs/")
    config = folder.config()
    status = folder.raw_status()
    if status.get("state") != "finished":
        raise UserError(f"run {folder.id} is {status.get('state', 'without a training status')!s}, not finished: "
                        "package a finished run (or resume this one to the end first)")
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (folder.adapter_dir / name).is_file():
            raise UserError(f"{folder.adapter_dir / name} is missing: the run did not save its adapter; retrain it")
    evaluation = folder.results()
    if evaluation is None:
        raise UserError(f"run {folder.id} has no evaluation ({folder.results_path}): evaluate it first "
                        "(Evaluate tab, or `python -m pipeline evaluate --run RUN`), then package")
    if not config.get("base_model"):
        raise UserError(f"{folder.config_path}: base_model is missing; the package needs to know its base model")
    return {"dir": folder.path, "config": config, "status": status, "evaluation": evaluation.to_dict(),
            "summary": folder.summary(), "adapter": folder.adapter_dir}


def adapter_dir_sha256(folder: Path) -> str:
    """The evaluation stage's adapter hash (pipeline.evaluation.respond.dir_sha256): sha256 over
    the names and bytes of the weight files and adapter_config.json, sorted. The package rewrites
    adapter_config.json (base model id), so the run folder's hash is recorded at build time."""
    from ..evaluation.respond import dir_sha256

    return dir_sha256(folder)


# ---- sample interactions ---------------------------------------------------------------------

def samples_from_eval(run_dir: Path, n: int) -> list[dict]:
    """The evaluation's real adapter replies (eval/responses_adapter.jsonl, read by its own reader)."""
    from ..evaluation.respond import read_replies

    path = RunFolder(run_dir).eval_dir / "responses_adapter.jsonl"
    if not path.is_file():
        return []
    out = []
    for row in read_replies(path)[:n]:
        # The persona system prompt is framing, added at serve time: keep only the conversation.
        msgs = [dict(m) for m in row["messages"] if not (m.get("role") == "system"
                                                         and not m.get("content", "").startswith("Task API context"))]
        out.append({"id": row["id"], "messages": msgs + [{"role": "assistant", "content": row["reply"].strip()}],
                    "source": "eval/responses_adapter.jsonl"})
    return out


def eval_prompts(persona_dir: Path, evaluation: dict, n: int) -> list[tuple[str, list[dict]]]:
    """(id, prompt messages) from the eval set the evaluation used, else the persona's eval.yaml
    (read by the eval-set reader), else nothing (the caller falls back to the spec's examples)."""
    from ..evaluation.evalset import load_eval_set

    for path in (Path(p) for p in ((evaluation.get("eval_set") or {}).get("path"), persona_dir / "eval.yaml") if p):
        if path.is_file():
            return [(p.id, [dict(m) for m in p.messages]) for p in load_eval_set(path)[:n]]
    return []


def generate_samples(run: dict, settings: Settings, system_prompt: str | None, persona, n: int,
                     max_new_tokens: int, engine_factory=None) -> list[dict]:
    from ..inference import ChatEngine, SamplingConfig

    prompts = eval_prompts(Path(run["config"].get("persona", "")), run["evaluation"], n)
    if not prompts:
        prompts = [(f"spec-example-{i}", [{"role": "user", "content": ex.user}])
                   for i, ex in enumerate(persona.spec.examples[:n])]
    if not prompts:
        raise UserError("no eval prompts to generate sample interactions from: add prompts to the persona's "
                        "eval.yaml or examples to persona.yaml")
    # The studio passes its shared engine factory: one copy of the base weights in memory (16 GB for 8B).
    engine = engine_factory(run["config"]["base_model"]) if engine_factory else ChatEngine(run["config"]["base_model"], settings)
    try:
        engine.attach_adapter("package", run["adapter"])
        convs = [with_persona_system(msgs, system_prompt) for _, msgs in prompts]
        # Greedy: the examples are reproducible from the package alone.
        replies = engine.generate_batch(convs, "package", SamplingConfig(max_new_tokens=max_new_tokens, temperature=0))
    finally:
        if not engine_factory:  # the studio's shared engine stays; our own is closed
            engine.close()
    return [{"id": pid, "messages": msgs + [{"role": "assistant", "content": reply}],
             "source": f"generated at packaging (greedy, max_new_tokens={max_new_tokens})"}
            for (pid, msgs), reply in zip(prompts, replies)]


# ---- data card --------------------------------------------------------------------------------

def render_data_card(run: dict, display_name: str) -> str:
    cfg, summ = run["config"], run["summary"]
    data_path = Path(cfg["data"]) if cfg.get("data") else None
    lines = [f"# Training data of the {display_name} adapter ({run['dir'].name})", ""]
    version = dataset_line(cfg.get("dataset") or {})
    lines += ([f"- Trained on {version}"] if version else [])
    lines += [f"- Examples used in training: {summ.get('n_examples', 'n/a')}",
              f"- Data file SHA-256: `{summ.get('data_sha256', 'n/a')}`",
              f"- Tokens seen in training: {summ.get('train_tokens', 'n/a')}",
              "- Format: one JSON object per line, TRL conversational `messages` plus provenance "
              "(`id`, `category`, `scenario`, `source`, `quality`, `review`).", ""]
    if data_path and data_path.is_file():
        rows = list(iter_jsonl(data_path))
        cats = Counter(r.get("category", "?") for r in rows)
        sources = Counter(r.get("source", "?") for r in rows)
        reviews = Counter((r.get("review") or {}).get("status", "unreviewed") for r in rows)
        lines += [f"File: `{data_path.name}`, {len(rows)} records.", "", "| Category | Examples |", "|---|---|"]
        lines += [f"| {c} | {k} |" for c, k in sorted(cats.items())]
        lines += ["", "Sources: " + ", ".join(f"{s} {k}" for s, k in sorted(sources.items())),
                  "Review status: " + ", ".join(f"{s} {k}" for s, k in sorted(reviews.items())), ""]
    else:
        lines += ["The data file is not on this machine; the hash above identifies it.", ""]
    lines += ["The held-out evaluation prompts were never used for training.", ""]
    return "\n".join(lines)


# ---- the stage ----------------------------------------------------------------------------------

def build_package(cfg: PackageConfig, settings: Settings, *, engine_factory=None) -> PackageResult:
    """Build the package (see the module docstring). `engine_factory(base) -> ChatEngine` lends an
    already-loaded model when sample replies must be generated (the studio passes `ctx.engine`)."""
    folder = resolve_run(cfg.run, settings)
    run_dir = folder.path
    run = packaging_inputs(folder)
    config = run["config"]
    persona = load_persona(config.get("persona") or settings.persona_dir())
    spec = persona.spec
    system_prompt = config.get("system_prompt", spec.system_prompt)
    base = models.resolve(config["base_model"])

    out = Path(cfg.out) if cfg.out else run_dir / "package"
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        # 1. adapter + tokenizer, as trained
        for f in sorted(run["adapter"].iterdir()):
            if f.is_file() and f.name not in _SKIP_FROM_ADAPTER and (f.name.startswith("adapter_") or f.name in TOKENIZER_FILES):
                shutil.copy2(f, tmp / f.name)
        if not (tmp / "tokenizer_config.json").is_file():
            from transformers import AutoTokenizer

            AutoTokenizer.from_pretrained(models.local_path(config["base_model"], settings)).save_pretrained(tmp)
        # The package must load from the Hub: point PEFT at the base model's Hub id, not a local path.
        ac = json.loads((tmp / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        ac["base_model_name_or_path"] = base.serve_id
        write_json(tmp / ADAPTER_CONFIG, ac)
        adapter_bytes = (tmp / ADAPTER_WEIGHTS).stat().st_size
        adapter_sha = file_sha256(tmp / ADAPTER_WEIGHTS)

        # 2. documents
        atomic_write_text(tmp / "PERSONA_SPEC.md", render_markdown(persona))
        # No absolute local path or command line leaves the machine (see portable.py).
        roots = [run_dir, out, settings.work_dir, settings.root]
        evaluation = portable(run["evaluation"], roots)
        write_json(tmp / EVAL_FILE, evaluation)
        atomic_write_text(tmp / TRAINING_CONFIG, yaml.safe_dump(portable(config, roots), sort_keys=False,
                                                                allow_unicode=True))
        atomic_write_text(tmp / DATA_CARD, render_data_card(run, spec.display_name))

        # 3. real replies of this adapter
        samples = [] if cfg.regenerate_examples else samples_from_eval(run_dir, cfg.n_examples)
        if not samples:
            samples = generate_samples(run, settings, system_prompt, persona, cfg.n_examples, cfg.max_new_tokens,
                                       engine_factory)
        for s in samples:
            s["adapter_sha256"] = adapter_sha
        write_jsonl(tmp / SAMPLES, samples)
        sample_source = samples[0]["source"]

        # 4. the card, then the manifest (last: it hashes everything else)
        summ = run["summary"]
        lora = config.get("lora") or {k: ac.get(k2) for k, k2 in (("r", "r"), ("alpha", "lora_alpha"),
                                                                   ("dropout", "lora_dropout"),
                                                                   ("target_modules", "target_modules"))}
        first_user = next((m["content"] for m in samples[0]["messages"] if m.get("role") == "user"), None)
        facts = CardFacts(
            run_id=run_dir.name, persona=spec.name, display_name=spec.display_name, purpose=spec.purpose,
            system_prompt=system_prompt or "", base_model=base.serve_id,
            base_model_name=portable(base.name, roots),
            license=BASE_LICENSES.get(base.serve_id, "other"), lora=dict(lora), adapter_bytes=adapter_bytes,
            adapter_sha256=adapter_sha, run_adapter_sha256=adapter_dir_sha256(run["adapter"]),
            max_adapter_mb=spec.deployment.max_adapter_mb,
            train={k: summ.get(k) for k in ("n_examples", "first_loss", "final_loss", "runtime_s", "train_tokens",
                                            "data_sha256")},
            dataset=portable(config.get("dataset") or {}, roots),
            evaluation=evaluation, n_sample_interactions=len(samples), sample_source=sample_source,
            example_prompt=first_user or "Create a task called review budget", adapter_ref=".",
        )
        atomic_write_text(tmp / "README.md", render_card(facts))
        manifest = write_manifest(tmp, run_id=run_dir.name, card=facts.model_dump(mode="json"))
        for p in tmp.rglob("*"):  # atomic writes create 0600 files; a package is meant to be shared
            p.chmod(0o755 if p.is_dir() else 0o644)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # Swap in the new package; the old one (if any) goes only once the new one is complete.
    old = out.with_name(out.name + f".old-{int(time.time())}")
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return PackageResult(out, manifest, adapter_bytes, sample_source)


def refresh_card(folder: Path, **changes) -> CardFacts:
    """Re-render README.md (and the manifest) with changed card facts: the Hub repo id the
    usage code loads, the dataset link, a validation override. Used by the push stage."""
    from .manifest import read_manifest

    manifest = read_manifest(folder)
    if not manifest or "card" not in manifest:
        raise UserError(f"{folder}/MANIFEST.json is missing or has no card facts: rebuild the package "
                        f"(`python -m pipeline package --run <run>`)")
    facts = CardFacts.model_validate({**manifest["card"], **changes})
    atomic_write_text(folder / "README.md", render_card(facts))
    write_manifest(folder, run_id=manifest.get("run_id", facts.run_id), card=facts.model_dump(mode="json"),
                   created_at=manifest.get("created_at"))
    return facts


def publishable_runs(settings: Settings) -> list[tuple[str, str]]:
    """(label, run folder) of every finished run, newest first; the label says whether it was
    evaluated and what the evaluation decided, so the user picks the right one."""
    out = []
    for run in list_runs(settings, where=lambda r: r.config_path.is_file() and r.is_finished()):
        try:
            res = run.results()
            decision = res.decision if res else "not evaluated yet"
        except UserError:
            decision = "evaluation unreadable: re-run it"
        packaged = " · packaged" if (run.package_dir / "MANIFEST.json").is_file() else ""
        out.append((f"{run.id} · {decision}{packaged}", str(run.path)))
    return out


def default_package_dir(run: str | Path | None, settings: Settings) -> Path:
    """Where `build_package` writes a run's package by default: <run>/package."""
    return resolve_run_dir(run, settings) / "package"
