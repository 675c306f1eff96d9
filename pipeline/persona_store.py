"""Persona folders on disk: open, save edits safely, create new ones.

    view = open_persona(settings, "taskmaster")             # texts, version hash, rendered markdown
    view = save_persona(settings, "taskmaster", spec_text, scenarios_text, base_hash=view.hash)
    view = create_persona(settings, "coach", source="copy", copy_from="taskmaster")
    view = create_persona(settings, "coach", source="blank")
    view = create_persona(settings, "coach", source="draft", description="A running coach ...")

Saving never loses anything:
* both files are validated first (every problem listed, nothing written if any);
* `base_hash` is the version the editor was opened on: if the files changed on disk since
  (another tab, the CLI, a colleague), the save is refused instead of overwriting silently;
* the previous files are copied to `state/persona_backups/<name>/<UTC time>/` first, then the
  new ones are written atomically (temp file + rename) and PERSONA_SPEC.md is re-rendered.
Creating refuses an existing name.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .jsonl import atomic_write_text
from .settings import Settings
from .spec import (PERSONA_FILE, SCENARIOS_FILE, Persona, SpecError, load_persona,
                   render_markdown, check_persona_name, parse_persona_texts)

RENDERED_FILE = "PERSONA_SPEC.md"
SOURCES = ("blank", "copy", "draft")


@dataclass(frozen=True)
class PersonaView:
    """What an editor needs: the two YAML texts, their version hash and the rendered spec."""

    name: str
    folder: Path
    spec_text: str
    scenarios_text: str
    hash: str
    markdown: str
    message: str = ""

    @property
    def summary(self) -> str:
        return self.message


def list_personas(settings: Settings) -> list[str]:
    root = settings.personas_dir
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if d.is_dir() and (d / PERSONA_FILE).is_file())


def version_hash(spec_text: str, scenarios_text: str) -> str:
    return hashlib.sha256((spec_text + "\0" + scenarios_text).encode("utf-8")).hexdigest()[:16]


def _folder(settings: Settings, name: str) -> Path:
    check_persona_name(name)
    return settings.persona_dir(name)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def open_persona(settings: Settings, name: str, message: str = "") -> PersonaView:
    """Read a persona folder. The markdown preview is rendered when the files are valid;
    otherwise it lists the problems (the texts are still returned, to be fixed in the editor)."""
    folder = _folder(settings, name)
    if not (folder / PERSONA_FILE).is_file():
        known = ", ".join(list_personas(settings)) or "none"
        raise UserError(f"No persona named {name!r} (no {folder / PERSONA_FILE}); known personas: {known}.")
    spec_text, scen_text = _read(folder / PERSONA_FILE), _read(folder / SCENARIOS_FILE)
    try:
        markdown = render_markdown(load_persona(folder))
    except SpecError as exc:
        markdown = "**This persona has problems; fix them in the editor and save:**\n\n" + "\n".join(
            f"- {p}" for p in exc.problems)
    return PersonaView(name, folder, spec_text, scen_text, version_hash(spec_text, scen_text), markdown, message)


def backup(settings: Settings, folder: Path) -> Path | None:
    """Copy the current files of `folder` to state/persona_backups/<name>/<UTC time>/."""
    files = [folder / f for f in (PERSONA_FILE, SCENARIOS_FILE, RENDERED_FILE) if (folder / f).is_file()]
    if not files:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = settings.state_dir / "persona_backups" / folder.name / stamp
    n = 1
    while dest.exists():  # two saves within a second
        n += 1
        dest = dest.with_name(f"{stamp}-{n}")
    dest.mkdir(parents=True)
    for f in files:
        shutil.copy2(f, dest / f.name)
    return dest


def save_persona(settings: Settings, name: str, spec_text: str, scenarios_text: str,
                 base_hash: str | None = None) -> PersonaView:
    """Validate, refuse a stale save, back up, write atomically, re-render PERSONA_SPEC.md."""
    folder = _folder(settings, name)
    if not (folder / PERSONA_FILE).is_file():
        raise UserError(f"No persona named {name!r} to save into; create it with 'New persona' first.")
    # The browser's code editor drops a file's final newline: put it back, so an untouched
    # file compares equal and is not rewritten (git would show it modified).
    spec_text, scenarios_text = _with_final_newline(spec_text), _with_final_newline(scenarios_text)
    persona = parse_persona_texts(name, spec_text, scenarios_text)
    current = version_hash(_read(folder / PERSONA_FILE), _read(folder / SCENARIOS_FILE))
    if base_hash and base_hash != current:
        raise UserError(f"{name}'s files changed on disk since you opened them (someone else saved, or the CLI "
                        f"did). Nothing was written: copy your edits, press 'Reload', and apply them again.")
    if version_hash(spec_text, scenarios_text) == current:
        return open_persona(settings, name, message="No changes to save.")
    saved_to = backup(settings, folder)
    for file, text in ((PERSONA_FILE, spec_text), (SCENARIOS_FILE, scenarios_text)):
        if _read(folder / file) != text:  # an unchanged file keeps its bytes and its mtime
            atomic_write_text(folder / file, text)
    persona = Persona(folder=folder, spec=persona.spec, scenarios=persona.scenarios)
    atomic_write_text(folder / RENDERED_FILE, render_markdown(persona))
    where = f"; the previous version is in {saved_to}" if saved_to else ""
    return open_persona(settings, name, message=f"Saved {name} (PERSONA_SPEC.md re-rendered{where}).")


def _with_final_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


# ---- new personas -------------------------------------------------------------------------

BLANK_SPEC = """\
# A new persona. Fill in every field, then Save (the studio validates it first).
# The five components: traits (each with 0/1/2 rubric anchors), vocabulary, pattern,
# boundaries, examples; then success criteria and the deployment target.
name: {name}
display_name: {display}
version: 1
purpose: >
  What this persona is for, in two or three sentences.
