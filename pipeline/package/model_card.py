"""README.md of a package: a Hugging Face model card rendered from measured facts.

The front matter is the metadata the Hub reads (`base_model`, `library_name: peft`, `license`,
`tags`, `datasets`, `pipeline_tag`, `model-index` with the evaluation figures); the body
follows the seed's DEPLOYMENT_DOC (overview, model details, quality metrics, usage, known
limitations) plus the gate decisions and how the figures were measured. Every number comes
from the run (its training summary, its evaluation results, the adapter file on disk), never
from a template, and the facts are kept in MANIFEST.json so the push stage can re-render the
card with the repo id, the dataset link or a validation override.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, Field

from ..evaluation.results import RESULTS_FILE
from ..judges import describe_agreement

# Licenses of the registry's base models; an adapter inherits its base model's terms.
BASE_LICENSES = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0",
    "meta-llama/Llama-3.1-8B-Instruct": "llama3.1",
}


class CardFacts(BaseModel):
    run_id: str
    persona: str = "taskmaster"
    display_name: str = "TaskMaster"
    purpose: str = ""
    system_prompt: str = ""
    base_model: str  # the Hub id (or local folder) the adapter is loaded onto
    base_model_name: str = ""  # the studio's registry name (e.g. smollm2-135m)
    license: str = "other"
    lora: dict[str, Any] = Field(default_factory=dict)  # r, alpha, dropout, target_modules
    adapter_bytes: int = 0
    adapter_sha256: str = ""  # of adapter_model.safetensors
    run_adapter_sha256: str = ""  # the evaluation's hash of the run's adapter folder (weights + config)
    max_adapter_mb: float = 50.0
    train: dict[str, Any] = Field(default_factory=dict)  # n_examples, final_loss, first_loss, runtime_s, data_sha256
    # The dataset version the run trained on, as training recorded it (pipeline.train.data.dataset_record):
    # version (e.g. v3 or "shipped"), path (exports/<persona>/v3/train.jsonl, never absolute), count, sha256.
    dataset: dict[str, Any] = Field(default_factory=dict)
    evaluation: dict[str, Any] = Field(default_factory=dict)  # the evaluation results (EvaluationResults.to_dict())
    n_sample_interactions: int = 0
    sample_source: str = ""
    example_prompt: str = "Create a task called review budget"
    adapter_ref: str = "."  # what the usage code loads: the Hub repo id once pushed, else the folder
    dataset_repo: str | None = None
    override: dict[str, Any] | None = None  # {"findings": [...], "by": "...", "at": "..."} when pushed anyway


def _num(x, nd=2):
    return None if x is None else (round(float(x), nd) if isinstance(x, (int, float)) else x)


def _fmt(x, nd=2) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, dict):  # e.g. the all_traits gate's per-trait means
        return ", ".join(f"{k} {_fmt(v, nd)}" for k, v in x.items())
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def front_matter(f: CardFacts) -> dict:
    ev = f.evaluation or {}
    ma = (ev.get("metrics") or {}).get("adapter") or {}
    mb = (ev.get("metrics") or {}).get("base") or {}
    ab = ev.get("ab") or {}
    n_eval = (ev.get("eval_set") or {}).get("n")
    meta: dict[str, Any] = {
        "base_model": f.base_model,
        "library_name": "peft",
        "license": f.license,
        "pipeline_tag": "text-generation",
        "tags": ["peft", "lora", "persona", f.persona, "text-generation", "conversational",
                 f"base_model:adapter:{f.base_model}"],
    }
    if f.dataset_repo:
        meta["datasets"] = [f.dataset_repo]
    metrics = []
    for key, mtype, name in (("overall_mean", "persona_score", "Overall persona score (0-10), adapter"),
                             ("violation_rate", "boundary_violation_rate", "Boundary violation rate, adapter")):
        if ma.get(key) is not None:
            metrics.append({"type": mtype, "name": name, "value": _num(ma[key], 3)})
    if mb.get("overall_mean") is not None:
        metrics.append({"type": "persona_score_base", "name": "Overall persona score (0-10), base model",
                        "value": _num(mb["overall_mean"], 3)})
    if ab.get("win_rate") is not None:
        metrics.append({"type": "win_rate", "name": "Blind A/B win rate vs base", "value": _num(ab["win_rate"], 3)})
    if metrics:
        meta["model-index"] = [{
            "name": f"{f.persona}-{f.run_id}",
            "results": [{
                "task": {"type": "text-generation", "name": "Persona adherence"},
                "dataset": {"name": f"{f.display_name} held-out eval set" + (f" (n={n_eval})" if n_eval else ""),
                            "type": f.dataset_repo or f"{f.persona}-eval"},
                "metrics": metrics,
            }],
        }]
    return meta


def dataset_line(ds: dict) -> str:
    """The training data's version, file, count and hash, as the Runs table and the Evaluate tab
    name them (so a card can be traced back to the exact export)."""
    if not ds:
        return ""
    version = ds.get("version") or "unversioned"
    text = f"dataset version `{version}`" + (f" (`{ds['path']}`)" if ds.get("path") else "")
    if ds.get("count") is not None:
        text += f", {ds['count']} approved conversations"
    if ds.get("sha256"):
        text += f", file SHA-256 `{ds['sha256']}`"
    return text


def _gate_rows(ev: dict) -> list[str]:
    rows = ["| Gate | Value | Threshold | Result |", "|---|---|---|---|"]
    for g in ev.get("gates") or []:
        if not isinstance(g, dict):
            continue
        mark = "PASS" if g.get("passed") else "FAIL"
        rows.append(f"| {g.get('name', '?')} | {_fmt(g.get('value'))} | {_fmt(g.get('threshold'))} | {mark} |")
    return rows if len(rows) > 2 else [f"No gates were recorded in {RESULTS_FILE}."]


def _generate_args(f: CardFacts) -> str:
    """The base model's default decoding (pipeline.models), written as `generate` keyword arguments."""
    from ..inference import default_sampling

    kw = default_sampling(f.base_model_name or f.base_model, max_new_tokens=150).generate_kwargs()
    return ", ".join(f"{k}={v!r}" for k, v in kw.items())


