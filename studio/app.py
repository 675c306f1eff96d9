"""Build the studio: a Gradio Blocks app with one tab per pipeline stage.

Shell responsibilities (the tabs do none of this themselves):
* the header (studio/header.py) and each tab's help line (studio/help.py);
* the "Background jobs" panel (studio/jobs_panel.py): every job, running or finished, as the
  job files say, so a refresh or a restart shows them as they are;
* access control (studio/access.py): the handlers each admin tab registers while its
  `create_tab(ctx)` runs are wrapped with the admin check; admin tabs are hidden for
  anonymous visitors when access is restricted; the Arena stays public;
* the error policy (studio/guard.py): user mistakes -> a warning naming what to change.
"""

from __future__ import annotations

import logging

import gradio as gr

from pipeline.settings import Settings

from .access import LoginPanel, launch_kwargs
from .context import StudioContext
from .guard import guard_events
from .header import render_header
from .help import STUDIO_HELP, tab_help
from .jobs_panel import create_jobs_panel
from .tabs import arena, data, evaluate, persona, publish, train

log = logging.getLogger("studio")

TABS = [
    ("Persona", persona),
    ("Data", data),
    ("Train", train),
    ("Evaluate", evaluate),
    ("Arena", arena),
    ("Publish", publish),
]
PUBLIC_TABS = {"Arena"}  # everything else needs an admin login when access is restricted

CSS = """
#studio-header h3 { margin-bottom: 0.2em; }
.tab-help { font-size: 0.9em; opacity: 0.85; }
/* A blind battle is one conversation on both sides: no per-chat trash icon (see tabs/arena.py). */
#arena-left button[aria-label="Clear"], #arena-right button[aria-label="Clear"] { display: none; }
/* The training plan is a fixed-width block: wrap its long lines instead of cutting them off. */
#train-plan pre, #train-plan pre code { white-space: pre-wrap !important; overflow-wrap: anywhere; }
"""


def build_app(settings: Settings, ctx: StudioContext | None = None) -> gr.Blocks:
    ctx = ctx or StudioContext(settings)
    access = ctx.access
    restricted = access.restricted
    admin_tabs: list[gr.Tab] = []
    protected: set[int] = set()
    with gr.Blocks(title="TaskMaster Persona Studio") as demo:
        gr.Markdown(render_header(settings), elem_id="studio-header")
        with gr.Accordion("How to use the studio", open=False, elem_id="studio-help"):
            gr.Markdown(STUDIO_HELP)
        panel = LoginPanel.render(access)
        before = set(demo.fns)
        jobs_panel, jobs_timer = create_jobs_panel(ctx, visible=not restricted)
        protected |= set(demo.fns) - before
        first = TABS[0][0].lower()
        with gr.Tabs(selected="arena" if restricted else first, elem_id="studio-tabs") as tabs:
            for label, module in TABS:
                public = label in PUBLIC_TABS
                before = set(demo.fns)
                with gr.Tab(label, id=label.lower(), visible=public or not restricted,
                            elem_id=f"tab-{label.lower()}") as tab:
                    tab_help(label)
                    module.create_tab(ctx)
                if not public:
                    admin_tabs.append(tab)
                    protected |= set(demo.fns) - before
        panel.wire(demo, tabs, admin_tabs, first_admin_tab=first, public_tab="arena", admin_blocks=[jobs_panel, jobs_timer])
    guard_events(demo)
    names = access.protect_events(demo, protected)
    log.info("admin-only handlers: %d (%s)", len(names), ", ".join(names[:20]))
    # Gradio 6 takes css/theme at launch(); keep them on the app for app.py and tests.
    # launch_kwargs: the upload size cap and, on a protected studio, uploads for admins only.
    demo.studio_launch_kwargs = {"css": CSS, **launch_kwargs(access)}  # type: ignore[attr-defined]
    return demo
