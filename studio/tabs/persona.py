"""The Persona tab: read, edit and validate the spec; create a new persona.

Layout: a persona picker; two YAML editors (persona.yaml, scenarios.yaml) beside the rendered
PERSONA_SPEC.md; Validate / Save / Reload; a "New persona" panel (blank template, copy of
another, or drafted by the LLM from a paragraph). Every callback makes one call into
pipeline.persona_store; the version the editor was opened on lives in gr.State, so a save
over somebody else's newer save is refused (pipeline.persona_store.save_persona).
Initial values are empty on purpose: the page config is public, the content is loaded by a
(protected) load handler.
"""

from __future__ import annotations

import gradio as gr

from pipeline import persona_store as store
from pipeline.spec import SpecError, parse_persona_texts

from ..guard import info, toast_text, user_message

SOURCE_CHOICES = [("Blank template", "blank"), ("Copy of another persona", "copy"),
                  ("Drafted by the LLM from a description", "draft")]


def _view_outputs(view: store.PersonaView, settings):
    names = store.list_personas(settings)
    return (gr.Dropdown(choices=names, value=view.name), view.spec_text, view.scenarios_text, view.markdown,
            {"name": view.name, "hash": view.hash}, view.message or f"Opened {view.name}.",
            f"`python -m pipeline spec validate {view.folder}` · `python -m pipeline spec render {view.folder}`",
            gr.Dropdown(choices=names, value=view.name))


