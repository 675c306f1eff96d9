"""Draft a new persona with the LLM from a one-paragraph description of a domain.

This is the seed's "Try With AI, Prompt 1: Plan Your Own Persona" made concrete: the five
questions it asks (five components, training scenarios, critical boundary cases, evaluation
metrics, deployment considerations) become one structured request whose JSON answer maps
onto persona.yaml + scenarios.yaml:

    components        -> traits (with 0/1/2 rubric anchors), vocabulary, pattern, boundaries, examples
    scenarios         -> the scenario matrix (categories with priority and target counts)
    boundary cases    -> a `boundary_testing` category + the boundaries themselves
    evaluation        -> success_criteria (the seed's thresholds unless the domain needs others)
    deployment        -> deployment + a comment block of considerations at the top of persona.yaml

The draft is validated like a hand-written spec. When the model's answer does not validate,
it is asked once more with the list of problems; a second failure is a UserError that says
to try again or start from the blank template. The one OpenAI-compatible client
(pipeline/llm_client.py) does the call, the retries and the cache.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import yaml

from .errors import UserError
from .settings import Settings
from .spec import SpecError, check_persona_name, parse_persona_texts

MIN_DESCRIPTION_CHARS = 40

_STR = {"type": "string", "minLength": 1}
_STRS = {"type": "array", "items": _STR, "minItems": 1}
DRAFT_SCHEMA: dict = {
    "type": "object",
    "required": ["display_name", "purpose", "target_users", "identity", "system_prompt", "traits", "vocabulary",
                 "pattern", "boundaries", "examples", "scenario_matrix", "success_criteria", "deployment"],
    "properties": {
        "display_name": _STR,
        "purpose": _STR,
        "target_users": _STRS,
        "identity": _STR,
        "system_prompt": _STR,
        "traits": {"type": "array", "minItems": 3, "maxItems": 7, "items": {
            "type": "object", "required": ["id", "name", "description", "rubric_0", "rubric_1", "rubric_2"],
            "properties": {"id": _STR, "name": _STR, "description": _STR, "rubric_0": _STR, "rubric_1": _STR,
                           "rubric_2": _STR}}},
        "vocabulary": {"type": "object", "required": ["preferred", "avoided"],
                       "properties": {"preferred": _STRS, "avoided": _STRS, "generic_ai_phrases": {"type": "array"}}},
        "pattern": {"type": "array", "minItems": 2, "items": {
            "type": "object", "required": ["id", "description"], "properties": {"id": _STR, "description": _STR}}},
        "boundaries": {"type": "array", "minItems": 2, "items": {
            "type": "object", "required": ["id", "rule"],
            "properties": {"id": _STR, "rule": _STR, "description": {"type": "string"}}}},
        "examples": {"type": "array", "minItems": 2, "items": {
            "type": "object", "required": ["user", "assistant"], "properties": {"user": _STR, "assistant": _STR}}},
        "scenario_matrix": {"type": "array", "minItems": 3, "items": {
            "type": "object", "required": ["category", "priority", "target_count", "scenarios"],
            "properties": {"category": _STR, "priority": {"enum": ["high", "medium", "low"]},
                           "target_count": {"type": "integer", "minimum": 1}, "scenarios": _STRS}}},
        "success_criteria": {"type": "object", "properties": {
            "overall_min": {"type": "number", "minimum": 0, "maximum": 10},
            "trait_min": {"type": "number", "minimum": 0, "maximum": 2},
            "max_boundary_violations": {"type": "integer", "minimum": 0},
            "ab_win_rate_min": {"type": "number", "minimum": 0, "maximum": 1}}},
        "deployment": {"type": "object", "properties": {
            "base_model": {"type": "string"}, "max_adapter_mb": {"type": "number"},
            "max_latency_s": {"type": "number"}, "considerations": {"type": "array"}}},
    },
}

SYSTEM = ("You design persona specifications for fine-tuning small chat models (LoRA adapters). "
          "You answer with one JSON object only, following the requested fields exactly.")

# The seed's Prompt 1, with the domain filled in, plus the shape of the answer.
PROMPT = """I want to create a persona Digital FTE for {domain}

Help me create a complete persona specification:
1. What should the five components be for this domain? (traits, vocabulary, patterns, boundaries, examples)
2. What scenarios should training data cover?
3. What boundary cases are critical to handle?
4. What evaluation metrics make sense?
5. What deployment considerations exist?

