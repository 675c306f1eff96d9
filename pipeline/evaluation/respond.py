"""Batch generation for a prompt file: `python -m pipeline respond --base NAME [--adapter DIR]
--prompts FILE --out FILE.jsonl`. One row per prompt:

    {"id", "category", "tags", "messages", "reply", "model": {"base", "adapter", "adapter_sha256"},
     "sampling": {...SamplingConfig...}, "system_prompt": bool, "key": "<reuse key>"}

The persona system prompt is added to every conversation (pipeline/prompting.py), for the
base and the adapter alike. `key` hashes everything that decides a reply (prompt, base,
adapter hash, sampling, system prompt), so an evaluation can reuse replies it already has.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import UserError
from ..inference import ChatEngine, SamplingConfig, default_sampling, load_engine
from ..jsonl import read_jsonl, write_jsonl
from ..prompting import with_persona_system
from .evalset import EvalPrompt, load_eval_set
from .progress import ProgressWriter

ADAPTER_NAME = "candidate"
# 96 new tokens ~ 70 words: the persona's replies are 20-120 words, and at ~17 tokens/s on 2
# CPU cores a 64-prompt eval x 2 models stays at a few minutes (batched 8 at a time).
EVAL_MAX_NEW_TOKENS = 96


def dir_sha256(folder: str | Path) -> str:
    """sha256 over the adapter's weight and config files (names and bytes, sorted)."""
    h = hashlib.sha256()
    folder = Path(folder)
    for p in sorted(folder.iterdir()):
        if p.is_file() and (p.suffix in (".safetensors", ".bin") or p.name == "adapter_config.json"):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def adapter_problems(adapter: str | Path) -> list[str]:
    a = Path(adapter)
    if not a.is_dir():
        return [f"adapter: {a} is not a folder; pass the adapter folder (it holds adapter_config.json)"]
    if not (a / "adapter_config.json").is_file():
        return [f"adapter: {a} has no adapter_config.json; pass a PEFT adapter folder (e.g. runs/<id>/adapter)"]
    return []


