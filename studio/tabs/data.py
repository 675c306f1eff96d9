"""The Data tab: run the data stages, watch coverage and scores, review examples, export.

Layout, top to bottom:
  overview     the candidate set, coverage per scenario against target, score distribution,
               rejection reasons (charts), set-aside examples
  stages       Generate / Filter / Dedupe / Balance / Target: long ones start a background
               job (`python -m pipeline data ...`, the command is shown) whose status and log
               are polled from files, so a refresh or a closed browser loses nothing
  review       one example at a time with its scores and reasons; approve, reject, or edit
               the reply (re-judged); pending queue or the seed's 10% random sample; every
               decision is in SQLite the moment the button is pressed
  export       the approved set as a new dataset version, optionally pushed to the Hub
Every callback makes one call into pipeline.data.studio_api; the review position lives in
gr.State (per browser session). Content is filled by a page-load handler, not baked into
the page config.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from pipeline.data import studio_api as api
from pipeline.data.review import SAMPLE_FRACTION
from pipeline.evaluation.results import RESULTS_FILE

from ..fields import optional_number
from ..guard import refusal_note


def overview_frames(settings, target_per_scenario: int | None = None):
    """(summary markdown, coverage, score and rejection-reason frames) for the charts."""
    md, cov, scores, reasons = api.overview(settings, target_per_scenario)
    # Explicit dtypes: an empty frame must still say "examples" is a number, or the chart's
    # y axis is typed as categories on page load and stays so after the first update.
    def frame(rows, label):
        return pd.DataFrame({label: pd.Series([r[label] for r in rows], dtype=str),
                             "examples": pd.Series([r["examples"] for r in rows], dtype="int64")})

    return (md, pd.DataFrame(cov, columns=["scenario", "kind", "examples"]), frame(scores, "score"),
            frame(reasons, "reason"))


def create_tab(ctx) -> None:
    settings, jobs = ctx.settings, ctx.jobs
    review_state = gr.State({})
    llm = settings.generator.configured

    # ---- overview -------------------------------------------------------------------
    with gr.Row():
        summary = gr.Markdown(elem_id="data-summary")
        refresh_btn = gr.Button("Refresh", scale=0, elem_id="data-refresh")
    with gr.Row():
        coverage_plot = gr.BarPlot(x="scenario", y="examples", color="kind", title="Coverage per scenario vs target",
                                   color_map={"at target": "#4c78a8", "short": "#e45756", "above target": "#9ecae9"},
                                   x_label_angle=-45, height=320, y_lim=[0, None], elem_id="data-coverage", scale=2)
        with gr.Column(scale=1):
            score_plot = gr.BarPlot(x="score", y="examples", title="Judge score distribution (0-10)", height=170,
                                    sort=[str(i) for i in range(11)], y_lim=[0, None],
                                    elem_id="data-scores")
            reason_plot = gr.BarPlot(x="reason", y="examples", title="Rejection reasons", height=170, y_lim=[0, None],
                                     elem_id="data-reasons")
    with gr.Accordion("Set-aside examples (filter, dedupe, balance, target), with why", open=False):
        rejected_table = gr.Dataframe(headers=["id", "stage", "reasons"], interactive=False, wrap=True,
                                      elem_id="data-rejected")

    # ---- stages ---------------------------------------------------------------------
    endpoint_note = (f"Generator: **{settings.generator.describe()}**." if llm else
                     "No generator endpoint: generate, balance (filling) and target are off; set OPENAI_API_KEY / "
                     "OPENAI_BASE_URL. The offline path (rubric filter, dedupe, gap report, review, export) works.")
    gr.Markdown(endpoint_note, elem_id="data-endpoint")
    with gr.Tabs():
        with gr.Tab("Generate"):
            with gr.Row():
                per_scenario = gr.Number(3, label="Examples per scenario", precision=0, minimum=1,
                                         elem_id="data-per-scenario", info="The seed used 3 (37 scenarios -> 111).")
                limit = optional_number("Stop after (examples)", precision=0, elem_id="data-limit", placeholder="all",
                                  info="Empty: every scenario x variant.")
                concurrency = gr.Number(8, label="Concurrency", precision=0, minimum=1, elem_id="data-concurrency")
                max_requests = optional_number("Max requests", precision=0, elem_id="data-max-requests",
                                         placeholder="no cap",
                                         info="Hard cap, retries included. Empty: none.")
                max_cost = optional_number("Max cost (USD)", elem_id="data-max-cost", placeholder="no cap",
                                     info="Hard cap on estimated spend. Empty: none.")
            generate_btn = gr.Button("Generate (background job)", variant="primary", interactive=llm,
                                     elem_id="data-generate")
        with gr.Tab("Filter"):
            with gr.Row():
                judge_kind = gr.Radio(["rubric", "llm"], value="rubric", label="Judge", elem_id="data-judge",
                                      info="rubric: offline, instant. llm: the judge endpoint (background job).")
                min_score = gr.Slider(0, 10, value=6, step=0.5, label="Min score (0-10)", elem_id="data-min-score",
                                      info="The seed's filter: >= 6 and no violation.")
            filter_btn = gr.Button("Filter", variant="primary", elem_id="data-filter")
        with gr.Tab("Dedupe"):
            with gr.Row():
                dd_threshold = gr.Slider(0.3, 1.0, value=0.6, step=0.05, label="Near-duplicate threshold",
                                         elem_id="data-dd-threshold",
                                         info="Jaccard of character 4-grams of the whole example.")
                dd_eval = gr.Slider(0.3, 1.0, value=0.5, step=0.05, label="Eval-leak threshold",
                                    elem_id="data-dd-eval", info="Any user turn vs any eval prompt.")
            dedupe_btn = gr.Button("Dedupe", variant="primary", elem_id="data-dedupe")
        with gr.Tab("Balance"):
            with gr.Row():
                per_target = optional_number("Target per scenario", precision=0, elem_id="data-target",
                                       placeholder="the categories' targets",
                                       info="Empty: each category's target_count spread over its scenarios. Seed: 10.")
                offline = gr.Checkbox(not llm, label="Report gaps only (no generation)", elem_id="data-offline")
                with_curated = gr.Checkbox(False, label="Count the curated set too", elem_id="data-with-curated",
                                           info="For a generated input: fill only what curated + generated lack.")
            balance_btn = gr.Button("Balance", variant="primary", elem_id="data-balance")
        with gr.Tab("Target weak traits"):
            with gr.Row():
                results_path = gr.Textbox(label=f"{RESULTS_FILE} (or plan JSON)", elem_id="data-results",
                                          placeholder=f"runs/<id>/eval/{RESULTS_FILE}", scale=3)
                per_trait = gr.Number(30, label="Examples per weak trait", precision=0, elem_id="data-per-trait")
            target_btn = gr.Button("Generate targeted examples (background job)", variant="primary",
                                   interactive=llm, elem_id="data-target-run")
    # A stage's outcome, or why it was refused (no candidates yet, no endpoint, a job running).
    stage_out = refusal_note(gr.Markdown(elem_id="data-stage-out"), "Not run")
    with gr.Row():
        job_md = gr.Markdown(elem_id="data-job")
        stop_btn = gr.Button("Stop job", scale=0, elem_id="data-stop")
    job_log = gr.Textbox(label="Job log (last lines)", lines=6, max_lines=12, interactive=False, elem_id="data-log")
    timer = gr.Timer(2.0)

    # ---- review ---------------------------------------------------------------------
    gr.Markdown("### Review")
    with gr.Row():
        mode = gr.Radio([("Pending queue", "pending"), ("Random sample", "sample"), ("Everything", "all")],
                        value="pending", label="Queue", elem_id="data-review-mode")
        fraction = gr.Slider(0.05, 1.0, value=SAMPLE_FRACTION, step=0.05, label="Sample size",
                             elem_id="data-review-fraction", info="The seed reviews a 10% random sample.")
        load_btn = gr.Button("Load queue", scale=0, elem_id="data-review-load")
    progress = gr.Markdown(elem_id="data-review-progress")
    card = gr.Markdown(elem_id="data-review-card")
    reply = gr.Textbox(label="Reply (edit it, then 'Save edit': it is re-judged)", lines=4,
                       elem_id="data-review-reply")
    note = gr.Textbox(label="Note (saved with the decision)", elem_id="data-review-note")
    with gr.Row():
        approve_btn = gr.Button("Approve", variant="primary", elem_id="data-approve")
        reject_btn = gr.Button("Reject", variant="stop", elem_id="data-reject")
        edit_btn = gr.Button("Save edit", elem_id="data-edit")
        skip_btn = gr.Button("Skip", elem_id="data-skip")

    # ---- export ---------------------------------------------------------------------
    gr.Markdown("### Export")
    with gr.Row():
        include_pending = gr.Checkbox(False, label="Include pending (not rejected)", elem_id="data-include-pending",
                                      info="For the sample-review workflow: export everything nobody rejected.")
        export_note = gr.Textbox(label="Note for the data card", elem_id="data-export-note")
        hub_repo = gr.Textbox(label="Push to Hub dataset repo (optional)", placeholder="me/taskmaster-sft",
                              elem_id="data-hub-repo", info="Needs HF_TOKEN.")
    export_btn = gr.Button("Export new version", variant="primary", elem_id="data-export")
    export_out = refusal_note(gr.Markdown(elem_id="data-export-out"), "Not exported")

    # ---- wiring ---------------------------------------------------------------------
    overview_outputs = [summary, coverage_plot, score_plot, reason_plot]

    def on_refresh(target):
        return (*overview_frames(settings, int(target) if target else None), api.rejected_rows(settings))

    def on_job(action, *values):
        names = {"generate": ["examples_per_scenario", "limit", "max_concurrency", "max_requests", "max_cost_usd"],
                 "balance": ["target_per_scenario", "offline", "with_curated", "judge", "max_concurrency",
                             "max_requests", "max_cost_usd"],
                 "target": ["results", "per_trait", "judge", "max_concurrency", "max_requests", "max_cost_usd"]}[action]
        job = api.start_job(jobs, settings, action, dict(zip(names, values)))
        status, log = api.job_status(jobs, job.id)
        return f"Started `{job.command}`", status, log

    # A quick stage changes the candidate set: its handler returns the overview too, so the
    # summary, the charts and the set-aside table never show the state before the stage.
    def with_overview(message, *job_fields):
        return (message, *job_fields, *on_refresh(None))

    def on_filter(kind, score):
        if kind == "llm":
            job = api.start_job(jobs, settings, "filter", {"judge": "llm", "min_score": score})
            status, log = api.job_status(jobs, job.id)
            return (f"Started `{job.command}`", status, log, *(gr.skip() for _ in overview_outputs), gr.skip())
        return with_overview(api.run_quick(settings, "filter", {"min_score": score}), gr.skip(), gr.skip())

    def on_dedupe(threshold, eval_threshold):
        return with_overview(api.run_quick(settings, "dedupe", {"threshold": threshold,
                                                                "eval_threshold": eval_threshold}))

    def on_balance(target, offline_only, curated, kind, conc, reqs, cost):
        if offline_only:
            msg = api.run_quick(settings, "balance", {"target_per_scenario": target, "with_curated": curated})
            return (msg, gr.skip(), gr.skip(), *on_refresh(target))
        return (*on_job("balance", target, False, curated, kind, conc, reqs, cost),
                *(gr.skip() for _ in overview_outputs), gr.skip())

    job_outputs = [stage_out, job_md, job_log]
    stage_outputs = job_outputs + overview_outputs + [rejected_table]
    refresh_btn.click(on_refresh, inputs=[per_target], outputs=overview_outputs + [rejected_table],
                      api_name="data_overview")
    gr.on([generate_btn.click], lambda *v: on_job("generate", *v),
          inputs=[per_scenario, limit, concurrency, max_requests, max_cost], outputs=job_outputs,
          api_name="data_generate")
    filter_btn.click(on_filter, inputs=[judge_kind, min_score], outputs=stage_outputs, api_name="data_filter")
    dedupe_btn.click(on_dedupe, inputs=[dd_threshold, dd_eval], outputs=[stage_out] + overview_outputs + [rejected_table],
                     api_name="data_dedupe")
    balance_btn.click(on_balance, inputs=[per_target, offline, with_curated, judge_kind, concurrency, max_requests,
                                          max_cost],
                      outputs=stage_outputs, api_name="data_balance")
    target_btn.click(lambda *v: on_job("target", *v),
                     inputs=[results_path, per_trait, judge_kind, concurrency, max_requests, max_cost],
                     outputs=job_outputs, api_name="data_target")
    stop_btn.click(lambda: api.stop_job(jobs), outputs=[job_md, job_log], api_name="data_stop")
    # When a background stage (generate, LLM filter, balance, target) ends, the overview, charts
    # and set-aside table redraw without a Refresh click: the tick also writes the ended job's id
    # into a hidden field, whose change redraws (a gr.State set by a tick fires no change event in
    # Gradio 6.31; a rendered field does; as in the Evaluate tab). One tick, one request per 2 s.
    ended_job = gr.Textbox(visible="hidden", elem_id="data-ended-job")
    timer.tick(lambda: (*api.job_status(jobs), api.ended_job(jobs)), outputs=[job_md, job_log, ended_job],
               show_progress="hidden", queue=False)
    ended_job.change(lambda _job, target: on_refresh(target), inputs=[ended_job, per_target],
                     outputs=overview_outputs + [rejected_table], show_progress="hidden", api_name=False)

    review_outputs = [review_state, card, reply, progress]

    def review(action):
        def fn(state, m, frac, n, r, kind):
            return api.review_step(settings, state, action, mode=m, fraction=frac, note=n, reply=r, judge_kind=kind)
        fn.__name__ = f"review_{action}"
        return fn

    review_inputs = [review_state, mode, fraction, note, reply, judge_kind]
    for btn, action in ((load_btn, "load"), (approve_btn, "approve"), (reject_btn, "reject"), (edit_btn, "edit"),
                        (skip_btn, "next")):
        btn.click(review(action), inputs=review_inputs, outputs=review_outputs, api_name=f"data_review_{action}")
    mode.change(review("load"), inputs=review_inputs, outputs=review_outputs)
    export_btn.click(lambda p, n, r: api.export_from_ui(settings, p, n, r), inputs=[include_pending, export_note, hub_repo],
                     outputs=[export_out], api_name="data_export")

    # Fill the overview when the page opens (a protected handler when access is restricted).
    from gradio.context import Context

    Context.root_block.load(on_refresh, inputs=[per_target], outputs=overview_outputs + [rejected_table],
                            api_name="data_load")
