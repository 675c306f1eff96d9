"""The header line: which base model, device, judge and generator are active; never a secret."""

from __future__ import annotations

from pipeline.settings import Settings


def device_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"GPU: {torch.cuda.get_device_name(0)}"
        return f"CPU ({torch.get_num_threads()} threads)"
    except Exception:
        return "CPU"


def render_header(settings: Settings) -> str:
    s = settings.public_summary()
    notes = []
    if not settings.generator.configured:
        notes.append("no API key: generation and the LLM judge are off; the offline paths (rubric judge, shipped data) stay on")
    line = (f"**TaskMaster Persona Studio** · base model `{s['base_model']}` · {device_name()} · "
            f"generator {s['generator']} · judge {s['judge']} · access {s['access']}")
    return line + ("\n\n" + "; ".join(notes) if notes else "")
