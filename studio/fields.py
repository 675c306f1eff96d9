"""Form fields the tabs share."""

from __future__ import annotations

import gradio as gr


def _empty() -> None:
    return None


def optional_number(label: str, *, placeholder: str, **kwargs) -> gr.Number:
    """A number field that starts empty (None = "use the default"). Gradio 6.31 shows an empty
    gr.Number(None) as 0 and sends 0 (gradio-app/gradio#6728), so "Top-p: empty = default"
    would start an evaluation with top-p 0 and be refused; a value callable that returns None
    (filled on page load) leaves the field truly empty, showing `placeholder`."""
    return gr.Number(_empty, label=label, placeholder=placeholder, **kwargs)
