"""Gradio UI only: one module per tab under `studio/tabs/`, wiring components to `pipeline/` calls."""
