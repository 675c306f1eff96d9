"""The shell's "Background jobs" panel: every job the studio started (training, generation,
evaluation, ...), running or finished, read from the job files (pipeline/jobs.py).

Jobs run outside the UI process and keep their state in `state/jobs/<id>/`, so reopening or
refreshing the studio shows them exactly as they are; the tabs re-attach to their own jobs,
and this panel lists all of them in one place. Admin only when access is restricted.
"""

from __future__ import annotations

import time

import gradio as gr
import pandas as pd

COLUMNS = ["started", "kind", "label", "state", "runtime", "command"]
REFRESH_S = 5.0


def _fmt_runtime(job) -> str:
    end = (job.exit or {}).get("ended_at") or (time.time() if job.state == "running" else None)
    if not end:
        return "-"
    s = max(0, int(end - job.started_at))
    return f"{s // 60}m{s % 60:02d}s"


def jobs_table(ctx, limit: int = 20) -> pd.DataFrame:
    rows = []
    for job in ctx.jobs.list()[:limit]:
        rows.append([time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.started_at)), job.kind,
                     job.label or job.id, job.state, _fmt_runtime(job), job.command])
    return pd.DataFrame(rows, columns=COLUMNS)


def create_jobs_panel(ctx, visible: bool = True) -> tuple[gr.Accordion, gr.Timer]:
    """The panel and its refresh timer (both hidden/inactive when `visible` is False)."""
    with gr.Accordion("Background jobs", open=False, visible=visible, elem_id="jobs-panel") as panel:
        gr.Markdown("Long work runs outside the studio and survives a page refresh or a studio restart; "
                    "this list is read from `state/jobs/`. Each tab shows and stops its own jobs.")
        table = gr.Dataframe(value=pd.DataFrame(columns=COLUMNS), interactive=False, wrap=True,
                             elem_id="jobs-table")
        refresh = gr.Button("Refresh", size="sm", elem_id="jobs-refresh")
        timer = gr.Timer(REFRESH_S, active=visible)
    for trigger in (refresh.click, timer.tick):
        trigger(lambda: jobs_table(ctx), outputs=[table], api_name="jobs_list" if trigger == refresh.click else False,
                show_progress="hidden", queue=False)
    from gradio.context import Context

    Context.root_block.load(lambda: jobs_table(ctx), outputs=[table], api_name=False, queue=False)
    return panel, timer
