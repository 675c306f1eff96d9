"""`TrainConfig`: the one typed config of the training stage, its presets and its validation.

The UI form, the CLI flags, `runs/<id>/config.yaml` and the orchestrator all build this
object. Defaults are the seed's Phase 2 configuration (unsloth + TrainingArguments):

    r=16, lora_alpha=16, lora_dropout=0, the seven projection modules,
    3 epochs, per-device batch 2 x gradient accumulation 4 (= 8 conversations per optimizer step),
    lr 2e-4 cosine with 10 warm-up steps, max_seq_length 2048, bf16, adamw_8bit.

`precision="auto"` means bf16 where the hardware has it (CUDA with bf16, or a CPU with
AVX512-BF16/AMX, where autocast runs ~1.7x faster than float32 on this project's CI machine),
float32 otherwise. `optim="auto"` means 8-bit AdamW on CUDA (bitsandbytes) and plain AdamW
elsewhere (bitsandbytes has no CPU kernels).

`validate_config` collects every problem (field types and ranges, cross-field rules, the
environment: model, data, hardware) and `parse_config` raises one `ConfigError` naming each
setting to change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import UserError

ALL_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ATTENTION_MODULES = ALL_MODULES[:4]
MLP_MODULES = ALL_MODULES[4:]


class ConfigError(UserError):
    """Every problem with a training config, one per line, each naming the setting to change."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid training config:\n  - " + "\n  - ".join(self.problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraSettings(_Strict):
    r: int = Field(16, ge=1, le=1024, description="LoRA rank")
    alpha: int = Field(16, ge=1, description="LoRA alpha (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: list(ALL_MODULES), min_length=1)
    # 0: every decoder layer (the seed). N: only the last N layers get adapters. On CPU this is the
    # biggest saving there is: no layer below the lowest adapter needs a backward pass.
    layers: int = Field(0, ge=0, description="adapt only the last N decoder layers (0 = all)")

    def layer_indices(self, num_layers: int) -> list[int] | None:
        if not self.layers or self.layers >= num_layers:
            return None
        return list(range(num_layers - self.layers, num_layers))


METHODS = ("sft", "dpo", "kto")
REPORT_TO = ("tensorboard", "trackio", "wandb", "none")


class TrainConfig(_Strict):
    # how: supervised fine-tuning on the curated conversations, or a preference round (TRL's DPO on
    # chosen/rejected pairs, KTO on unpaired thumbs up/down) continuing from an SFT run's adapter
    method: Literal["sft", "dpo", "kto"] = "sft"
    from_run: str | None = None  # dpo/kto: the SFT run folder whose adapter (and base, LoRA shape) to continue
    # dpo/kto data: JSONL files of pairs (`arena export --format dpo|kto`, or a run's pairs.jsonl); the run
    # also self-plays `self_play` curated conversations into pairs (chosen = the curated reply, rejected =
    # the parent adapter's own reply, SPIN-style; plus pairs the judge ranks among its samples).
    pairs: list[str] = Field(default_factory=list)
    self_play: int = Field(64, ge=0, description="curated conversations to self-play into pairs (0 = none)")
    self_play_samples: int = Field(2, ge=1, le=8, description="replies sampled per conversation for the judge to rank")
    beta: float = Field(0.1, gt=0, le=10, description="DPO/KTO beta: how far the policy may move from the SFT parent")

    # what to train
    base_model: str = "smollm2-135m"  # registry name, local folder or Hub id (see pipeline.models)
    persona: str = "taskmaster"  # persona name (data/personas/<name>) or a persona folder
    data: str | None = None  # JSONL of records; default: <persona folder>/train.jsonl
    lora: LoraSettings = Field(default_factory=LoraSettings)

    # the seed's optimisation settings
    epochs: float = Field(3, gt=0)
    batch_size: int = Field(2, ge=1)
    grad_accum: int = Field(4, ge=1)
    learning_rate: float = Field(2e-4, gt=0, lt=1)
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_steps: int = Field(10, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    max_length: int = Field(2048, ge=16)
    max_steps: int = Field(-1, ge=-1, description="-1: run the epochs; otherwise stop after this many optimizer steps")
    # NEFTune (Jain et al. 2023): uniform noise of scale alpha / sqrt(length x hidden) on the input
    # embeddings while training; 5 is the paper's usual value, 0 = off. transformers scales by the
    # row's length, so with `batching: packed` (8 conversations a row) the noise per conversation is
    # ~1/sqrt(8) of what the same alpha gives unpacked (measured in benchmarks/recipe_sweep.py).
    neftune_alpha: float = Field(0.0, ge=0, description="NEFTune noise alpha on the input embeddings (0 = off)")
    seed: int = 3407  # unsloth's notebooks' seed; any fixed seed makes runs repeatable

    # hardware
    backend: Literal["auto", "trl", "unsloth"] = "auto"
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    optim: Literal["auto", "adamw_8bit", "adamw_torch"] = "auto"
    gradient_checkpointing: Literal["auto", "on", "off"] = "auto"  # auto: on for CUDA, off on CPU
    num_threads: int = Field(0, ge=0, description="torch threads on CPU; 0 = physical cores")

    # How conversations are batched (measured in benchmarks/train_throughput.py, docs/benchmarks.md):
    #   packed   a micro-batch is one row of whole conversations, attention kept inside each
    #            conversation, no pad token computed (default; pipeline/train/packing.py)
    #   grouped  length-grouped padded batches;  padded  random batches padded to the longest
    batching: Literal["padded", "grouped", "packed"] = "packed"
    # packed only: the tokens every conversation of a micro-batch starts with (the persona's system
    # prompt) are computed once and attended to by each; exact, and ~40% fewer tokens on the shipped data
    share_prefix: bool = True
    adapter_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"

    # bookkeeping
    # Where the Trainer also logs the run: TensorBoard event files in runs/<id>/tensorboard (no account, no
    # network: `tensorboard --logdir runs`), trackio's local database (runs/.trackio: `trackio show`),
    # Weights & Biases (needs `pip install wandb` and an account, or WANDB_MODE=offline), or none.
    # metrics.jsonl is written in every case; this is for comparing runs in a tool people already know.
    report_to: Literal["tensorboard", "trackio", "wandb", "none"] = "tensorboard"
    logging_steps: int = Field(1, ge=1)
    save_strategy: Literal["epoch", "steps"] = "epoch"
    save_steps: int = Field(20, ge=1)
    save_total_limit: int = Field(2, ge=1)

    # ---- serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def effective_batch(self) -> int:
        return self.batch_size * self.grad_accum


# ---- presets ---------------------------------------------------------------------------

def _seed() -> dict:
    return {}  # every default above is the seed's


LAYERS_DEMO = 12


def _cpu_demo() -> dict:
    # Sized so that 3 epochs over the shipped conversations (279: 105 steps) on the embedded 135M model
    # finish in under 10 minutes on 2 quiet CPU cores (5 min 05 s measured at 239 = 90 steps, docs/benchmarks.md).
    # The round-4 sweep (5 epochs, lr 6e-4) did not beat it significantly, so it stays as it is:
    #  * r=8 on the seven projections of the last 12 of 30 layers: ~1M trainable parameters
    #    (~2 MB in bf16), enough capacity for a style. The backward pass stops at layer 18, so a
    #    step costs ~forward + 0.4 x backward instead of forward + backward (~1.4x fewer FLOPs).
    #  * max_length 512: the longest shipped conversation with the ~110-token persona prompt is
    #    well under it; it only bounds the rare outlier.
    #  * batch 8 x accum 1, packed: the seed's 8 conversations per optimizer step as one
    #    padding-free row, their shared persona prompt computed once (~1,450 tokens computed for
    #    ~2,000 conversation tokens; see docs/benchmarks.md for figures).
    #  * lr 3e-4, 5 warm-up steps: ~96 optimizer steps in all, so the seed's 10 warm-up steps
    #    would be 11% of the run; a slightly higher peak lr compensates for the small model.
    return dict(
        lora=dict(r=8, alpha=16, dropout=0.0, target_modules=list(ALL_MODULES), layers=LAYERS_DEMO),
        batch_size=8, grad_accum=1, learning_rate=3e-4, warmup_steps=5, max_length=512,
        batching="packed", save_strategy="steps", save_steps=20,
    )


def _smoke() -> dict:
    # A few steps end to end: checks the machinery, not the persona.
    return dict(lora=dict(r=8, alpha=16, target_modules=ATTENTION_MODULES), epochs=1, max_steps=5,
                batch_size=4, grad_accum=1, warmup_steps=0, max_length=512, save_strategy="steps", save_steps=5)


def _dpo() -> dict:
    # A preference round on top of an SFT adapter (set from_run). LoRA DPO moves a policy with a
    # learning rate ~10x below SFT's; beta 0.1 is TRL's default. ~64 self-play pairs + the Arena's,
    # 8 pairs per step, 2 epochs: ~16 steps, each a forward of the policy and of the reference (the
    # parent adapter, frozen) over chosen and rejected: ~4 SFT steps' worth of compute per step.
    return dict(method="dpo", epochs=2, batch_size=4, grad_accum=2, learning_rate=2e-5, warmup_steps=2,
                max_length=512, beta=0.1, save_strategy="steps", save_steps=5)


def _kto() -> dict:
    # KTO on unpaired good/bad replies (thumbs up/down; an Arena vote gives two labels). The KL term
    # compares mismatched completions within a batch, so a micro-batch needs >= 2 rows.
    return {**_dpo(), "method": "kto", "batch_size": 4}


PRESETS: dict[str, tuple[str, Any]] = {
    "seed": ("the seed's Phase 2 config: r=16/alpha=16 on all seven projections, 3 epochs, 2x4 batch, lr 2e-4 cosine", _seed),
    "cpu-demo": ("quick CPU demo: r=8 on all seven projections of the last 12 layers, 3 epochs, 8 conversations per step (packed), max length 512", _cpu_demo),
    "smoke": ("5 optimizer steps on the attention projections: checks that training works", _smoke),
    "dpo": ("preference round (DPO) on an SFT run's adapter: self-play + Arena pairs, lr 2e-5, beta 0.1, 2 epochs", _dpo),
    "kto": ("preference round (KTO, unpaired good/bad replies) on an SFT run's adapter, lr 2e-5, beta 0.1", _kto),
}


def preset_names() -> list[str]:
    return list(PRESETS)


def preset_overrides(name: str) -> dict:
    if name not in PRESETS:
        raise ConfigError([f"preset: unknown preset {name!r}; use one of {', '.join(PRESETS)}"])
    return PRESETS[name][1]()


def preset(name: str, **overrides) -> TrainConfig:
    """The named preset's TrainConfig, with `overrides` (validated like any config)."""
    return parse_config(_deep_merge(preset_overrides(name), overrides))


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in (extra or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


# ---- validation --------------------------------------------------------------------------

def _field_problems(err: ValidationError) -> tuple[list[str], set[tuple]]:
    problems, bad = [], set()
    for e in err.errors():
        loc = tuple(str(p) for p in e["loc"])
        bad.add(loc)
        where = ".".join(loc) or "(config)"
        if e["type"] == "extra_forbidden":
            known = ", ".join(TrainConfig.model_fields) if len(loc) == 1 else ", ".join(LoraSettings.model_fields)
            problems.append(f"{where}: unknown setting (known: {known})")
        else:
            problems.append(f"{where}: {e['msg']} (got {e.get('input')!r})")
    return problems, bad


def _drop(values: dict, loc: tuple) -> None:
    cur = values
    for part in loc[:-1]:
        if not isinstance(cur, dict) or part not in cur:
            return
        if not isinstance(cur[part], dict):
            cur.pop(part, None)
            return
        cur = cur[part]
    if isinstance(cur, dict):
        cur.pop(loc[-1], None)


def semantic_problems(cfg: TrainConfig) -> list[str]:
    """Cross-field rules that need no model, data or hardware."""
    p = []
    mods = cfg.lora.target_modules
    dup = sorted({m for m in mods if mods.count(m) > 1})
    if dup:
        p.append(f"lora.target_modules: {dup} listed twice; list each module once")
    if any(not m.strip() or " " in m for m in mods):
        p.append("lora.target_modules: module names must be non-empty and have no spaces (e.g. q_proj)")
    if cfg.lora.alpha > 16 * cfg.lora.r:
        p.append(f"lora.alpha: {cfg.lora.alpha} is over 16 x r ({cfg.lora.r}); that scales updates by "
                 f"{cfg.lora.alpha / cfg.lora.r:g} and usually diverges; use alpha between r/2 and 2r")
    if cfg.learning_rate > 1e-2:
        p.append(f"learning_rate: {cfg.learning_rate:g} is too high for LoRA (diverges); use 1e-5 .. 1e-3 (seed: 2e-4)")
    if cfg.backend == "unsloth" and cfg.precision == "fp32":
        p.append("precision: unsloth trains in bf16/fp16; use precision auto, bf16 or fp16 with backend unsloth")
    if cfg.optim == "adamw_8bit" and cfg.backend == "trl" and cfg.precision == "fp32":
        pass  # allowed: bitsandbytes handles fp32 params on CUDA
    if cfg.method != "sft" and not cfg.from_run:
        p.append(f"from_run: method {cfg.method} continues from an SFT run's adapter; pass --from-run runs/<id>")
    if cfg.method == "sft" and (cfg.from_run or cfg.pairs):
        p.append("method: from_run / pairs are for a preference round; use --method dpo or kto (or drop them)")
    if cfg.method != "sft" and not cfg.pairs and cfg.self_play == 0:
        p.append(f"pairs: method {cfg.method} needs preference data: pass --pairs FILE (e.g. from "
                 f"`python -m pipeline arena export --format {cfg.method}`) or set self_play above 0")
    if cfg.method == "kto" and cfg.batch_size < 2:
        p.append("batch_size: KTO estimates its KL term from mismatched rows of a micro-batch; use batch_size 2 or more")
    return p


def environment_problems(cfg: TrainConfig, hw: "Hardware") -> list[str]:
    """Rules that depend on this machine (CUDA, bf16, unsloth installed)."""
    p = []
    if cfg.backend == "unsloth" and not hw.cuda:
        p.append("backend: unsloth needs a CUDA GPU and none is visible; use backend trl (or auto) here")
    elif cfg.backend == "unsloth" and not hw.unsloth:
        from .backend_select import FIX

        p.append(f"backend: unsloth cannot train here ({hw.unsloth_reason or 'it does not import'}); fix: {FIX}")
    if cfg.precision == "bf16" and not hw.bf16:
        p.append("precision: this machine has no bf16 support; use precision auto or fp32")
    if cfg.precision == "fp16" and not hw.cuda:
        p.append("precision: fp16 training needs CUDA; use precision auto, bf16 or fp32 on CPU")
    if cfg.optim == "adamw_8bit" and not (hw.cuda and hw.bitsandbytes):
        p.append("optim: adamw_8bit needs CUDA and bitsandbytes; use optim auto or adamw_torch here")
    import importlib.util

    need = {"tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb"}.get(cfg.report_to)
    if need and importlib.util.find_spec(need) is None:
        p.append(f"report_to: {cfg.report_to} is not installed; `pip install {need}` or use report_to tensorboard "
                 f"(installed with requirements.txt) or none")
    return p


def validate_config(values: dict | TrainConfig, hw: "Hardware | None" = None) -> tuple[TrainConfig | None, list[str]]:
    """(config or None, every problem). Field errors do not hide cross-field or environment ones:
    invalid fields are dropped to their defaults for the remaining checks."""
    raw = values.to_dict() if isinstance(values, TrainConfig) else dict(values or {})
    problems: list[str] = []
    cfg = None
    try:
        cfg = TrainConfig.model_validate(raw)
    except ValidationError as err:
        field_p, bad = _field_problems(err)
        problems += field_p
        trimmed = yaml.safe_load(yaml.safe_dump(raw))  # deep copy of plain data
        for loc in bad:
            _drop(trimmed, loc)
        try:
            partial = TrainConfig.model_validate(trimmed)
        except ValidationError:
            partial = None
        if partial is not None:
            problems += semantic_problems(partial)
            if hw is not None:
                problems += environment_problems(partial, hw)
        return None, problems
    problems += semantic_problems(cfg)
    if hw is not None:
        problems += environment_problems(cfg, hw)
    return (cfg if not problems else None), problems


def parse_config(values: dict | TrainConfig, hw: "Hardware | None" = None) -> TrainConfig:
    cfg, problems = validate_config(values, hw)
    if problems:
        raise ConfigError(problems)
    return cfg


def load_config(path: str | Path, *, run: bool = False) -> TrainConfig:
    """A config.yaml (a run's own, or a hand-written one). `run=True`: it must be a run's own,
    whose TrainConfig sits under `train:`; a file without it (cut short by a crash or a full
    disk) is named as broken rather than read as settings it never held."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_bytes().decode("utf-8-sig")) or {}
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not valid UTF-8; restore the file or start a new run"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML (the file may be cut short): {exc}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: expected a mapping of settings"])
    if run and not isinstance(raw.get("train"), dict):
        raise ConfigError([f"{path}: this run's config.yaml is incomplete (no `train:` section; the file looks "
                           f"cut short). Restore it, or start a new run with another --out"])
    raw = raw.get("train", raw)  # a run's config.yaml keeps the TrainConfig under `train:`
    return parse_config(raw)


# ---- hardware ------------------------------------------------------------------------------

class Hardware(BaseModel):
    cuda: bool = False
    bf16: bool = False
    unsloth: bool = False  # `import unsloth` really works here (pipeline.train.backend_select)
    unsloth_reason: str = ""  # why not, when it does not
    bitsandbytes: bool = False
    device_name: str = "cpu"
    gpu_memory_gb: float = 0.0
    physical_cores: int = 1

    @classmethod
    def detect(cls, cache_dir: "Path | None" = None) -> "Hardware":
        import importlib.util
        import os

        import torch

        from .backend_select import probe_unsloth

        cuda = torch.cuda.is_available()
        if cuda:
            # A T4 (sm_75) 'supports' bf16 only by emulation, several times slower than fp16.
            from ..models import cuda_has_native_bf16

            bf16 = cuda_has_native_bf16()  # not emulated bf16 (a T4 "supports" it, slowly)
            props = torch.cuda.get_device_properties(0)
            name, mem = props.name, props.total_memory / 2**30
        else:
            from ..models import cpu_has_native_bf16

            bf16 = cpu_has_native_bf16()
            name, mem = "cpu", 0.0
        # Only a CUDA machine pays for the probe (a child process, cached per stack).
        if cuda:
            cache = cache_dir or Path(os.environ.get("TASKMASTER_CACHE_DIR") or Path(__file__).resolve().parents[2] / ".cache")
            probe = probe_unsloth(cache)
            unsloth, why = probe.usable, probe.reason
        else:
            unsloth, why = False, "no CUDA GPU visible"
        return cls(cuda=cuda, bf16=bf16, unsloth=unsloth, unsloth_reason=why,
                   bitsandbytes=importlib.util.find_spec("bitsandbytes") is not None, device_name=name,
                   gpu_memory_gb=round(mem, 1), physical_cores=_physical_cores() or (os.cpu_count() or 1))


def _physical_cores() -> int | None:
    """Physical cores (hyper-threads share one core's FPUs: more torch threads than cores is slower)."""
    try:
        seen = set()
        core = phys = None
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("physical id"):
                    phys = line.split(":")[1].strip()
                elif line.startswith("core id"):
                    core = line.split(":")[1].strip()
                elif not line.strip() and core is not None:
                    seen.add((phys, core))
                    core = phys = None
        import os

        n = len(seen) or None
        avail = len(os.sched_getaffinity(0))
        return min(n, avail) if n else avail
    except OSError:
        return None


class Resolved(BaseModel):
    """What `auto` settings became on this machine (recorded in config.yaml)."""

    backend: str
    precision: str
    optim: str
    gradient_checkpointing: bool
    num_threads: int
    adapter_dtype: str
    device: str
    backend_note: str = ""  # one line: why `backend: auto` chose what it chose


def backend_choice(cfg: TrainConfig, hw: Hardware) -> tuple[str, str]:
    """(backend, the line that says why). unsloth only where it really imports; TRL otherwise."""
    if cfg.backend != "auto":
        return cfg.backend, f"backend {cfg.backend} (asked for)"
    if hw.cuda and hw.unsloth:
        return "unsloth", "backend auto -> unsloth (imports on this CUDA machine)"
    return "trl", f"backend auto -> trl (unsloth not used: {hw.unsloth_reason or 'not available'})"


def resolve(cfg: TrainConfig, hw: Hardware) -> Resolved:
    backend, note = backend_choice(cfg, hw)
    precision = cfg.precision if cfg.precision != "auto" else ("bf16" if hw.bf16 else ("fp16" if hw.cuda else "fp32"))
    optim = cfg.optim if cfg.optim != "auto" else ("adamw_8bit" if hw.cuda and hw.bitsandbytes else "adamw_torch")
    gc = cfg.gradient_checkpointing == "on" or (cfg.gradient_checkpointing == "auto" and hw.cuda)
    threads = cfg.num_threads or hw.physical_cores
    # The adapter is saved in the training precision's dtype (half the bytes of float32 in bf16):
    # that is what the deployment size limit is checked against.
    adapter = cfg.adapter_dtype if cfg.adapter_dtype != "auto" else (
        {"bf16": "bfloat16", "fp16": "float16"}.get(precision, "float32"))
    return Resolved(backend=backend, precision=precision, optim=optim, gradient_checkpointing=gc,
                    num_threads=threads, adapter_dtype=adapter, device="cuda" if hw.cuda else "cpu",
                    backend_note=note)
