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


def cuda_problem(driver_file: str = "/proc/driver/nvidia/version") -> str | None:
    """GPU hardware that torch cannot use (e.g. a CUDA 13 torch on a 12.x driver): the studio would
    silently run on the CPU of paid GPU hardware, so this is said loudly, in the header and the log."""
    import logging
    import os

    if not os.path.exists(driver_file):
        return None
    try:
        import torch

        if torch.cuda.is_available():
            return None
        built = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU build"
    except Exception as exc:
        built = f"not importable: {exc}"
    try:
        driver = open(driver_file).read().split("Kernel Module")[1].split()[0]
    except (OSError, IndexError):
        driver = "unknown"
    msg = (f"GPU hardware without usable CUDA: NVIDIA driver {driver} is loaded but this torch ({built}) cannot "
           f"use it, so everything runs on the CPU. Install a torch built for this driver's CUDA: "
           f"`python -m pipeline space deploy --hardware <gpu>` writes PyTorch's cu128 build (docs/gpu.md).")
    logging.getLogger("taskmaster.startup").error(msg)
    return msg


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
    if settings.base_model_note:
        notes.append(settings.base_model_note)
    if not settings.generator.configured:
        notes.append("No API key (OPENAI_API_KEY / OPENAI_BASE_URL): LLM generation and persona drafting are off; "
                     "the shipped dataset, the blank/copy persona templates and training stay on.")
    if not settings.judge.configured:
        notes.append("No judge endpoint: the LLM judge is off; evaluation uses the offline reader judge.")
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
    problem = cuda_problem()
    if problem:
        line += f"\n\n> **Startup error:** {problem}"
    if notes:
        line += "\n\n" + "\n".join(f"- {n}" for n in notes)
    return line