target_users:
  - Who talks to it
identity: >
  Its personality in one paragraph: who it is to the user.
system_prompt: >
  You are {display}. Describe the role, the tone and the structure of a good reply.
traits:
  - id: helpful
    name: Helpful
    description: Gets the user what they came for
    rubric:
      0: Does not address the request
      1: Addresses it partly or vaguely
      2: Addresses it fully and specifically
vocabulary:
  preferred:
    - A phrase it likes to use
  avoided:
    - A phrase it never uses
  generic_ai_phrases:
    - As an AI
pattern:
  - id: acknowledge
    description: Recognize the user's message
  - id: deliver
    description: Give the answer
  - id: propel
    description: Suggest the next step
boundaries:
  - id: condescending
    rule: Never condescending
    description: No talking down to the user
examples:
  - user: An example message
    assistant: An example reply in the persona's voice
success_criteria:
  overall_min: 7.5
  trait_min: 1.5
  max_boundary_violations: 0
  ab_win_rate_min: 0.70
  max_final_train_loss: 0.4
deployment:
  base_model: llama-3.1-8b-instruct
  adapter_type: lora
  max_adapter_mb: 50
  max_latency_s: 2.0
"""

BLANK_SCENARIOS = """\
# The scenario matrix: categories -> priority, target_count, scenarios (each scenario in one category).
categories:
  core_requests:
    priority: high
    target_count: 30
    scenarios:
      - A typical request
  edge_cases:
    priority: high
    target_count: 20
    scenarios:
      - The user is frustrated
"""


def _display(name: str) -> str:
    return " ".join(w.capitalize() for w in re.split(r"[-_]", name) if w)


def _renamed(spec_text: str, name: str) -> str:
    """The copied YAML with its `name:` replaced (comments and layout kept)."""
    new, n = re.subn(r"(?m)^name:.*$", f"name: {name}", spec_text, count=1)
    return new if n else f"name: {name}\n{spec_text}"


def create_persona(settings: Settings, name: str, source: str = "blank", *, copy_from: str | None = None,
                   description: str = "", client=None) -> PersonaView:
    """Create `data/personas/<name>/` from the blank template, a copy of `copy_from`, or an LLM
    draft of `description` (pipeline/persona_draft.py). Refuses an existing name."""
    folder = _folder(settings, name)
    if source not in SOURCES:
        raise UserError(f"Unknown source {source!r}: choose one of {', '.join(SOURCES)}.")
    if folder.exists():
        raise UserError(f"A persona named {name!r} already exists: choose another name, or open it to edit it.")
    if source == "blank":
        spec_text = BLANK_SPEC.format(name=name, display=_display(name))
        scen_text = BLANK_SCENARIOS
        how = "from the blank template: fill in every field and save"
    elif source == "copy":
        if not copy_from:
            raise UserError("Choose the persona to copy ('Copy of' list).")
        original = open_persona(settings, copy_from)
        spec_text = _renamed(original.spec_text, name)
        scen_text = original.scenarios_text
        how = f"as a copy of {copy_from}"
    else:
        from .persona_draft import draft_persona

        draft = draft_persona(settings, name, description, client=client)
        spec_text, scen_text = draft.spec_text, draft.scenarios_text
        how = f"drafted by {draft.model} from your description: review every field before using it"
    parse_persona_texts(name, spec_text, scen_text)  # a template or draft that does not validate is a bug
    tmp = folder.with_name(f".{name}.creating")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    atomic_write_text(tmp / PERSONA_FILE, spec_text)
    atomic_write_text(tmp / SCENARIOS_FILE, scen_text)
    try:
        tmp.rename(folder)  # the folder appears whole or not at all
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"A persona named {name!r} was created meanwhile: choose another name.") from None
    atomic_write_text(folder / RENDERED_FILE, render_markdown(load_persona(folder)))
    return open_persona(settings, name, message=f"Created {name} {how}.")
