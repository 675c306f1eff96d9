"""The Train tab: config form with presets, the size/memory plan before Start, a live run.

Training never runs in the studio process: Start writes the form's TrainConfig into a new
run folder and launches `python -m pipeline train --config <run>/train_config.yaml --out <run>`
as a background job (the command is shown), and the loss curve, progress bar
with ETA and log tail are read back from the job's files and `runs/<id>/` every 2 s. On
page load the tab re-attaches to the latest training job, so a refresh or a closed browser
loses nothing. Every callback makes one call into `pipeline.train.monitor`.
"""

from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from pipeline.train import monitor
from pipeline.train.config import ALL_MODULES, PRESETS

from ..guard import refusal_note


# The loss plot's x axis spans the whole planned run (so the curve also shows how far it has got),
# and at least this many steps: the axis then has room for ~10-20 ticks only at whole steps (a
# 5-step run drawn on 1..5 would be labelled 1.5, 2.5, ...).
MIN_STEPS_AXIS = 20


def progress_html(view: monitor.View) -> str:
    """The run's state, a progress bar with ETA, its message and tracker command (the seam gives
    the numbers; the page's HTML is made here)."""
    if not view.job_id:
        return "<div>No training run yet.</div>"
    frac = view.step / view.max_steps if view.max_steps else 0.0
    eta = (f", ETA {int(view.eta_s // 60)}m{int(view.eta_s % 60):02d}s"
           if view.eta_s and view.state == "running" else "")
    tracker = f"<br><small>Tracker: <code>{html.escape(view.tracker)}</code></small>" if view.tracker else ""
    return (f"<div><b>{html.escape(view.state)}</b>: step {view.step}/{view.max_steps or '?'} ({frac:.0%}){eta}"
            f"<br><progress value='{view.step}' max='{max(1, view.max_steps)}' style='width:100%'></progress>"
            f"<br><small>{html.escape(view.message)}</small>{tracker}</div>")

def _loss_plot(view) -> gr.LinePlot:
    last = max([view.max_steps or 0] + [int(m["step"]) for m in view.metrics])
    return gr.LinePlot(value=_loss_frame(view), x_lim=[0, max(MIN_STEPS_AXIS, last)])


def _runs_frame(rows: list[dict]) -> pd.DataFrame:
    """The Runs table with its figures rounded as a person reads them (losses to 3 decimals)."""
    df = pd.DataFrame(rows)
    for col, digits in (("first_loss", 3), ("final_loss", 3), ("runtime_s", 0)):
        if col in df:
            df[col] = df[col].map(lambda x, d=digits: None if x is None or pd.isna(x) else round(float(x), d))
    return df


def _preset_note(name: str | None) -> str:
    return f"**{name}**: {PRESETS[name][0]}" if name in PRESETS else ""


def _loss_frame(view) -> pd.DataFrame:
    # Explicit numeric dtypes: an empty or object-typed frame makes the plot treat the axes as
    # categories (one tick per value, in arrival order) instead of a scale.
    return pd.DataFrame({"step": pd.Series([m["step"] for m in view.metrics], dtype="int64"),
                         "loss": pd.Series([float(m["loss"]) for m in view.metrics], dtype="float64")})


