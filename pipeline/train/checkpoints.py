"""Is a Trainer checkpoint whole? Checked before a resume trusts it.

A checkpoint written while the process was killed, or a disk that filled up, leaves files cut
short or empty; the Trainer then dies deep inside torch.load or safetensors with a raw
traceback, although an earlier checkpoint is intact. `intact_checkpoint` walks the checkpoints
newest first and returns the first whole one, with the reasons the newer ones were skipped.

The checks read every byte but unpickle nothing: safetensors' header must account for the
file's exact size, torch's `.pt` files are zip archives whose CRCs must match, JSON must parse.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

ADAPTER_WEIGHTS = "adapter_model.safetensors"
REQUIRED = ("trainer_state.json", "adapter_config.json", ADAPTER_WEIGHTS, "optimizer.pt", "scheduler.pt")
ZIPPED = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin")


def checkpoints(run_dir: Path) -> list[Path]:
    """checkpoint-<step> folders of a run, newest (highest step) first."""
    d = Path(run_dir) / "checkpoints"
    if not d.is_dir():
        return []
    found = [p for p in d.iterdir() if p.is_dir() and p.name.startswith("checkpoint-") and p.name[11:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[11:]), reverse=True)


def checkpoint_step(ckpt: Path) -> int:
    return int(Path(ckpt).name.split("-")[-1])


def _safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    if size < 8:
        return f"{path.name} is {'empty' if size == 0 else 'cut short'} ({size} bytes)"
    with path.open("rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > size - 8:
            return f"{path.name} is cut short (its header alone needs {n} bytes, the file has {size})"
        try:
            header = json.loads(fh.read(n))
        except ValueError:
            return f"{path.name} has an unreadable header"
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)]
    if not ends:
        return f"{path.name} holds no tensors"
    if 8 + n + max(ends) != size:
        return f"{path.name} is cut short ({size:,} of {8 + n + max(ends):,} bytes)"
    return None


def _zip_problem(path: Path) -> str | None:
    if path.stat().st_size == 0:
        return f"{path.name} is empty"
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError):
        return f"{path.name} is cut short or not a torch file"
    return f"{path.name} is damaged (CRC mismatch in {bad})" if bad else None


def checkpoint_problem(ckpt: Path) -> str | None:
    """Why `ckpt` cannot be resumed from, or None when it is whole."""
    ckpt = Path(ckpt)
    for name in REQUIRED:
        if not (ckpt / name).is_file():
            return f"{name} is missing"
    for name in ("trainer_state.json", "adapter_config.json"):
        try:
            data = json.loads((ckpt / name).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return f"{name} is cut short or not JSON"
        if not isinstance(data, dict):
            return f"{name} is not a JSON object"
        if name == "trainer_state.json" and data.get("global_step") != checkpoint_step(ckpt):
            return f"trainer_state.json says step {data.get('global_step')}, the folder says {checkpoint_step(ckpt)}"
    problem = _safetensors_problem(ckpt / ADAPTER_WEIGHTS)
    if problem:
        return problem
    for name in ZIPPED:
        if (ckpt / name).is_file():
            problem = _zip_problem(ckpt / name)
            if problem:
                return problem
    return None


def intact_checkpoint(run_dir: Path) -> tuple[Path | None, list[tuple[str, str]]]:
    """(newest whole checkpoint or None, [(skipped checkpoint name, why)] for newer broken ones)."""
    skipped = []
    for ckpt in checkpoints(run_dir):
        problem = checkpoint_problem(ckpt)
        if problem is None:
            return ckpt, skipped
        skipped.append((ckpt.name, problem))
    return None, skipped
