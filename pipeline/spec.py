"""Persona specification: typed model, loader that reports every problem at once, renderer.

A persona is a folder (`data/personas/<name>/`) with:
  persona.yaml    the five components of the seed + success criteria + deployment target
  scenarios.yaml  the scenario matrix (categories -> priority, target_count, scenarios)
`PERSONA_SPEC.md` is rendered from the YAML (`python -m pipeline spec render`), never edited.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PERSONA_FILE = "persona.yaml"
SCENARIOS_FILE = "scenarios.yaml"
# Limits on what a spec file may be: the shipped persona.yaml is ~8 KB; the system prompt goes
# into every training row and every request (8,000 characters is ~2,000 tokens).
MAX_SPEC_BYTES = 256 * 1024
MAX_SYSTEM_PROMPT_CHARS = 8_000
MAX_DEPTH = 16  # the deepest shipped structure is 4 levels; PyYAML itself recurses per level
# Characters no spec text needs and that can rewrite a terminal or reorder what is shown:
# C0/C1 controls (except tab and line breaks) and Unicode bidi embeddings/overrides/isolates/marks.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# The judge's violation types: the spec's boundaries plus generic AI phrasing (a vocabulary rule).
GENERIC_AI = "generic_ai"


class _Strict(BaseModel):
    # Unknown fields are errors: a typo like `trait:` must not be silently ignored.
    model_config = ConfigDict(extra="forbid")


class Trait(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    description: str
    # 0/1/2 anchors the judges score against (the seed's trait scale is 0-2 each, 5 traits -> 0-10).
    rubric: dict[Literal[0, 1, 2], str]

    @field_validator("rubric")
    @classmethod
    def _all_anchors(cls, v: dict) -> dict:
        missing = [k for k in (0, 1, 2) if not str(v.get(k, "")).strip()]
        if missing:
            raise ValueError(f"rubric needs an anchor for scores 0, 1 and 2; missing {missing}")
        return v


class Vocabulary(_Strict):
    preferred: list[str] = Field(min_length=1)
    avoided: list[str] = Field(min_length=1)
    generic_ai_phrases: list[str] = Field(default_factory=list)
    # e.g. "!!", "?!": counted as excessive punctuation.
    excessive_punctuation: list[str] = Field(default_factory=lambda: ["!!", "?!", "!?", "??"])


class PatternStep(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str


class Boundary(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    rule: str
    description: str = ""


class Example(_Strict):
    user: str
    assistant: str
    note: str = ""


class SuccessCriteria(_Strict):
    overall_min: float = Field(7.5, ge=0, le=10)
    trait_min: float = Field(1.5, ge=0, le=2)
    max_boundary_violations: int = Field(0, ge=0)
    ab_win_rate_min: float = Field(0.70, ge=0, le=1)
    max_final_train_loss: float = Field(0.4, gt=0)


class Deployment(_Strict):
    base_model: str
    adapter_type: Literal["lora"] = "lora"
    max_adapter_mb: float = Field(50, gt=0)
    max_latency_s: float = Field(2.0, gt=0)


class PersonaSpec(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    display_name: str
    version: int = 1
    purpose: str
    target_users: list[str] = Field(min_length=1)
    identity: str
    system_prompt: str = Field(max_length=MAX_SYSTEM_PROMPT_CHARS)
    traits: list[Trait] = Field(min_length=1)
    vocabulary: Vocabulary
    pattern: list[PatternStep] = Field(min_length=1)
    boundaries: list[Boundary] = Field(min_length=1)
    examples: list[Example] = Field(default_factory=list)
    success_criteria: SuccessCriteria = Field(default_factory=SuccessCriteria)
    deployment: Deployment

    @model_validator(mode="after")
    def _unique_ids(self) -> "PersonaSpec":
        for label, items in (("traits", self.traits), ("pattern", self.pattern), ("boundaries", self.boundaries)):
            ids = [i.id for i in items]
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"{label}: duplicate id(s) {dup}")
        return self

    @property
    def trait_ids(self) -> list[str]:
        return [t.id for t in self.traits]

    @property
    def violation_types(self) -> list[str]:
        """Boundary ids plus `generic_ai`: the labels judges and calibration sets use."""
        return [b.id for b in self.boundaries] + [GENERIC_AI]

    @property
    def max_overall(self) -> int:
        return 2 * len(self.traits)


class Category(_Strict):
    priority: Literal["high", "medium", "low"] = "medium"
    target_count: int = Field(ge=0)
    scenarios: list[str] = Field(min_length=1)


class ScenarioMatrix(_Strict):
    categories: dict[str, Category] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_scenarios(self) -> "ScenarioMatrix":
        seen: dict[str, str] = {}
        for cat, c in self.categories.items():
            for s in c.scenarios:
                if s in seen:
                    raise ValueError(f"scenario {s!r} appears in both {seen[s]!r} and {cat!r}")
                seen[s] = cat
        return self

    @property
    def total_target(self) -> int:
        return sum(c.target_count for c in self.categories.values())

    def category_of(self, scenario: str) -> str | None:
        for cat, c in self.categories.items():
            if scenario in c.scenarios:
                return cat
        return None

    def all_scenarios(self) -> list[tuple[str, str]]:
        return [(cat, s) for cat, c in self.categories.items() for s in c.scenarios]


class Persona(BaseModel):
    """A loaded persona folder."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    folder: Path
    spec: PersonaSpec
    scenarios: ScenarioMatrix


