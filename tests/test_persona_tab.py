"""The Persona tab and what it calls: pipeline.persona_store and pipeline.persona_draft.

Store: validate before writing, never overwrite a newer save, back up the previous version,
refuse an existing name. Draft: the seed's "Plan Your Own Persona" through a real
OpenAI-compatible HTTP server (the project's test server), one repair round. Tab: the real
studio through gradio_client, with the LLM endpoint pointing at that server.
"""

from __future__ import annotations

import json
import shutil

import pytest
from gradio_client import Client

from pipeline import persona_store as store
from pipeline.errors import UserError
from pipeline.persona_draft import draft_persona, example_answer, example_answer_text
from pipeline.settings import Endpoint, Settings
from pipeline.spec import SpecError, load_persona
from pipeline.testing.openai_server import OpenAIServer

from .conftest import REPO, launched


@pytest.fixture()
def root_settings(tmp_path) -> Settings:
    """Settings whose data/ is a copy of the shipped one (the tests write personas)."""
    shutil.copytree(REPO / "data", tmp_path / "root" / "data")
    return Settings.from_env(env={}, root=tmp_path / "root", work_dir=tmp_path / "work", cache_dir=REPO / ".cache")


def _with_llm(settings: Settings, server: OpenAIServer) -> Settings:
    from dataclasses import replace

    return replace(settings, generator=Endpoint(server.base_url, "test-model", "test-key"),
                   cache_dir=settings.work_dir / "cache")


# ---- store --------------------------------------------------------------------------------

def test_save_validates_first_and_writes_nothing_on_error(root_settings):
    view = store.open_persona(root_settings, "taskmaster")
    folder = view.folder
    before = (folder / "persona.yaml").read_text()
    broken = view.spec_text.replace("display_name: TaskMaster", "display_name: TaskMaster\ntrait_typo: 1") \
        .replace("overall_min: 7.5", "overall_min: 75")
    with pytest.raises(SpecError) as exc:
        store.save_persona(root_settings, "taskmaster", broken, "categories: {}", base_hash=view.hash)
    text = "\n".join(exc.value.problems)
    # Every problem of both files at once, each naming the field.
    assert "trait_typo: unknown field" in text and "success_criteria.overall_min" in text and "categories" in text
    assert (folder / "persona.yaml").read_text() == before
    assert not (root_settings.state_dir / "persona_backups").exists()


def test_save_backs_up_rerenders_and_refuses_a_stale_version(root_settings):
    view = store.open_persona(root_settings, "taskmaster")
    folder = view.folder
    old_text = view.spec_text
    edited = old_text.replace("version: 1", "version: 2")
    saved = store.save_persona(root_settings, "taskmaster", edited, view.scenarios_text, base_hash=view.hash)
    assert (folder / "persona.yaml").read_text() == edited
    assert saved.hash != view.hash and "previous version is in" in saved.message
    backups = list((root_settings.state_dir / "persona_backups" / "taskmaster").iterdir())
    assert len(backups) == 1 and (backups[0] / "persona.yaml").read_text() == old_text
    assert load_persona(folder).spec.version == 2
    # An editor still holding the first version must not overwrite the newer save.
    with pytest.raises(UserError, match="changed on disk"):
        store.save_persona(root_settings, "taskmaster", old_text.replace("version: 1", "version: 3"),
                           view.scenarios_text, base_hash=view.hash)
    assert load_persona(folder).spec.version == 2
    # Renaming through the editor is refused (it would orphan the folder).
    with pytest.raises(SpecError, match="make them match"):
        store.save_persona(root_settings, "taskmaster", edited.replace("name: taskmaster", "name: other"),
                           view.scenarios_text, base_hash=saved.hash)


def test_create_from_blank_and_copy_refuses_existing_and_bad_names(root_settings):
    blank = store.create_persona(root_settings, "running-coach", "blank")
    p = load_persona(blank.folder)
    assert p.spec.name == "running-coach" and (blank.folder / "PERSONA_SPEC.md").is_file()
    copy = store.create_persona(root_settings, "taskmaster-v2", "copy", copy_from="taskmaster")
    assert load_persona(copy.folder).spec.traits == load_persona(root_settings.persona_dir()).spec.traits
    assert "# TaskMaster: the seed capstone" in copy.spec_text, "comments survive the copy"
    with pytest.raises(UserError, match="already exists"):
        store.create_persona(root_settings, "taskmaster", "blank")
    with pytest.raises(UserError, match="lowercase letters"):
        store.create_persona(root_settings, "../evil", "blank")
    with pytest.raises(UserError, match="Choose the persona to copy"):
        store.create_persona(root_settings, "another", "copy")
    assert store.list_personas(root_settings) == ["running-coach", "taskmaster", "taskmaster-v2"]