Be specific: I want to start building tomorrow.

Answer as ONE JSON object with these fields:
- display_name, purpose (2-3 sentences), target_users (list), identity (one paragraph),
  system_prompt (what the model is told at serving time: role, tone, reply structure)
- traits: 3-7 items {{id (snake_case), name, description ("X without being Y"),
  rubric_0, rubric_1, rubric_2 (what a reply scoring 0, 1, 2 on this trait looks like)}}
- vocabulary: {{preferred: [phrases], avoided: [phrases], generic_ai_phrases: [phrases]}}
- pattern: the reply structure, 2-4 steps {{id (snake_case), description}}
- boundaries: what it NEVER does, 2-6 items {{id (snake_case), rule ("Never ..."), description}}
- examples: 2-4 {{user, assistant}} exchanges in the persona's voice
- scenario_matrix: 4-8 categories {{category (snake_case), priority (high|medium|low), target_count
  (examples to generate, 15-30), scenarios (3-7 short user situations)}}; include a
  "boundary_testing" category with the critical boundary cases (question 3)
- success_criteria: {{overall_min (out of 10; default 7.5), trait_min (out of 2; default 1.5),
  max_boundary_violations (default 0), ab_win_rate_min (0-1; default 0.7)}}
- deployment: {{base_model, max_adapter_mb, max_latency_s, considerations: [strings]}}
"""


@dataclass(frozen=True)
class PersonaDraft:
    spec_text: str
    scenarios_text: str
    model: str
    attempts: int


def _ident(s: str) -> str:
    import re

    out = re.sub(r"[^a-z0-9_]+", "_", s.strip().lower()).strip("_")
    return out if out and out[0].isalpha() else f"x_{out}" if out else "item"


def to_yaml_texts(name: str, d: dict, model: str = "") -> tuple[str, str]:
    """Map the model's JSON answer onto persona.yaml and scenarios.yaml texts."""
    crit = d.get("success_criteria") or {}
    dep = d.get("deployment") or {}
    spec = {
        "name": name,
        "display_name": d["display_name"],
        "version": 1,
        "purpose": d["purpose"],
        "target_users": list(d["target_users"]),
        "identity": d["identity"],
        "system_prompt": d["system_prompt"],
        "traits": [{"id": _ident(t["id"]), "name": t["name"], "description": t["description"],
                    "rubric": {0: t["rubric_0"], 1: t["rubric_1"], 2: t["rubric_2"]}} for t in d["traits"]],
        "vocabulary": {"preferred": list(d["vocabulary"]["preferred"]),
                       "avoided": list(d["vocabulary"]["avoided"]),
                       "generic_ai_phrases": [str(p) for p in d["vocabulary"].get("generic_ai_phrases") or []]},
        "pattern": [{"id": _ident(p["id"]), "description": p["description"]} for p in d["pattern"]],
        "boundaries": [{"id": _ident(b["id"]), "rule": b["rule"], "description": b.get("description", "")}
                       for b in d["boundaries"]],
        "examples": [{"user": e["user"], "assistant": e["assistant"]} for e in d["examples"]],
        "success_criteria": {
            "overall_min": float(crit.get("overall_min", 7.5)),
            "trait_min": float(crit.get("trait_min", 1.5)),
            "max_boundary_violations": int(crit.get("max_boundary_violations", 0)),
            "ab_win_rate_min": float(crit.get("ab_win_rate_min", 0.7)),
            "max_final_train_loss": 0.4,
        },
        "deployment": {"base_model": dep.get("base_model") or "llama-3.1-8b-instruct", "adapter_type": "lora",
                       "max_adapter_mb": float(dep.get("max_adapter_mb") or 50),
                       "max_latency_s": float(dep.get("max_latency_s") or 2.0)},
    }
    header = [f"# Drafted by {model or 'the LLM'} from a one-paragraph description (the seed's",
              "# 'Plan Your Own Persona' prompt). Review every field before generating data.", "#"]
    considerations = [str(c) for c in dep.get("considerations") or []]
    if considerations:
        header.append("# Deployment considerations:")
        header += [f"#  - {c}" for c in considerations]
    spec_text = "\n".join(header) + "\n" + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100)
    cats = {}
    for c in d["scenario_matrix"]:
        key = _ident(c["category"])
        cats[key] = {"priority": c["priority"], "target_count": int(c["target_count"]),
                     "scenarios": list(dict.fromkeys(c["scenarios"]))}
    scen_text = ("# Drafted scenario matrix: categories -> priority, target_count, scenarios.\n"
                 + yaml.safe_dump({"categories": cats}, sort_keys=False, allow_unicode=True, width=100))
    return spec_text, scen_text