def create_tab(ctx) -> None:
    from gradio.context import Context

    settings, jobs = ctx.settings, ctx.jobs
    tab = Context.block  # the gr.Tab this tab is built in (studio/app.py opens it around create_tab)
    d = monitor.form_defaults("cpu-demo" if settings.base_model == "smollm2-135m" else "seed", settings)
    job_id = gr.State(None)  # the training job this page follows (re-attached on load)

    gr.Markdown("Train a LoRA adapter on the persona's **approved** conversations. Check the plan (adapter size "
                "against the spec's limit, memory) before pressing Start; training runs as a background job and "
                "keeps going if you close this page.")
    with gr.Row():
        # Names only in the box (a long description is cut there); the chosen one's is spelled out below.
        preset = gr.Dropdown(list(PRESETS), value=d["preset"], label="Preset", scale=2, elem_id="train-preset")
        base = gr.Textbox(d["base_model"], label="Base model", elem_id="train-base",
                          info="smollm2-135m, llama-3.1-8b-instruct, a local folder or a Hub id")
        persona = gr.Textbox(d["persona"], label="Persona", elem_id="train-persona")
        data = gr.Textbox(d["data"], label="Data", placeholder="empty: the shipped <persona>/train.jsonl",
                          elem_id="train-data",
                          info="Default: the Data tab's newest exported version. Only approved records are used.")
    preset_note = gr.Markdown(_preset_note(d["preset"]), elem_id="train-preset-note")
    with gr.Row():
        r = gr.Number(d["lora.r"], label="LoRA rank r", precision=0, minimum=1, elem_id="train-r")
        alpha = gr.Number(d["lora.alpha"], label="LoRA alpha", precision=0, minimum=1, elem_id="train-alpha")
        dropout = gr.Number(d["lora.dropout"], label="LoRA dropout", minimum=0, maximum=0.99, elem_id="train-dropout")
        targets = gr.CheckboxGroup(ALL_MODULES, value=d["lora.target_modules"], label="Target modules", scale=3,
                                   elem_id="train-targets")
    with gr.Row():
        epochs = gr.Number(d["epochs"], label="Epochs", elem_id="train-epochs")
        batch = gr.Number(d["batch_size"], label="Batch size", precision=0, elem_id="train-batch")
        accum = gr.Number(d["grad_accum"], label="Gradient accumulation", precision=0, elem_id="train-accum")
        lr = gr.Number(d["learning_rate"], label="Learning rate", elem_id="train-lr")
        max_len = gr.Number(d["max_length"], label="Max length (tokens)", precision=0, elem_id="train-maxlen")
        warmup = gr.Number(d["warmup_steps"], label="Warm-up steps", precision=0, elem_id="train-warmup")
        max_steps = gr.Number(d["max_steps"], label="Max steps (-1: all epochs)", precision=0, elem_id="train-maxsteps")
        batching = gr.Dropdown(["grouped", "padded", "packed"], value=d["batching"], label="Batching",
                               elem_id="train-batching")
        layers = gr.Number(d["lora.layers"], label="Adapted layers (0 = all)", precision=0, minimum=0,
                           elem_id="train-layers",
                           info="only the last N decoder layers get LoRA; on CPU backward then stops there")
    with gr.Row():
        method = gr.Dropdown(["sft", "dpo", "kto"], value=d["method"], label="Method", elem_id="train-method",
                             info="sft: the curated conversations. dpo / kto: a preference round on an SFT run")
        from_run = gr.Textbox(d["from_run"], label="From run (dpo/kto)", placeholder="runs/<id> of an SFT run",
                              elem_id="train-from-run", scale=2)
        pairs = gr.Textbox(d["pairs"], label="Preference data (dpo/kto, optional)", elem_id="train-pairs", scale=2,
                           placeholder="arena export files, comma-separated",
                           info="plus self-play pairs from the curated data (Arena tab: Export DPO pairs / KTO labels)")
        report_to = gr.Dropdown(["tensorboard", "trackio", "wandb", "none"], value=d["report_to"],
                                label="Log runs to", elem_id="train-report-to",
                                info="tensorboard: local, no account (tensorboard --logdir runs)")
    form = [preset, base, persona, data, r, alpha, dropout, targets, epochs, batch, accum, lr, max_len, warmup,
            max_steps, batching, layers, method, from_run, pairs, report_to]
    plan_md = gr.Markdown(elem_id="train-plan")
    with gr.Row():
        start = gr.Button("Start training", variant="primary", elem_id="train-start")
        stop = gr.Button("Stop (keeps the adapter so far)", elem_id="train-stop")
        resume = gr.Button("Resume", interactive=False, elem_id="train-resume")
    # Why Start / Stop / Resume was refused (a bad setting, a job already running), kept on the page.
    note = refusal_note(gr.Markdown(elem_id="train-note"), "Refused")
    progress = gr.HTML(elem_id="train-progress")
    command = gr.Markdown(elem_id="train-command")
    with gr.Row():
        loss_plot = gr.LinePlot(_loss_frame(monitor.View(None, "idle", "")), x="step", y="loss", title="Training loss",
                                height=280, x_lim=[0, MIN_STEPS_AXIS], elem_id="train-loss")
        log = gr.Textbox(label="Log (last lines)", lines=12, max_lines=12, interactive=False, elem_id="train-log")
    runs = gr.Dataframe(label="Runs", interactive=False, elem_id="train-runs")
    timer = gr.Timer(2.0)

    def as_form(*values):
        return dict(zip(monitor.FORM_FIELDS, values))

    def show(view):
        cmd = f"`{view.command}`" if view.command else ""
        return (view.job_id, progress_html(view), _loss_plot(view), view.log, cmd,
                gr.Button(interactive=view.resumable), view.run_dir)

    run_dir = gr.State(None)  # the run the page follows (Resume continues it)
    live = [job_id, progress, loss_plot, log, command, resume, run_dir]

    def on_preset(name):
        v = monitor.form_defaults(name, settings)
        return [v[k] for k in monitor.FORM_FIELDS[1:]]

    # .input, not .change: a reloaded page sets the preset from the running job's command, and that
    # must not reset the other fields to the preset's defaults (bug 8).
    preset.input(on_preset, inputs=[preset], outputs=form[1:], api_name="train_preset")
    preset.change(_preset_note, inputs=[preset], outputs=[preset_note], show_progress="hidden", queue=False)
    for comp in form:
        comp.change(lambda *v: monitor.plan_report(as_form(*v), settings), inputs=form, outputs=[plan_md],
                    show_progress="hidden", queue=False)
    # Each action clears the note of an earlier refusal ("") when it goes through.
    start.click(lambda *v: (*show(monitor.attach(jobs, monitor.start(jobs, settings, as_form(*v)).id)), ""),
                inputs=form, outputs=live + [note], api_name="train_start")
    stop.click(lambda j: (*show(monitor.attach(jobs, monitor.stop(jobs, j).id)), ""), inputs=[job_id],
               outputs=live + [note], api_name="train_stop")
    resume.click(lambda r: (*show(monitor.attach(jobs, monitor.resume(jobs, r).id)), ""), inputs=[run_dir],
                 outputs=live + [note], api_name="train_resume")
    timer.tick(lambda j: show(monitor.attach(jobs, j)), inputs=[job_id], outputs=live, show_progress="hidden",
               queue=False, api_name="train_poll")
    timer.tick(lambda: _runs_frame(monitor.runs_table(settings)), outputs=[runs], show_progress="hidden", queue=False)
    from gradio.context import Context

    # Re-attach on every page load: the latest training job, running or not; while one runs, the
    # form shows that run's settings; otherwise fresh defaults (the newest exported data version).
    # The Data field as the page filled it (None: it shows a running job's data, left alone).
    # Opening the tab again after an export in the Data tab moves an untouched field to the new
    # version; a path the user typed stays.
    auto_data = gr.State(d["data"])

    def page_form():
        running = monitor.page_form(jobs, settings)
        f = running or monitor.form_defaults(d["preset"], settings)
        return [f[k] for k in monitor.FORM_FIELDS] + [None if running else f["data"]]

    def on_tab(current, auto, persona_name):
        if auto is None or (current or "") != (auto or ""):
            return gr.skip(), gr.skip()
        newest = monitor.default_data(settings, persona_name or None)
        return (newest, newest) if newest != (current or "") else (gr.skip(), gr.skip())

    if isinstance(tab, gr.Tab):
        tab.select(on_tab, inputs=[data, auto_data, persona], outputs=[data, auto_data], api_name=False)
    Context.root_block.load(lambda: show(monitor.attach(jobs)), outputs=live)
    Context.root_block.load(page_form, outputs=form + [auto_data], api_name="train_form")
    Context.root_block.load(lambda *v: monitor.plan_report(as_form(*v), settings), inputs=form, outputs=[plan_md])
    Context.root_block.load(lambda: _runs_frame(monitor.runs_table(settings)), outputs=[runs], api_name="train_runs")
