"""How much GPU memory a job will hold, planned before it starts, from the model's config alone.

The job launcher (`pipeline.jobs.JobManager.start`) frees the studio's resident engine and then
refuses a job whose plan does not fit in the free memory, naming what to stop. A Train job brings
its plan (`pipeline.train.plan`, from its TrainConfig); for the other GPU jobs the launcher asks
`planned_gpu_gb(kind, argv, ...)`, which reads the same flags the job's command line will.

An Evaluate job serves the base model (bf16 or fp16 on a GPU: 2 bytes per weight, as
`pipeline.models.serving_dtype` loads it) with the adapter, batch by batch. Worked example for
Llama-3.1-8B (8.03e9 parameters; 32 layers, 8 KV heads x 128), batch 8, 1024 prompt + 96 new tokens:

    weights   8.03e9 x 2 B                                  = 14.96 GiB
    KV cache  2 (k, v) x 32 layers x 8 x 128 x 2 B = 128 KiB per token
              x 8 rows x 1120 tokens                          =  1.09 GiB
    prefill   8 x 1024 tokens x (4 x 4096 + 2 x 14336) x 2 B  =  0.69 GiB (one layer's activations live)
    logits    8 rows x 128256 x 4 B x 2 (float32, last position, and its softmax) = 0.01 GiB
    overhead  CUDA context + allocator                        =  1.0 GiB
    total                                                     ~ 17.7 GiB

so it does not fit beside a 4-bit training job (~9 GB) on a 24 GB card, and the launcher says so
before either loads a weight.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)

GB = 2**30
PROMPT_TOKENS = 1024  # worst case per prompt: persona system prompt + task context + the user turn
CUDA_OVERHEAD_GB = 1.0  # as pipeline.train.plan: the CUDA context and allocator fragmentation
GPU_KINDS = ("train", "evaluate")  # the job kinds that load a model onto the GPU


def serving_gb(shape, *, batch_size: int, prompt_tokens: int, new_tokens: int, adapter_bytes: int = 0) -> float:
    """GiB to serve `shape` (a `pipeline.train.plan.Shape`) in 16-bit, one batch at a time (see the docstring)."""
    tokens = prompt_tokens + new_tokens
    weights = shape.base_params * 2
    kv = 2 * shape.num_hidden_layers * shape.num_key_value_heads * shape.head_dim * 2 * batch_size * tokens
    prefill = batch_size * prompt_tokens * (4 * shape.hidden_size + 2 * shape.intermediate_size) * 2
    logits = batch_size * shape.vocab_size * 4 * 2
    total = weights + adapter_bytes + kv + prefill + logits + CUDA_OVERHEAD_GB * GB
    return round(total / GB, 1)


def _evaluate_args(argv: list[str]) -> argparse.Namespace:
    """The Evaluate job's own flags, parsed by the CLI's own parser (so the plan reads what the job will)."""
    from .commands import evaluate

    parser = argparse.ArgumentParser(prog="pipeline", exit_on_error=False)
    evaluate.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def evaluate_gb(argv: list[str], settings) -> float:
    """The plan of `python -m pipeline evaluate <argv>`: the run's base model (or `--base`), served."""
    from .runs import RunFolder, trained_on
    from .train.plan import model_shape

    args = _evaluate_args(argv)
    run = RunFolder(Path(args.run))
    base = args.base or trained_on(run) or settings.base_model
    shape, _ = model_shape(base, settings)
    adapter = run.adapter_dir / "adapter_model.safetensors"
    return serving_gb(shape, batch_size=args.batch_size, prompt_tokens=PROMPT_TOKENS, new_tokens=args.max_new_tokens,
                      adapter_bytes=adapter.stat().st_size if adapter.is_file() else 0)


def train_gb(argv: list[str], settings) -> float:
    """The plan of `python -m pipeline train --resume RUN` (the run's own config.yaml) or
    `train --config FILE`: `pipeline.train.plan`, as the run itself prints it."""
    from .runs import RunFolder
    from .train.config import load_config
    from .train.plan import plan

    def flag(name: str) -> str | None:
        return argv[argv.index(name) + 1] if name in argv[:-1] else None

    if flag("--resume"):
        cfg = load_config(RunFolder(Path(flag("--resume"))).config_path, run=True)
    elif flag("--config"):
        cfg = load_config(flag("--config"))
    else:
        raise ValueError("neither --resume nor --config: the command-line flags are not planned here")
    return plan(cfg.base_model, cfg.lora.r, cfg.lora.target_modules, settings=settings, batch_size=cfg.batch_size,
                max_length=cfg.max_length, layers=cfg.lora.layers).memory.total_gb


def planned_gpu_gb(kind: str, argv: list[str], settings) -> float | None:
    """GiB a job of `kind` started as `python -m pipeline <argv>` plans to hold; None: not a GPU job.
    0.0 when the job loads a model but its size cannot be planned here (the launcher then frees the
    studio's engine for it and refuses nothing). A Train tab start brings its plan itself
    (`pipeline.train.monitor.start`); this covers a resume and any other caller."""
    if kind not in GPU_KINDS:
        return None  # data jobs call endpoints, they load no model here
    try:
        return evaluate_gb(argv, settings) if kind == "evaluate" else train_gb(argv, settings)
    except (Exception, SystemExit) as exc:  # argparse exits on a bad flag; the job itself will say which
        log.warning("no GPU plan for `%s`: %s", " ".join(argv), exc)
        return 0.0