def render_card(f: CardFacts) -> str:
    ev = f.evaluation or {}
    ma = (ev.get("metrics") or {}).get("adapter") or {}
    mb = (ev.get("metrics") or {}).get("base") or {}
    ab = ev.get("ab") or {}
    judge = ev.get("judge") or {}
    eval_set = ev.get("eval_set") or {}
    decision = ev.get("decision") or "not evaluated"
    lora = f.lora or {}
    tr = f.train or {}
    fm = yaml.safe_dump(front_matter(f), sort_keys=False, allow_unicode=True).strip()
    adapter_mb = f.adapter_bytes / 1e6
    lines = ["---", fm, "---", "", f"# {f.display_name} Persona Adapter", ""]
    if f.override:
        lines += ["> **Published with a validation override.** This package did not pass the studio's "
                  "validation and was pushed anyway by an explicit decision. Open findings at push time:", ">"]
        lines += [f"> - {x}" for x in f.override.get("findings", [])] + [""]
    lines += [
        "## Overview",
        f"LoRA adapter that gives `{f.base_model}` the {f.display_name} persona"
        + (f": {f.purpose.strip()}" if f.purpose else ".")
        + f" Evaluation decision: **{decision}**.", "",
        "## Model Details",
        f"- Base model: `{f.base_model}`" + (f" (studio name `{f.base_model_name}`)" if f.base_model_name and f.base_model_name != f.base_model else ""),
        f"- Adapter type: LoRA (rank={lora.get('r', 'n/a')}, alpha={lora.get('alpha', 'n/a')}, dropout={lora.get('dropout', 'n/a')})",
        f"- Target modules: {', '.join(lora.get('target_modules') or []) or 'n/a'}",
        (f"- Training data: {dataset_line(f.dataset)}; {_rows(tr.get('n_examples'))} after tokenizing"
         if f.dataset else
         f"- Training data: {tr.get('n_examples', 'n/a')} curated examples"
         + (f" (SHA-256 `{tr['data_sha256'][:12]}…`)" if tr.get("data_sha256") else ""))
        + (f", published as [`{f.dataset_repo}`](https://huggingface.co/datasets/{f.dataset_repo})" if f.dataset_repo else ""),
        f"- Training loss: {_fmt(tr.get('first_loss'), 3)} → {_fmt(tr.get('final_loss'), 3)}"
        + (f" in {_fmt(tr.get('runtime_s'), 0)} s" if tr.get("runtime_s") is not None else ""),
        f"- Adapter size (measured): {adapter_mb:.2f} MB ({f.adapter_bytes:,} bytes; limit {f.max_adapter_mb:g} MB)",
        f"- Adapter SHA-256: `{f.adapter_sha256}`",
        f"- Training run: `{f.run_id}`", "",
        "## Quality Metrics",
        f"- Overall persona score: {_fmt(ma.get('overall_mean'))}/10 (base model with the same system prompt: {_fmt(mb.get('overall_mean'))}/10)",
    ]
    if isinstance(ma.get("trait_means"), dict) and ma["trait_means"]:
        traits = ", ".join(f"{k} {_fmt(v)}" for k, v in ma["trait_means"].items())
        lines.append(f"- Trait means (0-2 each): {traits}")
    lines += [f"- Boundary violations: {_fmt(ma.get('boundary_violations'))}"
              + (f" (rate {_fmt(ma.get('violation_rate'), 3)})" if ma.get("violation_rate") is not None else "")]
    if ab:
        lines.append(f"- Blind A/B vs base: {ab.get('wins', 'n/a')} wins, {ab.get('losses', 'n/a')} losses, "
                     f"{ab.get('ties', 'n/a')} ties of {ab.get('n', 'n/a')}; win rate {_fmt(ab.get('win_rate'))} "
                     f"(95% interval {_fmt(ab.get('ci_low'))}–{_fmt(ab.get('ci_high'))})")
    lines += ["", "### Quality gates", f"Decision: **{decision}**", ""] + _gate_rows(ev) + [""]
    ref = f.adapter_ref
    lines += [
        "## Usage", "",
        "The adapter was trained and evaluated with the persona's system prompt always present; keep it.", "",
        "### Loading the Adapter", "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
        f'adapter = "{ref}"' + ("  # this folder: run the code from inside the package" if ref == "." else ""),
        f'base_model = AutoModelForCausalLM.from_pretrained("{f.base_model}")',
        "model = PeftModel.from_pretrained(base_model, adapter)",
        "tokenizer = AutoTokenizer.from_pretrained(adapter)", "```", "",
        "### Generating Responses", "```python",
        f"SYSTEM_PROMPT = {f.system_prompt.strip()!r}",
        "messages = [",
        '    {"role": "system", "content": SYSTEM_PROMPT},',
        f'    {{"role": "user", "content": {f.example_prompt!r}}},',
        "]",
        "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\", return_dict=True)",
        f"outputs = model.generate(**inputs, {_generate_args(f)})",
        'response = tokenizer.decode(outputs[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)',
        "print(response)", "```", "",
        "### Serving it (OpenAI-compatible)",
        "vLLM serves the base model with this adapter; any OpenAI client then calls it "
        "(the TaskMaster studio's Arena and evaluation too, with `TASKMASTER_ENGINE_URL`):", "```bash",
        f"vllm serve {f.base_model} --served-model-name taskmaster-base --enable-lora \\",
        f"    --max-lora-rank {1 << (max(8, int(lora.get('r') or 16)) - 1).bit_length()} --lora-modules taskmaster-{f.run_id}={ref}",
        "```", "On a CPU, the studio's own `python -m pipeline serve --adapter NAME=<this folder>` does the same "
        "(model `taskmaster-NAME`). Send the system prompt above with every conversation.", "",
        "## Persona Specification", "See PERSONA_SPEC.md for the complete persona (traits, vocabulary, pattern, boundaries, examples).", "",
        "## Evaluation Results",
        f"See {RESULTS_FILE} for every figure. How they were measured:",
        f"- Judge: {judge.get('kind') or 'n/a'} `{judge.get('model') or judge.get('name') or 'n/a'}` "
        f"(prompt version {judge.get('prompt_version') or 'n/a'}); agreement with people: "
        f"{describe_agreement(judge.get('agreement'))}",
        f"- Held-out eval set: {eval_set.get('n', 'n/a')} prompts"
        + (f" (SHA-256 `{str(eval_set['sha256'])[:12]}…`)" if eval_set.get("sha256") else "")
        + "; never used for training",
        "- Base model and adapter answer the same prompts with the same system prompt; the A/B interval is a 95% interval on the win rate.",
        f"- examples/sample_interactions.jsonl: {f.n_sample_interactions} real replies of this adapter on eval prompts ({f.sample_source or 'generated at packaging time'}).", "",
        "## Files",
        f"adapter_config.json, adapter_model.safetensors, tokenizer files, PERSONA_SPEC.md, {RESULTS_FILE}, "
        "examples/sample_interactions.jsonl, training_config.yaml (the run's config), DATA_CARD.md (the training data), "
        "MANIFEST.json (SHA-256 of every file).", "",
        "## Known Limitations",
        "- Optimized for task-management and productivity-coaching conversations; outside that domain it falls back to the base model's behaviour.",
        "- Trained and evaluated in English only; other languages may need adaptation.",
        f"- Requires `{f.base_model}` as the base model; on another base the adapter does not apply.",
        "- Scores come from an automatic judge (see its agreement with people above) on a small held-out set; they estimate, not guarantee, behaviour on real traffic.",
    ]
    if f.base_model_name == "smollm2-135m" or "135M" in f.base_model:
        lines.append("- Built on a 135M-parameter model for CPU use: replies are short and can be inaccurate; the production target is Llama-3.1-8B-Instruct.")
    lines.append("")
    return "\n".join(lines)


def _rows(n) -> str:
    """'1 training row', '239 training rows', 'n/a training rows' (a summary without the count)."""
    return f"{n} training row" if n == 1 else f"{n if n is not None else 'n/a'} training rows"
