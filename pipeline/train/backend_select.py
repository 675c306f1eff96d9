"""Can unsloth train here? Answered by really importing it, in a child process, once per stack.

`find_spec("unsloth")` only says the package is on disk. unsloth patches transformers and TRL
at import time and breaks at import when their versions drift (unsloth 2025.7.2 against
transformers 5.x: `transformers.modeling_attn_mask_utils`, `transformers.HybridCache` and
`trl.trainer.utils.ConstantLengthDataset` are gone), so the only honest test is the import
itself. It runs in a child process because the import monkey-patches the importing process for
good, and because a broken CUDA/Triton install can crash it. The child sets
`UNSLOTH_DISABLE_CPU_FALLBACK=1`: unsloth 2026.x otherwise "succeeds" on a machine without a GPU
by loading its slow CPU backend, which is not the backend this project means by unsloth.

The answer is cached in `<cache_dir>/unsloth_probe.json`, keyed by the interpreter and the
installed versions of unsloth, unsloth_zoo, torch, transformers, trl, peft and the visible
GPUs, so an upgrade or another venv re-probes (the import takes 10-60 s on a GPU).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

PROBE_FILE = "unsloth_probe.json"
FIX = ("`pip install -r requirements-gpu.txt` (the pinned stack unsloth supports: transformers 5.17.0, "
       "trl 1.15.0, datasets 4.8.5) or set backend: trl")
_STACK = ("unsloth", "unsloth_zoo", "torch", "transformers", "trl", "peft", "bitsandbytes")
# The child prints one marker line on success; anything else is the failure's last line.
_CODE = ("import os; os.environ['UNSLOTH_DISABLE_CPU_FALLBACK'] = '1'\n"
         "import unsloth\n"
         "from unsloth import FastLanguageModel\n"
         "print('UNSLOTH-PROBE-OK', unsloth.__version__, getattr(unsloth, 'DEVICE_TYPE', '?'))\n")


@dataclass(frozen=True)
class UnslothProbe:
    usable: bool
    reason: str  # why not (empty when usable): the import error's last line, or what is missing
    version: str | None = None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _key(python: str, env: dict) -> str:
    facts = [python] + [f"{d}={_version(d)}" for d in _STACK] + [
        f"{k}={env.get(k, '')}" for k in ("CUDA_VISIBLE_DEVICES", "PYTHONPATH")]
    return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:16]


def _last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ("Error" in ln or "Exception" in ln) and ":" in ln]
    return (errors or lines or ["no output"])[-1][:400]


def probe_unsloth(cache_dir: Path | None = None, *, python: str = sys.executable, env: dict | None = None,
                  timeout: float = 300) -> UnslothProbe:
    """Import unsloth in a child process (cached per stack); never raises."""
    env = dict(os.environ if env is None else env)
    if _version("unsloth") is None and "PYTHONPATH" not in env:
        return UnslothProbe(False, "unsloth is not installed")
    cache = Path(cache_dir) / PROBE_FILE if cache_dir else None
    key = _key(python, env)
    if cache is not None:
        try:
            hit = json.loads(cache.read_text()).get(key)
            if hit is not None:
                return UnslothProbe(**hit)
        except (OSError, ValueError, TypeError):
            pass
    try:
        p = subprocess.run([python, "-c", _CODE], capture_output=True, text=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL)
        out = p.stdout + "\n" + p.stderr
        ok = [ln for ln in p.stdout.splitlines() if ln.startswith("UNSLOTH-PROBE-OK")]
        if p.returncode == 0 and ok:
            result = UnslothProbe(True, "", ok[-1].split()[1])
        else:
            result = UnslothProbe(False, f"`import unsloth` failed: {_last_error_line(out)}", _version("unsloth"))
    except subprocess.TimeoutExpired:
        result = UnslothProbe(False, f"`import unsloth` did not finish in {timeout:.0f} s")
    except OSError as exc:
        result = UnslothProbe(False, f"could not run {python}: {exc}")
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            old = json.loads(cache.read_text()) if cache.is_file() else {}
            old[key] = asdict(result)
            cache.write_text(json.dumps(old, indent=1))
        except (OSError, ValueError):
            pass  # an unwritable cache only costs a re-probe
    return result
