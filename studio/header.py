"""The header: which base model, device, judge and generator are active, what is not
configured, and the access mode. Built from `Settings.public_summary()`: never a secret."""

from __future__ import annotations

from pipeline.settings import Settings


def device_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"GPU: {torch.cuda.get_device_name(0)}"
        return f"CPU ({torch.get_num_threads()} threads)"
    except Exception:  # torch missing or broken: the studio still serves the Arena's stored results
        return "CPU"


def model_status(settings: Settings) -> str:
    """'ready' or what to do to make the base model available (never touches the network)."""
    try:
        from pipeline.models import availability, resolve

        ok, why = availability(resolve(settings.base_model), settings)
        return "ready" if ok else f"not available: {why}"
    except Exception as exc:  # an unknown name: say so, the studio still starts
        return f"not available: {exc}"


def header_facts(settings: Settings) -> dict[str, str]:
    s = settings.public_summary()
    return {
        "base model": s["base_model"],
        "device": device_name(),
        "generator": s["generator"],
        "judge": s["judge"],
        "Hub token": s["hf_token"],
        "access": s["access"],
    }


def not_configured(settings: Settings) -> list[str]:
    """One line per missing setting: what is off because of it and what still works."""
    notes = []
    if not settings.generator.configured:
        notes.append("No API key (OPENAI_API_KEY / OPENAI_BASE_URL): LLM generation and persona drafting are off; "
                     "the shipped dataset, the blank/copy persona templates and training stay on.")
    if not settings.judge.configured:
        notes.append("No judge endpoint: the LLM judge is off; evaluation uses the offline rubric judge.")
    if not settings.hf_token:
        notes.append("No HF_TOKEN: pushing to the Hub is off; packaging and validation stay on.")
    if settings.on_space and not settings.admin_password:
        notes.append("On a Space without TASKMASTER_ADMIN_PASSWORD: only the Arena is usable.")
    return notes


def render_header(settings: Settings) -> str:
    f = header_facts(settings)
    line = (f"### TaskMaster Persona Studio\n"
            f"**Base model** `{f['base model']}` ({model_status(settings)}) · **Device** {f['device']} · "
            f"**Generator** {f['generator']} · **Judge** {f['judge']} · **Hub token** {f['Hub token']} · "
            f"**Access** {f['access']}")
    notes = not_configured(settings)
    if notes:
        line += "\n\n" + "\n".join(f"- {n}" for n in notes)
    return line
