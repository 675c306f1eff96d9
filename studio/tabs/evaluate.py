"""The Evaluate tab: run an evaluation (background job), then read its gates and evidence.

Top: choose a run, a judge, and start `python -m pipeline evaluate --run ...` as a background
job (the command is shown; the status and log are polled from the job's files, so a refresh
loses nothing), with a progress bar and ETA drawn from the run's eval/progress.json. Below: the decision, the gates with PASS/FAIL and their numbers, trait means
base vs adapter, the per-category table, the A/B result, the worst replies, and the
results file download. Every callback makes one call into
pipeline.evaluation.studio_api, which hands back rows and dataclasses; the tables (pandas) and
the progress bar (HTML) are made here.
"""

from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from pipeline.evaluation import studio_api as api
from pipeline.evaluation.results import RESULTS_FILE

from ..downloads import run_downloads
from ..fields import optional_number
from ..guard import refusal_note


def frame(rows: list[dict], columns: list[str] | None = None) -> pd.DataFrame:
    """A table for gr.Dataframe: `columns` fixes the headers (an empty table keeps them too)."""
    return pd.DataFrame(rows, columns=columns) if columns else pd.DataFrame(rows)


def _duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def progress_html(p: api.Progress) -> str:
    """The evaluation's bar, like the Train tab's: stage, prompts done/total, percent, ETA."""
    if p.state == "none":
        return ""  # the job line above already says "No evaluation has run yet."
    if p.state == "starting":
        return ("<div><b>starting</b>: loading the model (no reply yet)<br>"
                "<progress max='1' style='width:100%'></progress></div>")
    pct = f"{p.fraction:.0%}"
    line = f"<b>{html.escape(p.state)}</b>"
    if p.stage:
        line += f": {html.escape(p.stage)} {p.done}/{p.total} prompts"
    line += f" ({pct} of the evaluation)"
    if p.eta_s is not None:
        line += f", ETA {_duration(p.eta_s)} for this stage"
    elif p.state == "running" and p.done == 0 and p.stage_index == 0:
        line += ", loading the model for the first batch"
    if p.elapsed_s is not None:
        line += {"running": f", {_duration(p.elapsed_s)} so far",
                 "finished": f", took {_duration(p.elapsed_s)}"}.get(p.state, f", after {_duration(p.elapsed_s)}")
    then = f"<br><small>then: {html.escape(', '.join(p.next_stages))}</small>" if p.next_stages else ""
    return (f"<div>{line}<br><progress value='{p.fraction:.3f}' max='1' style='width:100%'></progress>"
            f"{then}</div>")


def _status(js: api.JobStatus) -> tuple[str, str, str]:
    return js.status, js.log, progress_html(js.progress)


