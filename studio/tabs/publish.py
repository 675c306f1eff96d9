"""The Publish tab: package a finished run, validate it, push it to the Hub in one click.

Layout: run picker -> Package -> Validate (findings table: level, file, problem, fix) ->
Hub: token (password field, falls back to HF_TOKEN; never stored, logged or echoed: it lives
only in this request and the field is cleared after a push), repo id, optional dataset repo,
private (default on), override validation (recorded in the card) -> Push -> links.
Every callback makes one call into pipeline/ (pipeline.package, pipeline.hub); user mistakes
raise UserError, which the studio shell shows as a warning (studio/guard.py).
"""

from __future__ import annotations

import shlex

import gradio as gr

from pipeline.hub import PushConfig, push_package
from pipeline.package import (PackageConfig, build_package, default_package_dir, publishable_runs,
                              validate_package)

from ..downloads import run_downloads
from ..guard import USER_ERRORS, toast_text, user_message

FINDING_HEADERS = ["level", "file", "problem", "fix"]


def push_command(cfg: PushConfig) -> str:
    """The `python -m pipeline publish` line that does what the form does (token never shown)."""
    argv = ["HF_TOKEN=...", "python -m pipeline publish", shlex.quote(cfg.package), "--repo-id", shlex.quote(cfg.repo_id)]
    argv.append("--private" if cfg.private else "--public")
    if cfg.dataset_repo:
        argv += ["--dataset-repo", shlex.quote(cfg.dataset_repo)]
    if cfg.override_validation:
        argv.append("--override-validation")
    return " ".join(argv)


def create_tab(ctx) -> None:
    settings = ctx.settings
    token_note = ("A Hugging Face token is set for the studio (HF_TOKEN); the field below can override it for one push."
                  if settings.hf_token else
                  "No HF_TOKEN is set: paste a write token below to push (it is used for that push only, never stored).")

    with gr.Row():
        run = gr.Dropdown(choices=[], label="Finished run", elem_id="publish-run", scale=4, allow_custom_value=True,
                          info="Finished runs under runs/, newest first, with their evaluation decision.")
        refresh = gr.Button("Refresh runs", scale=0, elem_id="publish-refresh")
    with gr.Row():
        package_btn = gr.Button("1. Package", variant="primary", elem_id="publish-package")
        validate_btn = gr.Button("2. Validate", elem_id="publish-validate")
    package_md = gr.Markdown(elem_id="publish-package-status")
    verdict_md = gr.Markdown(elem_id="publish-verdict")
    # Fixed shares so the "fix" column stays on screen at 1280 px (wrapped, never scrolled to).
    findings = gr.Dataframe(headers=FINDING_HEADERS, value=[], interactive=False, wrap=True,
                            label="Validation findings", elem_id="publish-findings",
                            column_widths=["8%", "20%", "36%", "36%"])
    downloads = gr.File(label="Downloads: adapter (zip), package (zip), EVALUATION_RESULTS.json", file_count="multiple",
                        interactive=False, elem_id="publish-downloads")

    gr.Markdown("### 3. Push to the Hugging Face Hub\n" + token_note, elem_id="publish-token-note")
    with gr.Row():
        token = gr.Textbox(label="Hugging Face token (optional)", type="password", placeholder="hf_...",
                           elem_id="publish-token", info="Empty: HF_TOKEN is used. Never stored or logged.")
        repo_id = gr.Textbox(label="Model repo id", placeholder="your-name/taskmaster-adapter", elem_id="publish-repo")
        dataset_repo = gr.Textbox(label="Dataset repo id (optional)", placeholder="your-name/taskmaster-data",
                                  elem_id="publish-dataset-repo", info="Also push the training data, linked from the card.")
    with gr.Row():
        private = gr.Checkbox(True, label="Private repo", elem_id="publish-private")
        override = gr.Checkbox(False, label="Push even if validation fails (recorded in the model card)",
                               elem_id="publish-override")
    push_btn = gr.Button("Push to Hub", variant="primary", elem_id="publish-push")
    push_md = gr.Markdown(elem_id="publish-result")
    cli_md = gr.Markdown(elem_id="publish-cli")

    def refresh_runs():
        return gr.Dropdown(choices=publishable_runs(settings))

    def do_package(run_dir):
        result = build_package(PackageConfig(run=run_dir or ""), settings, engine_factory=ctx.engine)
        return (result.summary() + "\n\nNext: **Validate**.",
                f"Same from the command line: `python -m pipeline package --run {run_dir}`",
                run_downloads(run_dir, settings) or None)

    def do_validate(run_dir):
        rep = validate_package(default_package_dir(run_dir, settings), settings)
        return rep.markdown(), rep.rows()

    def do_push(run_dir, token_value, repo, ds_repo, is_private, force):
        cli = ""
        try:
            cfg = PushConfig(package=str(default_package_dir(run_dir, settings)), repo_id=repo or "",
                             private=bool(is_private), override_validation=bool(force),
                             dataset_repo=(ds_repo or "").strip() or None)
            cli = "Same from the command line: `" + push_command(cfg) + "`"
            result = push_package(cfg, settings, token=token_value)
        except USER_ERRORS as exc:
            # The token field is cleared whatever happened (it must not linger in the page), and
            # the reason stays on the page next to the button, not only in a toast.
            msg = user_message(exc)
            gr.Warning(toast_text(msg))
            return f"**Push failed:** {msg}", "", cli
        return result.markdown(), "", cli

    refresh.click(refresh_runs, outputs=run, api_name="publish_runs")
    package_btn.click(do_package, inputs=run, outputs=[package_md, cli_md, downloads], api_name="publish_package")
    run.change(lambda r: run_downloads(r, settings) or None, inputs=run, outputs=downloads, api_name=False)
    validate_btn.click(do_validate, inputs=run, outputs=[verdict_md, findings], api_name="publish_validate")
    push_btn.click(do_push, inputs=[run, token, repo_id, dataset_repo, private, override],
                   outputs=[push_md, token, cli_md], api_name="publish_push")

    # Fill the run list when the page opens (a protected handler when access is restricted).
    from gradio.context import Context

    Context.root_block.load(refresh_runs, outputs=run, api_name="publish_load")
