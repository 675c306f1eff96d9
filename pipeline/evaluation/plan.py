"""Phase 4: a targeted generation plan from an evaluation (the seed's "Fixing Weak Trait").

    build_plan(results) -> {"weak_traits": [...], "trait_means": {...}, "failing": [{id, prompt,
                            reply, reasons, ...}], "scenarios": [...], "prompts": [...]}

Weak traits are those below the spec's trait_min, weakest first; failing replies are the
adapter's replies with a violation or a score below the overall bar. `scenarios` are
one-line scenario descriptions per weak trait (from the failing prompts' categories), and
`prompts` the generation prompts (the seed's ENCOURAGING_PROMPT pattern: the trait's top
anchor to earn, its bottom anchor to avoid). The data pipeline's `data target` stage reads
this dict (or the evaluation results, whose `plan` and `failing` keys hold it).
"""

from __future__ import annotations

from ..spec import PersonaSpec
from .results import RESULTS_FILE


def failing_rows(rows: list[dict], spec: PersonaSpec) -> list[dict]:
    bar = spec.success_criteria.overall_min
    out = []
    for r in rows:
        v = r["verdict"]
        reasons = []
        if not v.get("ok"):
            continue
        if v["violations"]:
            reasons += [f"violation {x['type']}: \"{x['quote']}\"" for x in v["violations"]]
        if v["overall"] is not None and v["overall"] < bar:
            reasons.append(f"overall {v['overall']} < {bar}")
        low = [t for t, s in v["traits"].items() if s < 2]
        if reasons:
            out.append({"id": r["id"], "category": r.get("category"), "prompt": r["messages"][-1]["content"],
                        "messages": r["messages"], "reply": r.get("reply"), "traits": v["traits"],
                        "low_traits": low, "reasons": reasons})
    return out


def build_plan(results: dict, spec: PersonaSpec | None = None, per_trait: int = 3) -> dict:
    means = ((results.get("metrics") or {}).get("adapter") or {}).get("trait_means") or {}
    trait_min = spec.success_criteria.trait_min if spec else 1.5
    weak = [t for t, m in sorted(means.items(), key=lambda kv: (kv[1] is None, kv[1] or 0))
            if m is None or m < trait_min]
    failing = results.get("failing") or []
    traits = {t.id: t for t in spec.traits} if spec else {}
    scenarios, prompts = [], []
    for t in weak:
        fails = [f for f in failing if t in (f.get("low_traits") or [t])]
        cats = []
        for f in fails:
            if f.get("category") and f["category"] not in cats:
                cats.append(f["category"])
        examples = [f["prompt"] for f in fails][:per_trait]
        for k in range(per_trait):
            src = examples[k] if k < len(examples) else None
            cat = cats[k % len(cats)] if cats else None
            scen = (f"{cat}: a user says something like \"{src}\"" if src else
                    f"{cat or 'any category'}: a situation that calls for the {t} trait")
            scenarios.append({"trait": t, "category": cat, "scenario": scen, "failing_prompt": src})
        tr = traits.get(t)
        prompts.append({
            "trait": t,
            "prompt": (f"Generate a training example that STRONGLY demonstrates the {tr.name.upper() if tr else t.upper()} "
                       f"trait. The reply should earn a 2: {tr.rubric[2] if tr else 'the top rubric anchor'}. "
                       f"It must avoid a 0: {tr.rubric[0] if tr else 'the bottom rubric anchor'}.\n\nScenario: {{scenario}}"),
        })
    return {"weak_traits": weak, "trait_means": means,
            "failing": [{k: f.get(k) for k in ("id", "category", "prompt", "messages", "reply", "traits", "reasons")}
                        for f in failing],
            "scenarios": scenarios, "prompts": prompts,
            "command": f"python -m pipeline data target runs/<id>/eval/{RESULTS_FILE}" if weak else None}
