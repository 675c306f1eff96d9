"""`python -m pipeline respond --base NAME [--adapter DIR] --prompts FILE --out FILE.jsonl`"""

from __future__ import annotations

from pathlib import Path

from ..inference import SamplingConfig, default_sampling


def add_sampling_args(p, max_new_tokens: int) -> None:
    # temperature / top-p / repetition penalty default to the base model's own (pipeline.models):
    # greedy for the embedded 135M model, the seed's 0.7 / 0.9 for the 8B.
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens)
    p.add_argument("--temperature", type=float, default=None, help="0 = greedy (default: the base model's)")
    p.add_argument("--top-p", type=float, default=None, help="default: the base model's")
    p.add_argument("--repetition-penalty", type=float, default=None, help="default: the base model's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)


def sampling_overrides(args) -> dict:
    """The sampling flags the user set (None = the base model's default)."""
    return {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_p": args.top_p,
            "repetition_penalty": args.repetition_penalty, "seed": args.seed}


def sampling_from(args, base: str) -> SamplingConfig:
    return default_sampling(base, **sampling_overrides(args))


def register(sub) -> None:
    from ..evaluation.respond import EVAL_MAX_NEW_TOKENS

    p = sub.add_parser("respond", help="batch replies for a prompt file (eval.yaml or JSONL), base or adapter")
    p.add_argument("--base", help="base model name or folder (default: the studio's base model)")
    p.add_argument("--adapter", help="PEFT adapter folder (default: none, the base model answers)")
    p.add_argument("--prompts", required=True, help="eval.yaml or JSONL of {id, prompt} / {id, messages}")
    p.add_argument("--out", required=True, help="output JSONL")
    p.add_argument("--persona", help="persona folder whose system prompt frames the conversations")
    p.add_argument("--no-system-prompt", action="store_true", help="do not add the persona system prompt")
    add_sampling_args(p, EVAL_MAX_NEW_TOKENS)
    p.set_defaults(handler=_respond)


def _respond(args, settings) -> int:
    from ..evaluation.respond import RespondConfig, respond

    base = args.base or settings.base_model
    cfg = RespondConfig(base=base, prompts=Path(args.prompts), out=Path(args.out),
                        adapter=Path(args.adapter) if args.adapter else None, persona=args.persona,
                        sampling=sampling_from(args, base), batch_size=args.batch_size,
                        system_prompt=not args.no_system_prompt)
    rows = respond(cfg, settings, echo=lambda m: print(m, flush=True))
    print(f"wrote {len(rows)} replies to {args.out} (sampling {cfg.sampling.to_dict()})")
    return 0