class SpecError(ValueError):
    """Every problem found in a persona folder, each as 'file: field: message'."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _pydantic_problems(file: Path, err: ValidationError, raw: object) -> list[str]:
    problems = []
    for e in err.errors():
        loc = e["loc"]
        where = _field_path(loc)
        if e["type"] == "extra_forbidden":
            problems.append(f"{file}: {where}: unknown field (remove it or fix its spelling)")
        elif e["type"] == "missing":
            problems.append(f"{file}: {where}: required field is missing")
        else:
            problems.append(f"{file}: {where}: {e['msg']}")
    return problems


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (PyYAML keeps the last one
    silently: a second `display_name:` further down would replace the first)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: PyYAML reports it below
                continue
            if first != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (line {first} and line "
                    f"{key_node.start_mark.line + 1}); keep one", key_node.start_mark)
        return super().construct_mapping(node, deep)


def _decode(data: bytes, source) -> str:
    """UTF-8 text (a BOM from a Windows editor is fine); anything else names the line to fix."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SpecError([f"{source}: the file is UTF-16 text; save it as UTF-8"])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise SpecError([f"{source}: line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
                         f"save the file as UTF-8"]) from None


def _text_problems(raw: object, source) -> list[str]:
    """Control and bidi characters anywhere in the spec's text, and nesting beyond MAX_DEPTH."""
    problems, stack = [], [(raw, "", 0)]
    while stack:
        node, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            problems.append(f"{source}: {where or '(top level)'}: nested deeper than {MAX_DEPTH} levels; "
                            f"a persona spec is at most a few levels deep")
            continue
        if isinstance(node, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k), depth + 1) for k, v in node.items())
            keys = [k for k in node if isinstance(k, str)]
            stack.extend((k, f"{where}.{k!r} (a key)" if where else f"{k!r} (a key)", depth + 1) for k in keys)
        elif isinstance(node, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(node))
        elif isinstance(node, str):
            for pattern, kind in ((_CONTROL, "a control character"), (_BIDI, "a bidi control character")):
                m = pattern.search(node)
                if m:
                    problems.append(f"{source}: {where}: contains {kind} (U+{ord(m.group()):04X}); remove it")
    return sorted(problems)[:20]


def _too_big(size: int, source) -> str:
    return (f"{source}: the file is {size / 1e6:.1f} MB; a persona spec is at most {MAX_SPEC_BYTES // 1024} KB "
            f"(system_prompt at most {MAX_SYSTEM_PROMPT_CHARS:,} characters)")