def draft_persona(settings: Settings, name: str, description: str, *, client=None) -> PersonaDraft:
    """Ask the generator endpoint for a persona; return validated YAML texts."""
    check_persona_name(name)
    description = (description or "").strip()
    if len(description) < MIN_DESCRIPTION_CHARS:
        raise UserError(f"Describe the domain in a short paragraph (at least {MIN_DESCRIPTION_CHARS} characters): "
                        f"who the users are, what they ask for, and the tone you want.")
    if client is None:
        from .llm_client import LLMClient

        client = LLMClient.from_settings(settings, role="generator")  # UserError when no endpoint is set
    from .llm_client import ClientFailure

    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": PROMPT.format(domain=description)}]
    problems: list[str] = []
    for attempt in (1, 2):
        try:
            reply = client.chat(messages, json_schema=DRAFT_SCHEMA, temperature=0.4)
        except ClientFailure as f:
            raise UserError(f"The generator endpoint could not draft the persona ({f.reason}); check the endpoint "
                            f"in the header and try again, or start from the blank template.") from None
        try:
            spec_text, scen_text = to_yaml_texts(name, reply.data or {}, client.model)
            parse_persona_texts(name, spec_text, scen_text)
            return PersonaDraft(spec_text, scen_text, client.model, attempt)
        except SpecError as exc:
            problems = exc.problems
        except (KeyError, TypeError, ValueError) as exc:
            problems = [f"the answer's structure: {exc}"]
        messages = messages + [
            {"role": "assistant", "content": reply.text},
            {"role": "user", "content": "That draft does not validate:\n" + "\n".join(f"- {p}" for p in problems)
             + "\nSend the corrected JSON object only."}]
    raise UserError("The LLM's draft did not validate twice (" + "; ".join(problems[:3]) + "). Try again with a "
                    "more specific description, or start from the blank template.")


def example_answer(domain: str = "a running coach") -> dict:
    """A well-formed answer (used by tests and the offline test server's responder)."""
    return {
        "display_name": "Stride", "purpose": f"Stride is {domain} that keeps runners consistent.",
        "target_users": ["Beginner runners", "Busy professionals training for a 10k"],
        "identity": "A calm, upbeat running partner who knows training plans.",
        "system_prompt": "You are Stride, a running coach. Acknowledge, advise, then suggest the next run.",
        "traits": [{"id": t, "name": t.title(), "description": f"{t} without overdoing it",
                    "rubric_0": "absent", "rubric_1": "partly there", "rubric_2": "clearly there"}
                   for t in ("supportive", "practical", "safety_minded")],
        "vocabulary": {"preferred": ["Nice pace!", "Let's build on that"], "avoided": ["No pain no gain"],
                       "generic_ai_phrases": ["As an AI"]},
        "pattern": [{"id": "acknowledge", "description": "Recognize the run"},
                    {"id": "advise", "description": "Give the advice"}],
        "boundaries": [{"id": "no_medical", "rule": "Never diagnoses injuries", "description": "Refers to a doctor"},
                       {"id": "no_shaming", "rule": "Never shames a missed run"}],
        "examples": [{"user": "I skipped my run", "assistant": "Rest counts too. Let's plan tomorrow's easy 3k."},
                     {"user": "My knee hurts", "assistant": "Please get that checked by a doctor before running."}],
        "scenario_matrix": [
            {"category": "plans", "priority": "high", "target_count": 20, "scenarios": ["Ask for a 10k plan"]},
            {"category": "motivation", "priority": "medium", "target_count": 15, "scenarios": ["Missed a run"]},
            {"category": "boundary_testing", "priority": "high", "target_count": 15,
             "scenarios": ["Asks for injury diagnosis"]}],
        "success_criteria": {"overall_min": 7.5, "trait_min": 1.5, "max_boundary_violations": 0,
                             "ab_win_rate_min": 0.7},
        "deployment": {"base_model": "llama-3.1-8b-instruct", "max_adapter_mb": 50, "max_latency_s": 2,
                       "considerations": ["Add a medical disclaimer"]},
    }


def example_answer_text(domain: str = "a running coach") -> str:
    return json.dumps(example_answer(domain))
