"""The Publish tab: package a finished run, validate it, push it to the Hub in one click.

Layout: run picker -> Package -> Validate (findings table: level, file, problem, fix) ->
Hub: token (password field, falls back to HF_TOKEN; never stored, logged or echoed: it lives
only in this request and the field is cleared after a push), repo id, optional dataset repo,
private (default on), override validation (recorded in the card) -> Push -> links.
Every callback makes one call into pipeline/ (`pipeline.package.studio_api`: rows and dataclasses);
user mistakes raise UserError, which the studio shell shows as a warning (studio/guard.py).
"""

from __future__ import annotations

import gradio as gr

from pipeline.package import studio_api
from pipeline.evaluation.results import RESULTS_FILE
from pipeline.package.studio_api import FINDING_HEADERS

from ..downloads import run_downloads
from ..guard import USER_ERRORS, refusal_note, toast_text, user_message


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
    # Each step's outcome, or why it was refused (no run chosen, run not finished, not packaged yet).
    package_md = refusal_note(gr.Markdown(elem_id="publish-package-status"), "Not packaged")
    verdict_md = refusal_note(gr.Markdown(elem_id="publish-verdict"), "Not validated")
    # Fixed shares so the "fix" column stays on screen at 1280 px (wrapped, never scrolled to).
    findings = gr.Dataframe(headers=FINDING_HEADERS, value=[], interactive=False, wrap=True,
                            label="Validation findings", elem_id="publish-findings",
                            column_widths=["8%", "20%", "36%", "36%"])
    downloads = gr.File(label=f"Downloads: adapter (zip), package (zip), {RESULTS_FILE}", file_count="multiple",
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
        return gr.Dropdown(choices=studio_api.runs(settings))

    def do_package(run_dir):
        view = studio_api.package(run_dir, settings, engine_factory=ctx.engine)
        return view.summary, view.command, run_downloads(run_dir, settings) or None

    def do_validate(run_dir):
        view = studio_api.validate(run_dir, settings)
        return view.verdict, view.rows

    def do_push(run_dir, token_value, repo, ds_repo, is_private, force):
        view = studio_api.push(run_dir, settings, token=token_value, repo_id=repo, dataset_repo=ds_repo,
                               private=is_private, override_validation=force, user_errors=USER_ERRORS,
                               message=user_message)
        if view.error:
            gr.Warning(toast_text(view.error))
        # The token field is cleared whatever happened (it must not linger in the page), and a
        # failure's reason stays on the page next to the button, not only in a toast.
        return view.markdown, "", view.command

    refresh.click(refresh_runs, outputs=run, api_name="publish_runs")
    package_btn.click(do_package, inputs=run, outputs=[package_md, cli_md, downloads], api_name="publish_package")
    run.change(lambda r: run_downloads(r, settings) or None, inputs=run, outputs=downloads, api_name=False)
    validate_btn.click(do_validate, inputs=run, outputs=[verdict_md, findings], api_name="publish_validate")
    push_btn.click(do_push, inputs=[run, token, repo_id, dataset_repo, private, override],
                   outputs=[push_md, token, cli_md], api_name="publish_push")

    # Fill the run list when the page opens (a protected handler when access is restricted).
    from gradio.context import Context

    Context.root_block.load(refresh_runs, outputs=run, api_name="publish_load")