def _yaml_from_text(text: str, source) -> object:
    """Parse spec YAML strictly; raise SpecError naming `source` and what to change."""
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError([_too_big(len(text), source)])
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise SpecError([f"{source}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}"]) from None
    except RecursionError:
        raise SpecError([f"{source}: nested too deeply to read; a persona spec is at most {MAX_DEPTH} levels deep"]) from None
    if raw is None:
        raise SpecError([f"{source}: the file is empty (or only comments); start from the shipped "
                         f"data/personas/taskmaster/{Path(str(source)).name}"])
    problems = _text_problems(raw, source)
    if problems:
        raise SpecError(problems)
    return raw


def _read_yaml(path: Path, problems: list[str]) -> object | None:
    if not path.is_file():
        problems.append(f"{path}: file not found")
        return None
    try:
        data = path.read_bytes()
        if len(data) > MAX_SPEC_BYTES:  # refuse before decoding or parsing megabytes
            raise SpecError([_too_big(len(data), path)])
        return _yaml_from_text(_decode(data, path), path)
    except SpecError as err:
        problems.extend(err.problems)
        return None


def _parse_yaml_model(text: str, model: type[BaseModel], source: str, shape: str):
    """Validate YAML text against a model; every problem as 'source: field: message'."""
    raw = _yaml_from_text(text, source)
    if not isinstance(raw, dict):
        raise SpecError([f"{source}: expected {shape}"])
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise SpecError(_pydantic_problems(Path(source), err, raw)) from None


def parse_spec(text: str, source: str = PERSONA_FILE) -> PersonaSpec:
    """Validate persona YAML text (the studio's editor saves through this)."""
    return _parse_yaml_model(text, PersonaSpec, source, "a mapping of fields at the top level")


def parse_scenarios(text: str, source: str = SCENARIOS_FILE) -> ScenarioMatrix:
    """Validate scenario-matrix YAML text (the studio's editor saves through this)."""
    return _parse_yaml_model(text, ScenarioMatrix, source, "a mapping with a `categories` field")


def load_persona(folder: str | Path) -> Persona:
    """Load and validate a persona folder; raise `SpecError` listing every problem."""
    folder = Path(folder)
    problems: list[str] = []
    if not folder.is_dir():
        raise SpecError([f"{folder}: persona folder not found"])
    spec = scen = None
    raw_spec = _read_yaml(folder / PERSONA_FILE, problems)
    raw_scen = _read_yaml(folder / SCENARIOS_FILE, problems)
    if raw_spec is not None:
        if not isinstance(raw_spec, dict):
            problems.append(f"{folder / PERSONA_FILE}: expected a mapping of fields at the top level")
        else:
            try:
                spec = PersonaSpec.model_validate(raw_spec)
            except ValidationError as err:
                problems.extend(_pydantic_problems(folder / PERSONA_FILE, err, raw_spec))
    if raw_scen is not None:
        if not isinstance(raw_scen, dict):
            problems.append(f"{folder / SCENARIOS_FILE}: expected a mapping with a `categories` field")
        else:
            try:
                scen = ScenarioMatrix.model_validate(raw_scen)
            except ValidationError as err:
                problems.extend(_pydantic_problems(folder / SCENARIOS_FILE, err, raw_scen))
    if spec is not None and spec.name != folder.name:
        problems.append(f"{folder / PERSONA_FILE}: name: is {spec.name!r} but the folder is {folder.name!r}; make them match")
    if problems:
        raise SpecError(problems)
    return Persona(folder=folder, spec=spec, scenarios=scen)


