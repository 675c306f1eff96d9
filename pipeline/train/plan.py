"""Plan before spending: trainable parameters, adapter file size and memory, from the model config alone.

LoRA adds two matrices per targeted linear layer, A (r x in) and B (out x r), so a module
adds r * (in + out) parameters per layer. For a Llama-style decoder (hidden h, intermediate I,
n_heads x head_dim = q width, n_kv_heads x head_dim = k/v width):

    q_proj: h -> n_heads*hd     k_proj, v_proj: h -> n_kv*hd     o_proj: n_heads*hd -> h
    gate_proj, up_proj: h -> I  down_proj: I -> h

Worked example (Llama-3.1-8B: h=4096, I=14336, 32 layers, 32 x 128 q heads, 8 x 128 kv heads), r=16, all seven:
    per layer 16 * (8192 + 5120 + 5120 + 8192 + 18432 * 3) = 1,310,720; x 32 layers = 41,943,040
    -> 83.9 MB in bf16 (2 bytes each), over the seed's own 50 MB limit;
       r=8 on all seven (41.9 MB) or r=16 on the attention projections (27.3 MB) fit.

The file size is exact: PEFT writes `adapter_model.safetensors` = 8-byte header length + JSON
header (tensor names, dtypes, shapes, offsets; padded to 8 bytes) + the raw tensors, and the
header is rebuilt here from the same names PEFT uses.

Shapes come from the model's `config.json` when the model is here, and from `KNOWN_SHAPES`
for registry models that are not downloaded (the plan for the 8B target works offline).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UserError
from .config import ALL_MODULES, ATTENTION_MODULES

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
SAFETENSORS_DTYPE = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}
MB = 1_000_000  # the spec's "50MB" is decimal megabytes, like file managers and the Hub show


@dataclass(frozen=True)
class Shape:
    """What the plan needs from a Llama-style config.json."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool = False
    model_type: str = "llama"

    @classmethod
    def from_config(cls, cfg: dict) -> "Shape":
        cfg = cfg.get("text_config", cfg)
        missing = [k for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
                   if k not in cfg]
        if missing:
            raise UserError(f"the model's config.json lacks {missing}: the plan supports Llama-style decoders "
                            f"(Llama, Mistral, Qwen2, SmolLM) with q/k/v/o and gate/up/down projections")
        heads = cfg["num_attention_heads"]
        return cls(hidden_size=cfg["hidden_size"], intermediate_size=cfg["intermediate_size"],
                   num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=heads,
                   num_key_value_heads=cfg.get("num_key_value_heads") or heads,
                   head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads,
                   vocab_size=cfg.get("vocab_size", 32000), tie_word_embeddings=bool(cfg.get("tie_word_embeddings")),
                   model_type=cfg.get("model_type", "llama"))

    def module_dims(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each projection."""
        h, i = self.hidden_size, self.intermediate_size
        q, kv = self.num_attention_heads * self.head_dim, self.num_key_value_heads * self.head_dim
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def base_params(self) -> int:
        dims = self.module_dims()
        per_layer = sum(a * b for a, b in dims.values()) + 2 * self.hidden_size
        emb = self.vocab_size * self.hidden_size
        return self.num_hidden_layers * per_layer + emb * (1 if self.tie_word_embeddings else 2) + self.hidden_size


# Registry models' published shapes, so planning never needs the weights (or the network).
KNOWN_SHAPES: dict[str, Shape] = {
    "llama-3.1-8b-instruct": Shape(4096, 14336, 32, 32, 8, 128, 128256, False),
    "smollm2-135m": Shape(576, 1536, 30, 9, 3, 64, 49152, True),
}
_SUBMODULE = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
              "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def model_shape(base: str, settings=None) -> tuple[Shape, str]:
    """(shape, where it came from) for a registry name, a local folder or a cached Hub id."""
    from ..models import REGISTRY, local_path, resolve

    candidates = []
    p = Path(base).expanduser()
    if p.is_dir():
        candidates.append(p / "config.json")
    elif settings is not None:
        try:
            path = Path(local_path(base, settings, purpose="train"))
            if path.is_dir():
                candidates.append(path / "config.json")
        except Exception:
            pass  # not downloaded: fall back to the known shape below
    for c in candidates:
        if c.is_file():
            return Shape.from_config(json.loads(c.read_text())), str(c)
    if base in KNOWN_SHAPES:
        return KNOWN_SHAPES[base], "built-in shape (published config.json)"
    model = resolve(base)  # raises with the list of known names for a typo
    if model.name in REGISTRY and model.name in KNOWN_SHAPES:
        return KNOWN_SHAPES[model.name], "built-in shape"
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(model.train_id, "config.json")
        if isinstance(hit, str):
            return Shape.from_config(json.loads(Path(hit).read_text())), hit
    except Exception:
        pass
    raise UserError(f"no config.json for {base!r} here: download the model or pass a local folder with --base")


def adapted_layers(shape: Shape, layers: int = 0) -> list[int]:
    n = shape.num_hidden_layers
    return list(range(n - layers, n)) if 0 < layers < n else list(range(n))


def lora_tensors(shape: Shape, r: int, targets: list[str], layers: int = 0) -> list[tuple[str, list[int]]]:
    """The (name, shape) of every tensor PEFT saves, named as in adapter_model.safetensors."""
    dims = shape.module_dims()
    out = []
    for layer in adapted_layers(shape, layers):
        for m in targets:
            fan_in, fan_out = dims[m]
            stem = f"base_model.model.model.layers.{layer}.{_SUBMODULE[m]}.{m}"
            out.append((f"{stem}.lora_A.weight", [r, fan_in]))
            out.append((f"{stem}.lora_B.weight", [fan_out, r]))
    return out


def safetensors_size(tensors: list[tuple[str, list[int]]], dtype: str) -> int:
    """Bytes of a safetensors file holding `tensors` (all of `dtype`), header included.

    Mirrors the writer: tensors laid out in name order, header = compact JSON with a
    `__metadata__` entry, padded with spaces to a multiple of 8, preceded by its u64 length."""
    nbytes = DTYPE_BYTES[dtype]
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shp in sorted(tensors):
        n = nbytes
        for d in shp:
            n *= d
        header[name] = {"dtype": SAFETENSORS_DTYPE[dtype], "shape": shp, "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":"))
    hlen = len(text.encode())
    hlen += (8 - hlen % 8) % 8
    return 8 + hlen + offset


@dataclass
class MemoryEstimate:
    device: str
    base_weights_gb: float
    lora_and_optimizer_gb: float
    activations_gb: float
    logits_gb: float
    overhead_gb: float
    total_gb: float
    assumptions: str


@dataclass
class Plan:
    base: str
    shape_source: str
    r: int
    target_modules: list[str]
    trainable_params: int
    base_params: int
    adapter_dtype: str
    adapter_bytes: int
    adapter_mb: float
    max_adapter_mb: float | None
    fits: bool | None
    memory: MemoryEstimate
    per_module: dict[str, int] = field(default_factory=dict)
    layers: int = 0
    warnings: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary_lines(self) -> list[str]:
        pct = 100 * self.trainable_params / max(1, self.base_params)
        lines = [
            f"base model      {self.base}  ({self.shape_source})",
            f"LoRA            r={self.r} on {', '.join(self.target_modules)}"
            + (f" of the last {self.layers} layers" if self.layers else ""),
            f"trainable       {self.trainable_params:,} parameters ({pct:.2f}% of {self.base_params / 1e9:.2f}B)",
            f"adapter file    {self.adapter_bytes:,} bytes = {self.adapter_bytes / MB:.1f} MB in {self.adapter_dtype}"
            + (f" (limit {self.max_adapter_mb:g} MB: {'fits' if self.fits else 'OVER'})" if self.max_adapter_mb else ""),
            f"{self.memory.device} memory      ~{self.memory.total_gb:.1f} GB (weights {self.memory.base_weights_gb:.1f}, "
            f"LoRA+optimizer {self.memory.lora_and_optimizer_gb:.2f}, activations {self.memory.activations_gb:.1f}, "
            f"logits {self.memory.logits_gb:.1f}, overhead {self.memory.overhead_gb:.1f}); {self.memory.assumptions}",
        ]
        lines += [f"WARNING: {w}" for w in self.warnings]
        lines += [f"fits instead:  {s}" for s in self.suggestions]
        return lines


def _count(shape, r, targets, layers=0):
    return count_params(shape, r, targets, layers)


def count_params(shape: Shape, r: int, targets: list[str], layers: int = 0) -> dict[str, int]:
    dims = shape.module_dims()
    n = len(adapted_layers(shape, layers))
    return {m: r * (dims[m][0] + dims[m][1]) * n for m in targets}


def estimate_memory(shape: Shape, trainable: int, *, cuda: bool, four_bit: bool, precision: str, optim: str,
                    batch_size: int, max_length: int, gradient_checkpointing: bool) -> MemoryEstimate:
    """A worst-case estimate (every row at max_length); real peaks are usually lower."""
    gb = 2**30
    act_bytes = 4 if precision == "fp32" else 2
    linear = shape.base_params - shape.vocab_size * shape.hidden_size * (1 if shape.tie_word_embeddings else 2)
    emb = shape.base_params - linear
    if four_bit:  # NF4 with double quantization: ~0.516 bytes/param; embeddings and lm_head stay 16-bit
        weights = linear * 0.516 + emb * 2
    else:
        weights = shape.base_params * act_bytes if cuda else shape.base_params * 4  # CPU keeps float32 masters
    opt_bytes = 2 if optim == "adamw_8bit" else 8  # two moments, 8-bit or float32
    lora = trainable * (4 + 4 + opt_bytes)  # float32 LoRA weights + grads + Adam moments
    tokens = batch_size * max_length
    h = shape.hidden_size
    # Per layer, per token ~34*h bytes of 16-bit activations are kept for backward (Korthikanti et al.
    # 2022, without the seq^2 attention term: SDPA/flash attention does not store it). With
    # gradient checkpointing only each layer's input (2*h bytes) is kept, plus one layer live.
    per_layer = 34 * h * tokens * act_bytes / 2
    if gradient_checkpointing:
        acts = shape.num_hidden_layers * 2 * h * tokens * act_bytes / 2 + per_layer
    else:
        acts = shape.num_hidden_layers * per_layer
    logits = tokens * shape.vocab_size * (act_bytes + 4)  # logits + their float32 upcast for the loss
    overhead = 1.0 * gb if cuda else 0.5 * gb  # CUDA context + allocator fragmentation / Python, torch
    total = weights + lora + acts + logits + overhead
    how = (f"worst case: {batch_size} x {max_length} tokens per micro-batch, {'4-bit' if four_bit else precision} base, "
           f"{optim}, gradient checkpointing {'on' if gradient_checkpointing else 'off'}")
    return MemoryEstimate("GPU" if cuda else "RAM", round(weights / gb, 2), round(lora / gb, 3), round(acts / gb, 2),
                          round(logits / gb, 2), round(overhead / gb, 2), round(total / gb, 1), how)


def plan(base: str, r: int, targets: list[str], *, settings=None, adapter_dtype: str = "auto",
         max_adapter_mb: float | None = None, batch_size: int = 2, max_length: int = 2048,
         target_device: str = "auto", layers: int = 0) -> Plan:
    """The plan for one LoRA shape. `adapter_dtype="auto"`/`target_device="auto"` follow what a run
    would do: a GPU-only registry model (the 8B) trains on CUDA in bf16; elsewhere this machine decides."""
    from ..models import resolve
    from .config import Hardware

    shape, source = model_shape(base, settings)
    dims = shape.module_dims()
    unknown = [m for m in targets if m not in dims]
    if unknown:
        raise UserError(f"target modules {unknown} are not projections of {base}; use some of {', '.join(dims)}")
    if r < 1:
        raise UserError("rank: r must be at least 1")
    try:
        gpu_model = resolve(base).needs_gpu
    except Exception:
        gpu_model = False
    hw = Hardware.detect()
    cuda = hw.cuda or gpu_model if target_device == "auto" else target_device == "cuda"
    if adapter_dtype == "auto":
        adapter_dtype = "bfloat16" if (cuda or hw.bf16) else "float32"
    if adapter_dtype not in DTYPE_BYTES:
        raise UserError(f"adapter dtype {adapter_dtype!r}: use one of auto, {', '.join(DTYPE_BYTES)}")
    if layers > shape.num_hidden_layers:
        raise UserError(f"lora.layers: {layers} is more than the model's {shape.num_hidden_layers} layers; "
                        f"use 0 (all) or at most {shape.num_hidden_layers}")
    per_module = count_params(shape, r, targets, layers)
    trainable = sum(per_module.values())
    size = safetensors_size(lora_tensors(shape, r, targets, layers), adapter_dtype)
    mem = estimate_memory(shape, trainable, cuda=cuda, four_bit=cuda and gpu_model,
                          precision="bf16" if adapter_dtype == "bfloat16" else "fp32",
                          optim="adamw_8bit" if cuda else "adamw_torch", batch_size=batch_size,
                          max_length=max_length, gradient_checkpointing=cuda)
    p = Plan(base=base, shape_source=source, r=r, target_modules=list(targets), trainable_params=trainable,
             base_params=shape.base_params, adapter_dtype=adapter_dtype, adapter_bytes=size,
             adapter_mb=round(size / MB, 2), max_adapter_mb=max_adapter_mb,
             fits=None if max_adapter_mb is None else size <= max_adapter_mb * MB, memory=mem, per_module=per_module,
             layers=layers if 0 < layers < shape.num_hidden_layers else 0)
    if p.fits is False:
        p.warnings.append(f"the adapter would be {size / MB:.1f} MB, over the spec's {max_adapter_mb:g} MB limit")
        p.suggestions = suggest(shape, r, targets, adapter_dtype, max_adapter_mb, layers)
    if hw.cuda and mem.total_gb > hw.gpu_memory_gb > 0:
        p.warnings.append(f"estimated {mem.total_gb:.1f} GB exceeds this GPU's {hw.gpu_memory_gb:.1f} GB: "
                          f"lower max_length or batch_size")
    return p


def suggest(shape: Shape, r: int, targets: list[str], dtype: str, max_mb: float, layers: int = 0) -> list[str]:
    """What fits: the largest rank on the same modules, then the same rank on fewer modules."""
    out = []

    def size(rr, tt):
        return safetensors_size(lora_tensors(shape, rr, tt, layers), dtype)

    def count_params(shape, rr, tt):
        return _count(shape, rr, tt, layers)

    for rr in (r // 2, r // 4, r // 8, 4, 2, 1):
        if rr >= 1 and size(rr, targets) <= max_mb * MB:
            out.append(f"r={rr} on {'all seven' if sorted(targets) == sorted(ALL_MODULES) else ', '.join(targets)} "
                       f"({sum(count_params(shape, rr, targets).values()):,} params, {size(rr, targets) / MB:.1f} MB)")
            break
    for tt, label in ((ATTENTION_MODULES, "the attention projections (q,k,v,o)"), (["q_proj", "v_proj"], "q_proj, v_proj")):
        if set(tt) < set(targets) or set(tt) != set(targets) and set(tt) <= set(ALL_MODULES):
            if size(r, tt) <= max_mb * MB:
                out.append(f"r={r} on {label} ({sum(count_params(shape, r, tt).values()):,} params, "
                           f"{size(r, tt) / MB:.1f} MB)")
                break
    return out
