"""The Arena tab."""

import gradio as gr


def create_tab(ctx) -> None:
    gr.Markdown("**Arena**: this stage is not built yet in this version of the studio.")