def render_markdown(persona: Persona) -> str:
    """PERSONA_SPEC.md: the human-readable spec, generated from the YAML."""
    s, m = persona.spec, persona.scenarios
    out = [f"# {s.display_name} Persona Specification", "",
           f"<!-- Generated from {PERSONA_FILE} by `python -m pipeline spec render`; do not edit by hand. -->", "",
           "## Purpose", s.purpose.strip(), "", "## Target Users"]
    out += [f"- {u}" for u in s.target_users]
    out += ["", "## Core Identity", "", "### Personality Profile", s.identity.strip(), "",
            "### System Prompt", "", "```", s.system_prompt.strip(), "```", "", "### Five Components", "",
            "1. **TRAITS** (What it IS)", ""]
    for t in s.traits:
        out.append(f"- **{t.name}** (`{t.id}`): {t.description}")
        for score in (0, 1, 2):
            out.append(f"  - {score}: {t.rubric[score]}")
    out += ["", "2. **VOCABULARY** (How it SPEAKS)", "",
            "- Preferred: " + ", ".join(f'"{p}"' for p in s.vocabulary.preferred),
            "- Avoided: " + ", ".join(f'"{p}"' for p in s.vocabulary.avoided)]
    if s.vocabulary.generic_ai_phrases:
        out.append("- Generic AI phrases (avoided): " + ", ".join(f'"{p}"' for p in s.vocabulary.generic_ai_phrases))
    out.append("- Excessive punctuation (avoided): " + ", ".join(f"`{p}`" for p in s.vocabulary.excessive_punctuation))
    out += ["", "3. **PATTERNS** (How it STRUCTURES responses)", ""]
    out += [f"- {p.id.upper()}: {p.description}" for p in s.pattern]
    out += ["", "4. **BOUNDARIES** (What it NEVER does)", ""]
    out += [f"- {b.rule} (`{b.id}`)" + (f": {b.description}" if b.description else "") for b in s.boundaries]
    out += ["", "5. **EXAMPLES** (What it LOOKS like)", ""]
    for ex in s.examples:
        out += [f"> **User:** {ex.user}", ">", f"> **{s.display_name}:** {ex.assistant}", ""]
    out += ["See the training data for more concrete examples.", "", "## Success Criteria"]
    c = s.success_criteria
    out += [f"- Overall persona score: ≥{c.overall_min}/{s.max_overall}",
            f"- All trait scores: ≥{c.trait_min}/2",
            f"- Boundary violations: at most {c.max_boundary_violations}",
            f"- A/B win rate vs base model: ≥{c.ab_win_rate_min:.0%}",
            f"- Final training loss: <{c.max_final_train_loss}", "",
            "## Deployment Target",
            f"- {s.deployment.adapter_type.upper()} adapter compatible with `{s.deployment.base_model}`",
            f"- Maximum {s.deployment.max_adapter_mb:g}MB adapter size",
            f"- Inference latency: <{s.deployment.max_latency_s:g}s for typical response", "",
            "## Scenario Matrix", "", "| Category | Priority | Target | Scenarios |", "|---|---|---|---|"]
    for cat, cc in m.categories.items():
        out.append(f"| {cat} | {cc.priority} | {cc.target_count} | {'; '.join(cc.scenarios)} |")
    out += ["", f"Target dataset size: {m.total_target} examples", ""]
    return "\n".join(out)


# ---- a persona's name and its two texts (the Persona tab, the store and the drafter check these) ----

PERSONA_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{1,39}$")


def check_persona_name(name: str) -> str:
    if not PERSONA_NAME_RE.match(name or ""):
        from .errors import UserError

        raise UserError(f"Persona name {name!r} is not allowed: use 2-40 lowercase letters, digits, '-' or '_', "
                        f"starting with a letter (e.g. 'running-coach').")
    return name


def parse_persona_texts(name: str, spec_text: str, scenarios_text: str) -> Persona:
    """Validate persona.yaml and scenarios.yaml texts together; raise SpecError listing every
    problem of both."""
    problems: list[str] = []
    spec = scen = None
    try:
        spec = parse_spec(spec_text, PERSONA_FILE)
    except SpecError as exc:
        problems += exc.problems
    try:
        scen = parse_scenarios(scenarios_text)
    except SpecError as exc:
        problems += exc.problems
    if spec is not None and spec.name != name:
        problems.append(f"{PERSONA_FILE}: name: is {spec.name!r} but this persona is {name!r}; make them match "
                        f"(to make a new persona, use 'New persona' instead)")
    if problems:
        raise SpecError(problems)
    return Persona(folder=Path(name), spec=spec, scenarios=scen)
