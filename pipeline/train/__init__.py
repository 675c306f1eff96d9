"""The training stage: a persona's approved conversations -> a LoRA adapter in `runs/<id>/`.

    config.py          TrainConfig (the seed's defaults), presets, validation of every problem at once
    plan.py            trainable parameters, adapter file size and memory before any weight is loaded
    data.py            records -> conversations with the persona prompt -> ids + assistant-only labels
    backend_trl.py     TRL SFTTrainer + PEFT (CPU, or CUDA without unsloth); the trainer both backends share
    backend_unsloth.py unsloth FastLanguageModel, 4-bit (CUDA)
    runner.py          writes the run folder (pipeline/runs.py): config, status, metrics, checkpoints, adapter, summary
    monitor.py         what the Train tab calls (form, plan, start/stop/resume a job, its progress); `studio_api` is the same module

`python -m pipeline train ...` (pipeline/commands/train.py) and the studio's Train tab both call
`run_training`, the latter in a background job (`python -m pipeline train ...` via JobManager).
"""

from .config import ConfigError, TrainConfig, parse_config, preset, preset_names  # noqa: F401


def run_training(config, out_dir, settings, **kw) -> dict:
    """Train into `out_dir` and return the train_summary.json dict (see pipeline.train.runner)."""
    from .runner import run_training as _run

    return _run(config, out_dir, settings, **kw)
