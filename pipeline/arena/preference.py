"""Arena votes -> preference data for the next adapter (`python -m pipeline arena export --format dpo|kto`).

Rows are `pipeline.train.preference`'s formats, with the vote's provenance (battle id, voter id,
the vote, both model ids, the prompt id, the sampling the replies were decoded with):

    vote        dpo                                    kto
    left/right  one pair: winner's reply chosen,       two rows: winner's reply True,
                loser's rejected                       loser's False
    both_bad    no order -> no pair (counted)          two rows, both False
    tie         no order -> no pair (counted)          two rows, both True (neither is bad: "both bad" is
                                                       the voter's way to say that)

The prompt is the battle's first turn (task context + the voter's first message), which both
sides share; the replies are each side's first reply. Later turns followed different replies,
so they are not a shared prompt (the number of turns is kept in the row).

Battles whose prompt was drawn from the held-out eval set are left out unless asked for:
training on them would leak the set every evaluation is measured on.
"""

from __future__ import annotations

from pathlib import Path

from ..jsonl import write_jsonl


def _first_turn(conv: list[dict]) -> tuple[list[dict], str | None]:
    for i, m in enumerate(conv):
        if m["role"] == "assistant":
            return [dict(x) for x in conv[:i]], m["content"]
    return [dict(x) for x in conv], None


def _prov(v: dict) -> dict:
    return {"source": "arena", "battle_id": v["battle_id"], "voter_id": v["voter_id"], "vote": v["vote"],
            "model_left": v["model_left"], "model_right": v["model_right"], "prompt_id": v.get("prompt_id"),
            "category": v.get("category"), "turns": v.get("turns"), "sampling": v.get("sampling"),
            "voted_at": v.get("voted_at")}


def votes_to_rows(votes: list[dict], fmt: str, *, eval_prompt_ids: set[str] | None = None,
                  include_eval_prompts: bool = False) -> tuple[list[dict], dict]:
    """(rows, counts): every vote accounted for in counts (used / no order / eval prompt / empty)."""
    if fmt not in ("dpo", "kto"):
        raise ValueError(fmt)
    rows: list[dict] = []
    counts = {"votes": len(votes), "used": 0, "no_order": 0, "eval_prompt": 0, "empty": 0}
    for v in votes:
        if not include_eval_prompts and v.get("prompt_id") and v["prompt_id"] in (eval_prompt_ids or set()):
            counts["eval_prompt"] += 1
            continue
        prompt, left = _first_turn(v["conversation_left"])
        _, right = _first_turn(v["conversation_right"])
        if not prompt or not left or not right:
            counts["empty"] += 1
            continue
        reply = {"left": [{"role": "assistant", "content": left}], "right": [{"role": "assistant", "content": right}]}
        prov = _prov(v)
        if fmt == "dpo":
            if v["vote"] not in ("left", "right"):
                counts["no_order"] += 1
                continue
            win, lose = (("left", "right") if v["vote"] == "left" else ("right", "left"))
            rows.append({"id": f"arena:{v['battle_id']}", "prompt": prompt, "chosen": reply[win],
                         "rejected": reply[lose], **prov, "chosen_model": v[f"model_{win}"],
                         "rejected_model": v[f"model_{lose}"]})
        else:
            labels = {"left": {"left": True, "right": False}, "right": {"left": False, "right": True},
                      "tie": {"left": True, "right": True}, "both_bad": {"left": False, "right": False}}[v["vote"]]
            for side in ("left", "right"):
                rows.append({"id": f"arena:{v['battle_id']}:{side}", "prompt": prompt, "completion": reply[side],
                             "label": labels[side], **prov, "model": v[f"model_{side}"]})
        counts["used"] += 1
    return rows, counts


def export_preferences(votes: list[dict], out: str | Path, fmt: str, persona_dir: Path | None = None,
                       include_eval_prompts: bool = False) -> dict:
    """Write the rows to `out` (JSONL); return the counts."""
    ids: set[str] = set()
    if persona_dir is not None and (Path(persona_dir) / "eval.yaml").is_file():
        from ..evaluation.evalset import load_eval_set

        ids = {p.id for p in load_eval_set(Path(persona_dir) / "eval.yaml")}
    rows, counts = votes_to_rows(votes, fmt, eval_prompt_ids=ids, include_eval_prompts=include_eval_prompts)
    write_jsonl(out, rows)
    counts["rows"] = len(rows)
    return counts
