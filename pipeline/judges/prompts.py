"""Judge prompts are data files (pipeline/prompts/judge_*.txt, pairwise_*.txt); this module
fills them from the persona spec. A prompt's version is its file name plus the first 8 hex
digits of the sha256 of both files, so results record exactly which wording scored them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..spec import PersonaSpec

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


def load_pair(stem: str) -> tuple[str, str, str]:
    """(system template, user template, version) for pipeline/prompts/<stem>_{system,user}.txt."""
    sys_t = (PROMPTS_DIR / f"{stem}_system.txt").read_text(encoding="utf-8")
    usr_t = (PROMPTS_DIR / f"{stem}_user.txt").read_text(encoding="utf-8")
    digest = hashlib.sha256((sys_t + "\0" + usr_t).encode("utf-8")).hexdigest()[:8]
    return sys_t, usr_t, f"{stem}@{digest}"


def spec_fields(spec: PersonaSpec) -> dict:
    traits = "\n".join(f"- {t.id} ({t.description}): 0 = {t.rubric[0]}; 1 = {t.rubric[1]}; 2 = {t.rubric[2]}"
                       for t in spec.traits)
    boundaries = "\n".join(f"- {b.id}: {b.rule}" + (f" ({b.description})" if b.description else "") for b in spec.boundaries)
    vtypes = boundaries + "\n- generic_ai: stock assistant phrasing that breaks the persona, such as " + \
        ", ".join(f'"{p}"' for p in spec.vocabulary.generic_ai_phrases[:8])
    return {
        "display_name": spec.display_name,
        "identity": spec.identity.strip(),
        "traits": traits,
        "pattern": "\n".join(f"- {p.id}: {p.description}" for p in spec.pattern),
        "boundaries": boundaries,
        "violation_types": vtypes,
        "preferred": ", ".join(f'"{p}"' for p in spec.vocabulary.preferred),
        "avoided": ", ".join(f'"{p}"' for p in spec.vocabulary.avoided),
        "trait_keys": ", ".join(f'"{t}": 0|1|2' for t in spec.trait_ids),
        "pattern_keys": ", ".join(f'"{p.id}": true|false' for p in spec.pattern),
    }


def render_conversation(messages: list[dict]) -> str:
    out = []
    for m in messages:
        role = {"system": "CONTEXT", "user": "USER", "assistant": "ASSISTANT"}.get(m.get("role"), m.get("role", "?"))
        out.append(f"{role}: {m.get('content', '')}")
    return "\n".join(out)
