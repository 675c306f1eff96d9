"""The Evaluate tab."""

import gradio as gr


def create_tab(ctx) -> None:
    gr.Markdown("**Evaluate**: this stage is not built yet in this version of the studio.")