def create_tab(ctx) -> None:
    settings = ctx.settings
    llm_ready = settings.generator.configured
    loaded = gr.State({})  # {"name", "hash"}: the version the editors were opened on
    with gr.Row():
        picker = gr.Dropdown(label="Persona", choices=[], value=None, allow_custom_value=True, scale=3,
                             elem_id="persona-picker",
                             info=f"The persona folder under data/personas/ to view and edit. The other tabs use "
                                  f"the studio's persona, {settings.persona!r} (TASKMASTER_PERSONA).")
        reload_btn = gr.Button("Reload", scale=1, elem_id="persona-reload")
    status = gr.Markdown(elem_id="persona-status")
    with gr.Row():
        with gr.Column(scale=1):
            spec_box = gr.Code(label="persona.yaml (the five components, success criteria, deployment)",
                               language="yaml", lines=24, max_lines=40, interactive=True, elem_id="persona-spec",
                               visible=False)
            scen_box = gr.Code(label="scenarios.yaml (scenario matrix: category -> priority, target_count, scenarios)",
                               language="yaml", lines=10, max_lines=30, interactive=True, elem_id="persona-scenarios",
                               visible=False)
            with gr.Row():
                validate_btn = gr.Button("Validate", elem_id="persona-validate")
                save_btn = gr.Button("Save", variant="primary", elem_id="persona-save")
            gr.Markdown("*Save* validates both files first and lists every problem; nothing is written until they "
                        "are valid. The previous version is backed up under `state/persona_backups/`.")
            # Problems stay here, next to the editors and buttons that caused them (a toast fades).
            problems = gr.Markdown(elem_id="persona-problems")
            cli = gr.Markdown(elem_id="persona-cli")
        with gr.Column(scale=1):
            preview = gr.Markdown(label="PERSONA_SPEC.md preview", elem_id="persona-preview", max_height=900)
    with gr.Accordion("New persona", open=False, elem_id="persona-new"):
        with gr.Row():
            new_name = gr.Textbox(label="Name", placeholder="running-coach", elem_id="persona-new-name",
                                  info="Folder name: lowercase letters, digits, '-' or '_'.")
            source = gr.Radio(SOURCE_CHOICES, value="blank", label="Start from", elem_id="persona-new-source")
        copy_from = gr.Dropdown(label="Copy of", choices=[], allow_custom_value=True, elem_id="persona-copy-from",
                                info="Used with 'Copy of another persona'.")
        description = gr.Textbox(
            label="Describe the domain (for the LLM draft)", lines=4, elem_id="persona-description",
            placeholder="A running coach for beginners training for their first 10k: they ask for plans, "
                        "report missed runs and aches; the tone is calm and upbeat, never preachy.",
            info=("One paragraph: who the users are, what they ask, the tone. The LLM answers the seed's "
                  "'Plan Your Own Persona' questions and the draft is validated like a hand-written spec."
                  if llm_ready else
                  "LLM drafting is off: no generator endpoint (set OPENAI_API_KEY / OPENAI_BASE_URL). "
                  "The blank template and copies work offline."))
        create_btn = gr.Button("Create persona", variant="primary", elem_id="persona-create")

    outputs = [picker, spec_box, scen_box, preview, loaded, status, cli, copy_from]

    def on_open(name: str | None):
        name = name or settings.persona
        return _view_outputs(store.open_persona(settings, name), settings)

    def _problems(exc: SpecError) -> str:
        gr.Warning(toast_text(user_message(exc)))
        return "**Not valid yet; fix these and try again:**\n\n" + "\n".join(f"- {p}" for p in exc.problems)

    def on_validate(state: dict, spec_text: str, scen_text: str):
        name = (state or {}).get("name") or settings.persona
        try:
            p = parse_persona_texts(name, spec_text or "", scen_text or "")
        except SpecError as exc:
            return gr.skip(), _problems(exc)
        info(f"{name} is valid.")
        return (f"Valid: {p.spec.display_name}, {len(p.spec.traits)} traits, {len(p.spec.boundaries)} boundaries, "
                f"{len(p.scenarios.categories)} categories, target {p.scenarios.total_target} examples."), ""

    def on_save(state: dict, spec_text: str, scen_text: str):
        state = state or {}
        if not state.get("name"):
            raise gr.Error("Open a persona first (pick one in the Persona list).")
        try:
            view = store.save_persona(settings, state["name"], spec_text or "", scen_text or "",
                                      base_hash=state.get("hash"))
        except SpecError as exc:
            return (*(gr.skip() for _ in outputs), _problems(exc))
        info(view.message)
        return (*_view_outputs(view, settings), "")

    def on_create(name: str, src: str, original: str | None, desc: str):
        view = store.create_persona(settings, (name or "").strip(), src, copy_from=original, description=desc)
        info(view.message)
        return _view_outputs(view, settings)

    # The editors are (re)mounted after their text arrives: the browser's code editor records a
    # value set from outside as an undoable edit, so Ctrl+Z past your own edits would blank the
    # file (bug 4). Hidden (not rendered), filled, shown again: its undo history starts at the file.
    editors = [spec_box, scen_box]

    def hide():
        return gr.Code(visible=False), gr.Code(visible=False)

    def show():
        return gr.Code(visible=True), gr.Code(visible=True)

    gr.on([picker.input, reload_btn.click], hide, outputs=editors, api_name=False, queue=False) \
        .then(on_open, inputs=[picker], outputs=outputs, api_name="persona_open") \
        .then(show, outputs=editors, api_name=False, queue=False)
    # Fill the editors when the page opens (a protected handler: nothing leaks to anonymous visitors).
    _on_page_load(lambda: on_open(None), outputs).success(show, outputs=editors, api_name=False, queue=False)
    validate_btn.click(on_validate, inputs=[loaded, spec_box, scen_box], outputs=[status, problems],
                       api_name="persona_validate")
    save_btn.click(on_save, inputs=[loaded, spec_box, scen_box], outputs=outputs + [problems], api_name="persona_save")
    create_btn.click(on_create, inputs=[new_name, source, copy_from, description], outputs=outputs,
                     api_name="persona_create")


def _on_page_load(fn, outputs) -> None:
    """Register `fn` on the enclosing Blocks' page load (tabs receive ctx, not the Blocks)."""
    from gradio.context import Context

    return Context.root_block.load(fn, outputs=outputs, api_name="persona_load")