def create_tab(ctx) -> None:
    settings, jobs = ctx.settings, ctx.jobs
    with gr.Row():
        # Empty in the page config (public even when access is restricted); filled on load by a
        # protected handler, so run folder names only reach an admin.
        run = gr.Dropdown(choices=[], value=None, label="Run (runs/<id> with an adapter)", allow_custom_value=True,
                          elem_id="eval-run", scale=3)
        refresh = gr.Button("Refresh runs", scale=0, elem_id="eval-refresh")
    with gr.Row():
        judge = gr.Radio(["reader", "rubric", "llm"], value="reader", label="Judge", elem_id="eval-judge",
                         info="reader: offline, the embedded model's reading + grounding, with measured agreement "
                              "(docs/judges.md). rubric: lexicon heuristic. llm: the judge endpoint ("
                              + settings.judge.describe() + ").")
        limit = optional_number("Only the first N prompts", precision=0, elem_id="eval-limit", placeholder="all",
                          info="Empty: the whole eval set.")
        max_new = gr.Number(96, label="Max new tokens", precision=0, minimum=1, elem_id="eval-max-new")
    default_s, why = api.default_decoding(settings)
    with gr.Row():
        # Empty = the run's base model's default decoding (pipeline.models); base and adapter always
        # answer with the same settings, and the results file records them.
        temperature = optional_number("Temperature (0 = greedy)", minimum=0, elem_id="eval-temperature",
                                placeholder="default",
                                info=f"Empty: the base model's default ({settings.base_model}: {default_s.describe()}; {why}).")
        top_p = optional_number("Top-p", minimum=0, maximum=1, elem_id="eval-top-p", placeholder="default",
                          info="Empty: the base model's default.")
    with gr.Row():
        start = gr.Button("Evaluate (background job)", variant="primary", elem_id="eval-start")
        stop = gr.Button("Stop", scale=0, elem_id="eval-stop")
    # Start's outcome: the command, or why it was not started (no run, a job running, a bad setting).
    started = refusal_note(gr.Markdown(elem_id="eval-started"), "Not started")
    job_md = gr.Markdown(elem_id="eval-job")
    bar = gr.HTML(progress_html(api.Progress("none")), elem_id="eval-progress")
    job_log = gr.Textbox(label="Job log (last lines)", lines=6, max_lines=12, interactive=False, elem_id="eval-log")
    timer = gr.Timer(2.0)

    decision = gr.Markdown(elem_id="eval-decision")
    gates = gr.Dataframe(label="Quality gates", interactive=False, wrap=True, elem_id="eval-gates",
                         column_widths=["22%", "8%", "22%", "18%", "30%"])
    with gr.Row():
        traits = gr.BarPlot(x="bar", y="score", color="model", x_title="trait · model", x_label_angle=-35,
                            title="Trait means (0-2), base vs adapter", y_lim=[0, 2], height=380,
                            elem_id="eval-traits")
        with gr.Column():
            ab = gr.Markdown(elem_id="eval-ab")
            download = gr.File(label=f"Downloads: adapter (zip), package (zip), {RESULTS_FILE}",
                               file_count="multiple", interactive=False, elem_id="eval-download")
    categories = gr.Dataframe(label="Per category", interactive=False, elem_id="eval-categories")
    worst = gr.Dataframe(label="Worst adapter replies, with the base model's reply to the same prompt",
                         interactive=False, wrap=True, elem_id="eval-worst",
                         column_widths=["8%", "7%", "20%", "25%", "25%", "15%"])
    with gr.Accordion("summary.md", open=False):
        summary = gr.Markdown(elem_id="eval-summary")
    with gr.Accordion("Compare two runs", open=False, elem_id="eval-compare"):
        gr.Markdown("Per-trait and per-gate differences between two evaluated runs, with 95% intervals. Only runs "
                    "evaluated on the same eval set, with the same judge and sampling, are compared.")
        with gr.Row():
            run_a = gr.Dropdown(choices=[], label="Run A (before)", allow_custom_value=True, elem_id="eval-compare-a")
            run_b = gr.Dropdown(choices=[], label="Run B (after)", allow_custom_value=True, elem_id="eval-compare-b")
            compare_btn = gr.Button("Compare", scale=0, elem_id="eval-compare-run")
        compare_md = refusal_note(gr.Markdown(elem_id="eval-compare-summary"), "Not compared")
        compare_traits = gr.Dataframe(label="Traits and overall (B - A)", interactive=False, wrap=True,
                                      elem_id="eval-compare-traits")
        compare_gates = gr.Dataframe(label="Gates", interactive=False, wrap=True, elem_id="eval-compare-gates")

    view_outputs = [decision, gates, traits, categories, worst, ab, summary, download]

    def show(r):
        v = api.view(r)
        return (v.decision, frame(v.gates, api.GATE_COLUMNS), frame(v.traits, api.TRAIT_COLUMNS),
                frame(v.categories, api.CATEGORY_COLUMNS), frame(v.worst, api.WORST_COLUMNS), v.ab, v.summary,
                run_downloads(r, settings) or None)

    def compare(a, b):
        c = api.compare_view(a, b)
        return c.markdown, frame(c.traits), frame(c.gates)

    def fill_runs():
        runs = api.evaluable_runs(settings)
        evaluated = [r for r in runs if api.results_path(r).is_file()]
        return (gr.update(choices=runs, value=api.default_run(jobs, settings)),
                gr.update(choices=evaluated, value=evaluated[1] if len(evaluated) > 1 else None),
                gr.update(choices=evaluated, value=evaluated[0] if evaluated else None))

    refresh.click(lambda: gr.update(choices=api.evaluable_runs(settings)), outputs=[run], api_name="eval_runs")
    refresh.click(lambda: fill_runs()[1:], outputs=[run_a, run_b], api_name=False)
    compare_btn.click(compare, inputs=[run_a, run_b], outputs=[compare_md, compare_traits, compare_gates],
                      api_name="eval_compare")
    run.change(show, inputs=[run], outputs=view_outputs, api_name="eval_view")
    status_outputs = [job_md, job_log, bar]

    def on_start(r, j, n, m, t, p):
        started_md, js = api.start_eval(jobs, settings, r, j, n, m, t, p)
        return (started_md, *_status(js))

    start.click(on_start, inputs=[run, judge, limit, max_new, temperature, top_p],
                outputs=[started, *status_outputs], api_name="eval_start")
    stop.click(lambda: _status(api.stop_eval(jobs)), outputs=status_outputs, api_name="eval_stop")
    timer.tick(lambda: _status(api.job_status(jobs)), outputs=status_outputs, show_progress="hidden", queue=False,
               api_name="eval_poll")
    # When the evaluation the page follows finishes, its results appear without a click: the
    # tick writes the finished job's id into a hidden field, whose change shows that job's run
    # (a gr.State set by a tick fires no change event in Gradio 6.31; a rendered field does).
    finished_job = gr.Textbox(visible="hidden", elem_id="eval-finished-job")
    timer.tick(lambda: api.job_status(jobs).finished_job, outputs=[finished_job], show_progress="hidden",
               queue=False, api_name=False)

    def on_finished(job_id):
        r = api.job_status(jobs, job_id).progress.run if job_id else None
        if not r:
            return (gr.skip(),) * (1 + len(view_outputs))
        return (gr.update(choices=api.evaluable_runs(settings), value=r), *show(r))

    finished_job.change(on_finished, inputs=[finished_job], outputs=[run, *view_outputs], api_name=False)
    # When a job finishes, "Refresh runs" / re-selecting the run shows its results.
    from gradio.context import Context

    Context.root_block.load(lambda: _status(api.job_status(jobs)), outputs=status_outputs)
    # On load: the run list, newest preselected, then its results (a value set by a handler's
    # output fires no change event, hence the explicit .then).
    Context.root_block.load(fill_runs, outputs=[run, run_a, run_b]).then(show, inputs=[run], outputs=view_outputs)
