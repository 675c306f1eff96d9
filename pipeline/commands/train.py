"""`python -m pipeline train ...`: train a LoRA adapter, plan its size first, follow a run.

    python -m pipeline train run --persona taskmaster --base smollm2-135m --out runs/demo --preset cpu-demo
    python -m pipeline train run --resume runs/demo             # continue from the last checkpoint
    python -m pipeline train run --method dpo --from-run runs/demo --out runs/demo-dpo   # preference round
    python -m pipeline train run --method kto --from-run runs/demo --pairs votes-kto.jsonl --self-play 0
    python -m pipeline train --preset cpu-demo ...              # the same as `train run` (kept for scripts)
    python -m pipeline train plan --base llama-3.1-8b-instruct --rank 16 --targets all [--json]
    python -m pipeline train status runs/demo [--json]
    python -m pipeline train list [--json]

Under several GPUs the same entry point runs unchanged with
`accelerate launch -m pipeline train ...` (the Trainer reads the launcher's environment).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..runs import RunFolder, new_run

TARGET_ALIASES = {
    "all": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "attention": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "attn": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mlp": ["gate_proj", "up_proj", "down_proj"],
}


def parse_targets(text: str) -> list[str]:
    out: list[str] = []
    for part in (p.strip() for p in text.replace(" ", ",").split(",")):
        if not part:
            continue
        for m in TARGET_ALIASES.get(part, [part]):
            if m not in out:
                out.append(m)
    return out


def register(sub) -> None:
    from ..train.config import preset_names

    p = sub.add_parser("train", help="train a LoRA adapter (train run|plan|status|list; plain `train` = `train run`)",
                       description=__doc__.split("\n\n")[0])
    _run_flags(p, preset_names(), suppress=False)
    p.set_defaults(handler=_train)

    s = p.add_subparsers(dest="train_cmd", metavar="[run|plan|status|list]")
    s.required = False
    rn = s.add_parser("run", help="train a LoRA adapter into a run folder (the same as plain `train`)")
    _run_flags(rn, preset_names(), suppress=True)
    rn.set_defaults(handler=_train)
    pl = s.add_parser("plan", help="trainable parameters, adapter file size and memory, before training")
    pl.add_argument("--base", dest="plan_base", help="base model (default: the studio's)")
    pl.add_argument("--rank", dest="plan_rank", type=int, default=16)
    pl.add_argument("--targets", dest="plan_targets", default="all", help="comma list or all|attention|mlp")
    pl.add_argument("--dtype", default="auto", help="adapter dtype: auto (what a run saves), bfloat16, float32")
    pl.add_argument("--max-mb", type=float, help="size limit (default: the persona spec's deployment.max_adapter_mb)")
    pl.add_argument("--persona", dest="plan_persona", help="persona whose limit applies (default: the studio's)")
    pl.add_argument("--batch-size", dest="plan_batch", type=int, default=2)
    pl.add_argument("--max-length", dest="plan_len", type=int, default=2048)
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(handler=_plan)
    st = s.add_parser("status", help="state, progress and summary of a run folder")
    st.add_argument("run")
    st.add_argument("--json", action="store_true")
    st.set_defaults(handler=_status)
    ls = s.add_parser("list", help="the run folders under runs/, newest first")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=_list)


def _run_flags(p, presets, suppress: bool) -> None:
    """The flags of `train run` (and of plain `train`, kept for scripts). In the `run` subparser
    they default to "not given", so they never undo what was given before `run`."""
    import argparse

    def d(value):
        return argparse.SUPPRESS if suppress else value

    p.add_argument("--preset", default=d(None), choices=presets,
                   help="starting config (default: seed; with --method dpo|kto, that method's preset)")
    p.add_argument("--method", default=d(None), choices=["sft", "dpo", "kto"], help="sft (default), or a preference round on --from-run")
    p.add_argument("--from-run", default=d(None), dest="from_run", metavar="RUN", help="dpo/kto: the SFT run whose adapter to continue")
    p.add_argument("--pairs", action="append", default=d([]), metavar="FILE",
                   help="dpo/kto data: JSONL from `arena export --format dpo|kto` (repeatable)")
    p.add_argument("--self-play", default=d(None), dest="self_play", type=int, metavar="N",
                   help="dpo/kto: curated conversations to self-play into pairs (default 64; 0 = none)")
    p.add_argument("--beta", default=d(None), type=float, help="dpo/kto beta (default 0.1)")
    p.add_argument("--report-to", default=d(None), dest="report_to", choices=["tensorboard", "trackio", "wandb", "none"],
                   help="also log the run to this tracker (default tensorboard, local: tensorboard --logdir runs)")
    p.add_argument("--config", default=d(None), help="a YAML TrainConfig (or a run's config.yaml) to start from instead of a preset")
    p.add_argument("--persona", default=d(None), help="persona name or folder (default: the studio's)")
    p.add_argument("--base", default=d(None), help="base model: registry name, local folder or Hub id (default: the studio's)")
    p.add_argument("--data", default=d(None), help="JSONL of records (default: <persona>/train.jsonl); approved records only")
    p.add_argument("--out", default=d(None), help="run folder (default: runs/<time>-<preset>)")
    p.add_argument("--resume", default=d(None), metavar="RUN", help="continue RUN from its last checkpoint, with its own config")
    p.add_argument("--set", action="append", default=d([]), metavar="KEY=VALUE",
                   help="any TrainConfig setting, e.g. --set lr_scheduler=linear --set lora.dropout=0.05")
    for flag, key, typ in [("--rank", "lora.r", int), ("--alpha", "lora.alpha", int), ("--dropout", "lora.dropout", float),
                           ("--epochs", "epochs", float), ("--batch-size", "batch_size", int),
                           ("--grad-accum", "grad_accum", int), ("--lr", "learning_rate", float),
                           ("--warmup-steps", "warmup_steps", int), ("--max-length", "max_length", int),
                           ("--max-steps", "max_steps", int), ("--save-steps", "save_steps", int),
                           ("--threads", "num_threads", int), ("--seed", "seed", int)]:
        p.add_argument(flag, dest=key, type=typ, default=d(None), help=f"TrainConfig {key}")
    p.add_argument("--targets", default=d(None), help="comma list of modules or all|attention|mlp")
    p.add_argument("--backend", default=d(None), choices=["auto", "trl", "unsloth"])
    p.add_argument("--precision", default=d(None), choices=["auto", "bf16", "fp16", "fp32"])
    p.add_argument("--batching", default=d(None), choices=["padded", "grouped", "packed"])
    p.add_argument("--save-strategy", default=d(None), dest="save_strategy", choices=["epoch", "steps"])
    p.add_argument("--quiet", action="store_true", default=d(False), help="no per-step lines (the progress bar stays)")


def _list(args, settings) -> int:
    from ..train.runner import run_rows

    rows = run_rows(settings.runs_dir)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no runs under {settings.runs_dir}; start one with `python -m pipeline train --preset cpu-demo`")
    for r in rows:
        loss = f"loss {r['first_loss']:.3f} -> {r['final_loss']:.3f}" if r.get("final_loss") is not None else ""
        print(f"{r['run']:<32} {r['state']:<9} {r['base_model'] or '':<20} r={r['r']} {loss}  {r['path']}")
    return 0


def _set(d: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    for k in parts[:-1]:
        d = d.setdefault(k, {})
    d[parts[-1]] = value


def build_config_values(args, settings) -> dict:
    """Preset (or --config file) + flags -> the raw dict `parse_config` validates."""
    import yaml

    from ..train.config import _deep_merge, preset_overrides

    if args.config:
        raw = yaml.safe_load(Path(args.config).read_text(encoding="utf-8")) or {}
        base = raw.get("train", raw) if isinstance(raw, dict) else {}
    else:
        args.preset = args.preset or (args.method if args.method in ("dpo", "kto") else "seed")
        base = preset_overrides(args.preset)
    flags: dict = {}
    for key in ("lora.r", "lora.alpha", "lora.dropout", "epochs", "batch_size", "grad_accum", "learning_rate",
                "warmup_steps", "max_length", "max_steps", "save_steps", "num_threads", "seed", "backend",
                "precision", "batching", "save_strategy", "data", "method", "from_run", "self_play", "beta",
                "report_to"):
        v = getattr(args, key, None)
        if v is not None:
            _set(flags, key, v)
    if args.targets:
        _set(flags, "lora.target_modules", parse_targets(args.targets))
    if args.pairs:
        flags["pairs"] = list(args.pairs)
    flags["persona"] = args.persona or base.get("persona") or settings.persona
    flags["base_model"] = args.base or base.get("base_model") or settings.base_model
    for item in args.set:
        if "=" not in item:
            raise UserError(f"--set {item!r}: write KEY=VALUE, e.g. --set lr_scheduler=linear")
        k, v = item.split("=", 1)
        _set(flags, k.strip(), yaml.safe_load(v))
    return _deep_merge(base, flags)


def _train(args, settings) -> int:
    from ..train.runner import run_training

    if args.resume:
        summary = run_training(None, args.resume, settings, resume=True, echo=not args.quiet)
    else:
        values = build_config_values(args, settings)
        out = Path(args.out) if args.out else new_run(settings, args.preset or "config").path
        summary = run_training(values, out, settings, echo=not args.quiet)
    return 0 if summary.get("state") in ("finished", "stopped") or summary.get("stopped") else 1


def _plan(args, settings) -> int:
    from ..spec import SpecError, load_persona
    from ..train.plan import plan
    from ..train.runner import persona_folder

    limit = args.max_mb
    if limit is None:
        try:
            limit = load_persona(persona_folder(args.plan_persona or settings.persona, settings)).spec.deployment.max_adapter_mb
        except SpecError:
            limit = None
    targets = parse_targets(args.plan_targets)
    if not targets:
        raise UserError("--targets: name at least one module (e.g. q_proj,v_proj or all)")
    p = plan(args.plan_base or settings.base_model, args.plan_rank, targets, settings=settings,
             adapter_dtype=args.dtype, max_adapter_mb=limit, batch_size=args.plan_batch, max_length=args.plan_len)
    if args.json:
        print(json.dumps(p.to_dict(), indent=2))
    else:
        print("\n".join(p.summary_lines()))
    return 0


def _status(args, settings) -> int:
    run = RunFolder(args.run)
    st = run.status()
    metrics = run.metrics()
    summary = run.summary() or None
    if args.json:
        print(json.dumps({"status": st, "last_metrics": metrics[-1] if metrics else None, "summary": summary}, indent=2))
        return 0
    print(f"{args.run}: {st['state']}" + (f" ({st['error']})" if st.get("error") else ""))
    if st.get("max_steps"):
        print(f"  step {st.get('step', 0)}/{st['max_steps']}" + (f", ETA {st['eta_s']:.0f}s" if st.get("eta_s") and st["state"] == "running" else ""))
    if metrics:
        print(f"  loss {metrics[0]['loss']:.4f} (step {metrics[0]['step']}) -> {metrics[-1]['loss']:.4f} (step {metrics[-1]['step']})")
    if summary:
        print(f"  adapter {summary['adapter_size_bytes']:,} bytes, runtime {summary['runtime_s']}s, "
              f"{summary['n_examples']} conversations, data sha256 {summary['data_sha256'][:12]}")
    if st["resumable"]:
        print(f"  resume with: python -m pipeline train --resume {args.run}")
    from ..train.monitor import tracker_command

    tracker = tracker_command(args.run)
    if tracker:
        print(f"  tracker: {tracker}")
    return 0