def reply_key(p: EvalPrompt, base: str, adapter_sha: str | None, sampling: SamplingConfig, system_prompt: str | None) -> str:
    blob = json.dumps({"m": p.messages, "base": base, "adapter": adapter_sha, "s": sampling.to_dict(),
                       "sys": system_prompt}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def decoding_problems(s: SamplingConfig, batch_size: int, flag=lambda name: name) -> list[str]:
    """Every problem of a decoding setup, each naming the setting as `flag` spells it (the config's
    `max_new_tokens`, or the CLI's `--max-new-tokens`: `pipeline evaluate` passes that spelling)."""
    p = []
    if s.max_new_tokens < 1:
        p.append(f"{flag('max_new_tokens')}: {s.max_new_tokens}; must be at least 1")
    if s.temperature < 0:
        p.append(f"{flag('temperature')}: {s.temperature}; must be 0 (greedy) or more")
    if not 0 < s.top_p <= 1:
        p.append(f"{flag('top_p')}: {s.top_p}; must be in (0, 1]")
    if batch_size < 1:
        p.append(f"{flag('batch_size')}: {batch_size}; must be at least 1")
    return p


@dataclass
class RespondConfig:
    base: str
    prompts: Path
    out: Path | None = None
    adapter: Path | None = None
    persona: str | None = None  # persona folder whose system prompt frames every conversation
    sampling: SamplingConfig | None = None  # None: the base model's default (pipeline.inference.default_sampling)
    batch_size: int = 8
    system_prompt: bool = True

    def __post_init__(self):
        if self.sampling is None:
            self.sampling = default_sampling(self.base, max_new_tokens=EVAL_MAX_NEW_TOKENS)

    def problems(self) -> list[str]:
        p = []
        if not Path(self.prompts).is_file():
            p.append(f"prompts: {self.prompts} not found; pass eval.yaml or a JSONL file of {{id, prompt|messages}}")
        if self.adapter is not None:
            p += adapter_problems(self.adapter)
        return p + decoding_problems(self.sampling, self.batch_size)

    def check(self) -> None:
        problems = self.problems()
        if problems:
            raise UserError("respond settings:\n  " + "\n  ".join(problems))


def generate_replies(engine: ChatEngine, prompts: list[EvalPrompt], adapter: str | None, sampling: SamplingConfig,
                     system_prompt: str | None, batch_size: int = 8, *, base: str = "", adapter_sha: str | None = None,
                     echo=None, progress: Callable[[int], None] | None = None) -> list[dict]:
    """One reply row per prompt, `batch_size` conversations per engine call; after each batch
    `progress(replies so far)` (the evaluation's progress file, pipeline/evaluation/progress.py)."""
    convs = [with_persona_system(p.messages, system_prompt) for p in prompts]
    rows: list[dict] = []
    t0 = time.perf_counter()
    for i in range(0, len(convs), batch_size):
        replies = engine.generate_batch(convs[i:i + batch_size], adapter, sampling, batch_size=batch_size)
        for p, r in zip(prompts[i:i + batch_size], replies):
            rows.append({**p.to_dict(), "reply": r, "model": {"base": base, "adapter": adapter, "adapter_sha256": adapter_sha},
                         "sampling": sampling.to_dict(), "system_prompt": system_prompt is not None,
                         "key": reply_key(p, base, adapter_sha, sampling, system_prompt)})
        if progress:
            progress(len(rows))
        if echo:
            echo(f"  {adapter or 'base'}: {len(rows)}/{len(convs)} replies ({time.perf_counter() - t0:.0f}s)")
    return rows


def read_replies(path: str | Path) -> list[dict]:
    """A replies file as `generate_replies` (and the evaluation, which adds verdicts) wrote it:
    one row per prompt with `id`, the prompt `messages` and the `reply`. The one reader of the
    format, beside its writer; a row without them is refused naming the file and line."""
    rows = read_jsonl(path)
    for i, r in enumerate(rows, 1):
        if not (isinstance(r, dict) and r.get("id") and isinstance(r.get("messages"), list)
                and isinstance(r.get("reply"), str)):
            raise UserError(f"{path}: line {i} is not a reply row (id, messages, reply); regenerate the replies "
                            "(`python -m pipeline respond ...` or re-run the evaluation)")
    return rows


def respond(cfg: RespondConfig, settings, *, engine: ChatEngine | None = None, echo=None) -> list[dict]:
    cfg.check()
    prompts = load_eval_set(cfg.prompts)
    system_prompt = None
    if cfg.system_prompt:
        from ..spec import load_persona

        system_prompt = load_persona(cfg.persona or settings.persona_dir()).spec.system_prompt
    own = engine is None
    engine = engine or load_engine(cfg.base, settings)
    try:
        name, sha = None, None
        if cfg.adapter is not None:
            engine.attach_adapter(ADAPTER_NAME, cfg.adapter)
            name, sha = ADAPTER_NAME, dir_sha256(cfg.adapter)
        # Beside the output file, the same progress file an evaluation writes (`<out>.progress.json`).
        writer = ProgressWriter(progress_path_for(cfg.out) if cfg.out is not None else None,
                                [f"{'adapter' if name else 'base'} replies"])
        writer.stage(writer.stages[0], len(prompts))
        try:
            rows = generate_replies(engine, prompts, name, cfg.sampling, system_prompt, cfg.batch_size,
                                    base=cfg.base, adapter_sha=sha, echo=echo, progress=writer.advance)
        except Exception as exc:
            writer.fail(f"{type(exc).__name__}: {exc}")
            raise
    finally:
        if own:
            engine.close()
    if cfg.out is not None:
        write_jsonl(cfg.out, rows)
    writer.finish()
    return rows


def progress_path_for(out: str | Path) -> Path:
    """Where `respond --out FILE.jsonl` writes its progress: FILE.progress.json."""
    out = Path(out)
    return out.with_name(out.stem + ".progress.json")