# ---- LLM draft ----------------------------------------------------------------------------

def test_draft_asks_the_seeds_prompt_and_repairs_once(root_settings):
    answers = [json.dumps({"display_name": "Stride"}), example_answer_text()]  # first answer is incomplete

    def responder(body):
        return answers.pop(0) if answers else example_answer_text()

    with OpenAIServer(responder=responder) as srv:
        settings = _with_llm(root_settings, srv)
        view = store.create_persona(settings, "stride", "draft",
                                    description="A running coach for beginners training for a first 10k race.")
        prompt = srv.requests[0]["body"]["messages"][1]["content"]
    assert "I want to create a persona Digital FTE for A running coach" in prompt
    assert "What boundary cases are critical to handle?" in prompt
    persona = load_persona(view.folder)
    assert [t.id for t in persona.spec.traits] == ["supportive", "practical", "safety_minded"]
    assert "boundary_testing" in persona.scenarios.categories
    assert "Add a medical disclaimer" in view.spec_text  # deployment considerations kept as comments
    assert "drafted by test-model" in view.message


def test_draft_without_endpoint_or_with_a_short_description_says_what_to_do(root_settings):
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        draft_persona(root_settings, "stride", "A running coach for beginners training for a first 10k race.")
    with pytest.raises(UserError, match="at least 40 characters"):
        draft_persona(root_settings, "stride", "runner")
    # Schema-valid (the client checks that itself) but not a valid spec: duplicate trait ids.
    good = example_answer()
    bad = dict(good, traits=[good["traits"][0]] * 3)

    with OpenAIServer(responder=lambda body: json.dumps(bad)) as srv:
        with pytest.raises(UserError, match="did not validate twice"):
            draft_persona(_with_llm(root_settings, srv), "stride",
                          "A running coach for beginners training for a first 10k race.")
    assert not root_settings.persona_dir("stride").exists()


# ---- the tab through the real app -----------------------------------------------------------

def test_persona_tab_through_gradio_client(root_settings):
    from studio.app import build_app

    with OpenAIServer(responder=lambda body: example_answer_text()) as srv:
        settings = _with_llm(root_settings, srv)
        with launched(build_app(settings)) as url:
            client = Client(url, verbose=False)
            # gr.State is not part of the API: the session (this client) keeps the opened version.
            picker, spec_text, scen_text, preview, status, cli, _ = client.predict(api_name="/persona_load")
            assert "name: taskmaster" in spec_text and "# TaskMaster Persona Specification" in preview
            assert "spec validate" in cli
            folder = settings.persona_dir("taskmaster")
            before = (folder / "persona.yaml").read_text()
            # An invalid save: a warning, the problems listed next to the buttons, nothing written.
            out = client.predict(spec_text.replace("traits:", "trait:"), scen_text, api_name="/persona_save")
            assert (folder / "persona.yaml").read_text() == before
            assert "Not valid yet" in out[-1] and "trait" in out[-1]
            # A valid save.
            out = client.predict(spec_text.replace("version: 1", "version: 5"), scen_text, api_name="/persona_save")
            assert "Saved taskmaster" in out[4] and load_persona(folder).spec.version == 5
            # Validate reports the counts.
            status_md, problems_md = client.predict(out[1], out[2], api_name="/persona_validate")
            assert "7 categories" in status_md and problems_md == ""
            # New personas: a copy, and an LLM draft.
            out = client.predict("coach-copy", "copy", "taskmaster", "", api_name="/persona_create")
            assert out[0]["value"] == "coach-copy" and "as a copy of taskmaster" in out[4]
            out = client.predict("stride", "draft", None,
                                 "A running coach for beginners training for a first 10k race.",
                                 api_name="/persona_create")
            assert "name: stride" in out[1] and load_persona(settings.persona_dir("stride")).spec.display_name == "Stride"
