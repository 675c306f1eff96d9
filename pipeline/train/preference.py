"""Preference rounds (TRL's DPO and KTO) on top of an SFT adapter, and the data they train on.

One row format per method, one reader (`read_pairs`) beside the writers (`self_play_pairs` here,
`pipeline.arena.preference` for the votes):

    dpo  {"id", "prompt": [messages], "chosen": [{"role": "assistant", ...}], "rejected": [...],
          "source": "self_play" | "judge_ranked" | "arena", ...provenance}
    kto  {"id", "prompt": [messages], "completion": [{"role": "assistant", ...}], "label": bool,
          "source": ..., ...provenance}

Prompts are stored without the persona system prompt (as the curated data and the Arena's
conversations are); the trainer frames them with it, so a run trains on what serving sends.
A DPO pair also gives two KTO rows (chosen -> True, rejected -> False); KTO rows give no pair.

Self-play (SPIN, Chen et al. 2024, in spirit): for curated conversations, the SFT adapter answers
the same conversation `samples` times (greedy first, then sampled); the offline rubric judge scores
every reply. chosen = the curated reply, rejected = the model's worst reply; and when the judge
separates the model's own samples clearly (no violation vs one, or >= 2 points), the best and worst
samples make a second, "judge_ranked" pair.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import UserError
from ..jsonl import read_jsonl, write_jsonl
from ..prompting import with_persona_system

PAIRS_FILE = "pairs.jsonl"  # the run folder's own preference data (what was trained on)
JUDGE_MARGIN = 2  # overall points (0-10) between two samples for the judge's ranking to count


def _is_msgs(x) -> bool:
    return isinstance(x, list) and bool(x) and all(isinstance(m, dict) and "role" in m and "content" in m for m in x)


def row_kind(row: dict) -> str | None:
    if _is_msgs(row.get("prompt")) and _is_msgs(row.get("chosen")) and _is_msgs(row.get("rejected")):
        return "dpo"
    if _is_msgs(row.get("prompt")) and _is_msgs(row.get("completion")) and isinstance(row.get("label"), bool):
        return "kto"
    return None


def read_pairs(paths: list[str | Path]) -> list[dict]:
    """Every row of the given JSONL files; raises naming each bad file/line at once."""
    rows, problems = [], []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            problems.append(f"pairs: {path} not found (write one with `python -m pipeline arena export --format dpo`)")
            continue
        try:
            file_rows = read_jsonl(path)
        except ValueError as exc:
            problems.append(f"pairs: {path}: {exc}")
            continue
        for i, r in enumerate(file_rows, 1):
            if row_kind(r) is None:
                problems.append(f"pairs: {path} line {i}: expected a DPO row (prompt, chosen, rejected) or a KTO row "
                                f"(prompt, completion, label true/false), each a list of {{role, content}} messages")
            else:
                rows.append(r)
    if problems:
        raise UserError("preference data:\n  " + "\n  ".join(problems[:20]))
    return rows


def dpo_to_kto(row: dict) -> list[dict]:
    base = {k: v for k, v in row.items() if k not in ("chosen", "rejected")}
    return [{**base, "id": f"{row.get('id', '')}:chosen", "completion": row["chosen"], "label": True},
            {**base, "id": f"{row.get('id', '')}:rejected", "completion": row["rejected"], "label": False}]


def rows_for(method: str, rows: list[dict]) -> tuple[list[dict], int]:
    """(rows in `method`'s format, rows that cannot be used by it: KTO rows for DPO)."""
    if method == "kto":
        out = []
        for r in rows:
            out += dpo_to_kto(r) if row_kind(r) == "dpo" else [r]
        return out, 0
    dpo = [r for r in rows if row_kind(r) == "dpo"]
    return dpo, len(rows) - len(dpo)


def pairs_sha256(rows: list[dict]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# ---- self-play ------------------------------------------------------------------------------------

def self_play_pairs(records, *, engine, adapter: str, judge, system_prompt: str | None, samples: int = 2,
                    max_new_tokens: int = 96, seed: int = 0, echo=None) -> list[dict]:
    """DPO pairs from curated records (see the module docstring). `engine` has `adapter` attached."""
    from ..inference import SamplingConfig
    from ..judges.base import JudgeItem

    def msgs(r) -> list[dict]:
        return [m if isinstance(m, dict) else m.model_dump() for m in r.messages]

    items = [r for r in records if r.messages and msgs(r)[-1]["role"] == "assistant"]
    prompts = [msgs(r)[:-1] for r in items]
    convs = [with_persona_system(p, system_prompt) for p in prompts]
    replies: list[list[str]] = [[] for _ in items]
    for k in range(samples):
        # the first sample is what the model says by default (greedy); the others explore
        s = SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.0 if k == 0 else 0.9,
                           top_p=1.0 if k == 0 else 0.95, seed=seed + k)
        out = engine.generate_batch(convs, adapter, s, batch_size=8)
        for i, text in enumerate(out):
            replies[i].append(text)
        if echo:
            echo(f"  self-play: sample {k + 1}/{samples} for {len(items)} conversations")
    judged = judge.judge_batch([JudgeItem(f"{r.id}#{k}", p, text, r.category)
                                for r, p, reps in zip(items, prompts, replies) for k, text in enumerate(reps)])
    by_id = {v.id: v for v in judged}

    def key(v):  # better = no violation, then a higher overall score
        return (not v.violations, v.overall if v.overall is not None else -1)

    pairs = []
    for r, p, reps in zip(items, prompts, replies):
        curated = msgs(r)[-1]["content"].strip()
        scored = [(text, by_id[f"{r.id}#{k}"]) for k, text in enumerate(reps) if by_id[f"{r.id}#{k}"].ok]
        if not scored:
            continue
        scored.sort(key=lambda tv: key(tv[1]))
        worst, best = scored[0], scored[-1]
        prov = {"record_id": r.id, "category": r.category, "judge": judge.name}
        if worst[0].strip() and worst[0].strip() != curated:
            pairs.append({"id": f"spin:{r.id}", "prompt": p, "chosen": [{"role": "assistant", "content": curated}],
                          "rejected": [{"role": "assistant", "content": worst[0]}], "source": "self_play",
                          "rejected_score": worst[1].overall,
                          "rejected_violations": [x.type for x in worst[1].violations], **prov})
        kb, kw = key(best[1]), key(worst[1])
        if best[0].strip() != worst[0].strip() and kb[0] and (not kw[0] or kb[1] - kw[1] >= JUDGE_MARGIN):
            pairs.append({"id": f"ranked:{r.id}", "prompt": p, "chosen": [{"role": "assistant", "content": best[0]}],
                          "rejected": [{"role": "assistant", "content": worst[0]}], "source": "judge_ranked",
                          "chosen_score": best[1].overall, "rejected_score": worst[1].overall, **prov})
    return pairs


def write_pairs(path: Path, rows: list[dict]) -> None:
    write_jsonl(path, rows)


# ---- the trainers -----------------------------------------------------------------------------------

def load_policy(model_path: str, parent_adapter: Path, res):
    """(PEFT model whose "default" adapter is the SFT parent's, trainable; tokenizer). TRL adds a frozen
    copy of it named "ref" as the reference policy; the base weights stay frozen throughout."""
    from peft import PeftModel

    from .backend_trl import configure_threads, load_base_model, load_tokenizer

    configure_threads(res)
    tokenizer = load_tokenizer(model_path)
    model = load_base_model(model_path, res)  # each rank on its own GPU, as SFT
    # PEFT upcasts the adapter to float32 on load (autocast_adapter_dtype): float32 masters, as SFT trains.
    model = PeftModel.from_pretrained(model, str(parent_adapter), is_trainable=True)
    return model, tokenizer


def build_preference_trainer(model, tokenizer, rows: list[dict], cfg, res, out_dir: Path, callbacks: list,
                             system_prompt: str | None):
    """TRL's DPOTrainer or KTOTrainer over `rows` (already in the method's format), the config's schedule,
    checkpoints in out_dir/checkpoints: the same run folder as SFT."""
    from datasets import Dataset

    from .backend_trl import checkpointing_kwarg, schedule_args

    keep = ("prompt", "chosen", "rejected") if cfg.method == "dpo" else ("prompt", "completion", "label")
    ds = Dataset.from_list([{**{k: r[k] for k in keep}, "prompt": with_persona_system(r["prompt"], system_prompt)}
                            for r in rows])

    def args(config_cls):
        return config_cls(**schedule_args(cfg, res, out_dir), max_length=cfg.max_length, beta=cfg.beta,
                          **checkpointing_kwarg(config_cls, res.gradient_checkpointing))

    if cfg.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        return DPOTrainer(model=model, args=args(DPOConfig), train_dataset=ds, processing_class=tokenizer,
                          callbacks=callbacks)
    from trl import KTOConfig, KTOTrainer

    return KTOTrainer(model=model, args=args(KTOConfig), train_dataset=ds, processing_class=tokenizer,
                      callbacks=callbacks)
