"""Build the studio: a Gradio Blocks app with one tab per pipeline stage."""

from __future__ import annotations

import gradio as gr

from pipeline.settings import Settings

from .context import StudioContext
from .header import render_header
from .tabs import arena, data, evaluate, persona, publish, train

TABS = [
    ("Persona", persona),
    ("Data", data),
    ("Train", train),
    ("Evaluate", evaluate),
    ("Arena", arena),
    ("Publish", publish),
]


def build_app(settings: Settings, ctx: StudioContext | None = None) -> gr.Blocks:
    ctx = ctx or StudioContext(settings)
    with gr.Blocks(title="TaskMaster Persona Studio") as demo:
        gr.Markdown(render_header(settings), elem_id="studio-header")
        with gr.Tabs():
            for label, module in TABS:
                with gr.Tab(label, id=label.lower()):
                    module.create_tab(ctx)
    return demo
