"""Short help shown at the top of each tab: what the tab does, which phase of the seed's
persona-tuner pipeline it is, and the command line that does the same headless.
The full checklist is docs/persona-tuner.md."""

from __future__ import annotations

import gradio as gr

from pipeline.evaluation.results import RESULTS_FILE

TAB_HELP: dict[str, str] = {
    "Persona": (
        "**Phase 1: Specification.** The five components (traits with 0/1/2 rubric anchors, vocabulary, "
        "pattern, boundaries, examples), success criteria and deployment target. Edit the YAML and *Save*: "
        "it is validated first (every problem listed) and the previous version is backed up. "
        "Start a new persona from the blank template, as a copy, or drafted by the LLM from one paragraph. "
        "CLI: `python -m pipeline spec validate` · `python -m pipeline spec render`"
    ),
    "Data": (
        "**Phase 2: Dataset creation.** Generate from the scenario matrix, filter by trait score (≥6/10), "
        "dedupe, balance across scenarios, review a 10% sample, export. CLI: `python -m pipeline data generate|filter|dedupe|balance|review|export`"
    ),
    "Train": (
        "**Phase 3: Training.** LoRA (seed: r=16, alpha=16, all projection modules, 3 epochs, cosine). "
        "Training runs as a background job: refresh the page and it is still there. Healthy loss: ~1.3 → <0.4. "
        "CLI: `python -m pipeline train --preset cpu-demo --out runs/ID`"
    ),
    "Evaluate": (
        "**Phase 4: Evaluation.** Base vs adapter on the held-out eval set; gates: overall ≥7.5/10, every trait "
        "≥1.5/2, 0 boundary violations, A/B win rate ≥70%. CLI: `python -m pipeline evaluate --run runs/ID`"
    ),
    "Arena": (
        "**Blind A/B.** Two anonymous replies to the same prompt, sides shuffled; vote, then see which was the "
        "adapter. Votes feed the A/B win rate. CLI: `python -m pipeline arena results`"
    ),
    "Publish": (
        f"**Phase 6: Packaging.** Build the package (adapter, README, PERSONA_SPEC.md, {RESULTS_FILE}, "
        "examples), validate it, push it to the Hub (needs HF_TOKEN). CLI: `python -m pipeline package --run runs/ID` · `python -m pipeline package validate DIR` · `python -m pipeline publish DIR --repo-id you/name`"
    ),
}

STUDIO_HELP = (
    "Work left to right: **Persona → Data → Train → Evaluate → Arena → Publish**. Long work (generation, "
    "training, evaluation) runs in the background and survives a page refresh. Mistakes show as a warning "
    "that says what to change. `python -m pipeline run --preset cpu-demo --out runs/demo` does the whole "
    "pipeline headless. Checklist: docs/persona-tuner.md."
)


def tab_help(label: str) -> None:
    """Render the tab's help line (inside the tab, above the tab's own controls)."""
    text = TAB_HELP.get(label)
    if text:
        gr.Markdown(text, elem_classes=["tab-help"], elem_id=f"help-{label.lower()}")
