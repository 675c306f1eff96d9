"""`target`: the seed's Phase 4, targeted examples for the weakest traits.

Input: an evaluation's results file (read with `load_results`: per-trait means under
`metrics.adapter.trait_means`, failing replies under `failing`, each with its prompt or
messages and per-trait scores) or a plain plan file
`{"weak_traits": ["encouraging"], "trait_means": {...}, "failing": [{"prompt": "...", ...}]}`.

Weak traits: those whose mean is below the persona's `success_criteria.trait_min` (1.5),
weakest first; `--traits` overrides. For each, `examples_per_trait` slots are spread over the
scenarios where that trait failed (categories of its failing replies, else the whole matrix),
each prompt built from pipeline/prompts/generate_targeted.txt (the seed's ENCOURAGING_PROMPT
pattern: the trait's top rubric anchor to earn, its bottom anchor to avoid, a failing prompt
to do better on). Kept examples must pass the filter *and* score 2 on the targeted trait;
they are deduped against the base set and the eval set, and written as a new dataset version
(base + kept) with a data card that names the base, the weak traits and the counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..llm_client import LLMClient
from ..prompting import last_user_text
from ..spec import Persona
from .dedupe import DedupeConfig, dedupe
from .filter import DEFAULT_MIN_SCORE, filter_examples
from .generate import GenerateConfig, Slot, agenerate
from .records import Example
from .workspace import Progress, now_iso

TARGET_VARIANT_BASE = 5000  # distinct from generate (0..) and balance (1000..)


@dataclass
class TargetPlan:
    weak_traits: list[str]
    trait_means: dict[str, float] = field(default_factory=dict)
    failing: list[dict] = field(default_factory=list)
    source: str = ""


def load_plan(path: Path, persona: Persona, traits: list[str] | None = None) -> TargetPlan:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"evaluation results not found: {path}; run an evaluation or pass a plan file "
                        '{"weak_traits": [...], "failing": [...]}')
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(raw, dict) and "schema_version" in raw:  # the evaluation's results: the typed reader
        from ..evaluation.results import load_results

        res = load_results(path)
        raw = {"trait_means": res.adapter_metrics.get("trait_means") or {}, "failing": res.failing}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected evaluation results or a plan object {{\"weak_traits\": [...]}}")
    means = raw.get("trait_means") or {}
    failing = raw.get("failing") or []
    if traits:
        weak = list(traits)
    elif raw.get("weak_traits"):
        weak = list(raw["weak_traits"])
    else:
        bar = persona.spec.success_criteria.trait_min
        weak = [t for t, m in sorted(means.items(), key=lambda kv: kv[1]) if m is not None and m < bar]
    unknown = [t for t in weak if t not in persona.spec.trait_ids]
    if unknown:
        raise UserError(f"{path}: unknown trait(s) {unknown}; the persona's traits are {persona.spec.trait_ids}")
    return TargetPlan(weak, {k: v for k, v in means.items() if v is not None}, list(failing), str(path))


@dataclass
class TargetConfig:
    examples_per_trait: int = 30  # the seed: 3 scenarios x 10
    min_score: float = DEFAULT_MIN_SCORE
    judge: str = "rubric"
    generate: GenerateConfig = field(default_factory=GenerateConfig)

    def check(self) -> None:
        p = [] if self.examples_per_trait >= 1 else [f"examples_per_trait: {self.examples_per_trait}; must be at least 1"]
        p += self.generate.problems()
        if p:
            raise UserError("target settings:\n  " + "\n  ".join(p))


def _failing_prompt(f: dict) -> str:
    if f.get("prompt"):
        return str(f["prompt"])
    if f.get("messages"):
        return last_user_text(f["messages"])
    return str(f.get("user", ""))


def _fails_trait(f: dict, trait: str) -> bool:
    scores = f.get("traits") or (f.get("verdict") or {}).get("traits") or {}
    return trait not in scores or (scores.get(trait) is not None and scores[trait] < 2)


def matrix_categories(category: str | None, persona: Persona) -> list[str]:
    """The scenario-matrix categories an evaluation category stands for.

    Eval sets use their own coarse categories ("coaching", "task_management", "boundary"), so:
    the same name if the matrix has it, else every matrix category sharing a word with it
    ("coaching" -> productivity_coaching; "task_management" -> task_creation, task_completion,
    task_updates, task_queries; "boundary" -> boundary_testing). Character-shingle similarity
    of prompts was tried first and rejected: it scores 0.10-0.13 for unrelated prompts."""
    cats = list(persona.scenarios.categories)
    if not category:
        return []
    if category in cats:
        return [category]
    words = set(category.lower().split("_"))
    return [c for c in cats if words & set(c.split("_"))]


def plan_slots(persona: Persona, plan: TargetPlan, per_trait: int) -> list[Slot]:
    """`per_trait` slots per weak trait, cycling over (scenario, failing prompt) pairs: the
    scenarios of the categories where that trait failed, else every scenario of the matrix."""
    slots = []
    matrix = persona.scenarios
    known = {s for _, s in matrix.all_scenarios()}
    for ti, trait in enumerate(plan.weak_traits):
        pairs: list[tuple[str, str, str | None]] = []
        for f in plan.failing:
            if not _fails_trait(f, trait):
                continue
            prompt = _failing_prompt(f) or None
            if f.get("scenario") in known:
                pairs.append((matrix.category_of(f["scenario"]), f["scenario"], prompt))
                continue
            for cat in matrix_categories(f.get("category"), persona):
                pairs += [(cat, s, prompt) for s in matrix.categories[cat].scenarios]
        if not pairs:
            pairs = [(c, s, None) for c, s in matrix.all_scenarios()]
        pairs = list(dict.fromkeys(pairs))  # scenario varies fastest, then the failing prompt
        for k in range(per_trait):
            cat, scen, failing = pairs[k % len(pairs)]
            slots.append(Slot(cat, scen, TARGET_VARIANT_BASE + ti * 1000 + k, trait=trait, failing=failing))
    return slots


@dataclass
class TargetResult:
    kept: list[Example] = field(default_factory=list)
    rejected: list[Example] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    requested: int = 0
    stats: dict = field(default_factory=dict)


def target(persona: Persona, plan: TargetPlan, cfg: TargetConfig, *, client: LLMClient, judge,
           base: list[Example], evals: list[tuple[str, str]] = (), progress_path=None, echo=False) -> TargetResult:
    cfg.check()
    if not plan.weak_traits:
        raise UserError(f"no weak trait: every trait mean is at or above trait_min "
                        f"{persona.spec.success_criteria.trait_min} in {plan.source}; pass --traits to target one anyway")
    traits = {t.id: t for t in persona.spec.traits}
    slots = plan_slots(persona, plan, cfg.examples_per_trait)

    def extra_for(slot: Slot) -> dict:
        t = traits[slot.trait]
        note = (f'\nA reply that fell short on this trait answered the request: "{slot.failing}". '
                "Write an example for a similar request that gets it right.\n") if slot.failing else ""
        return {"trait_name": t.name.upper(), "trait_description": t.description, "trait_top": t.rubric[2],
                "trait_bottom": t.rubric[0], "failing_note": note}

    progress = Progress(progress_path, "target", len(slots), echo=echo)
    gen = client.run(agenerate(persona, client, slots, cfg.generate, approved=base, template="generate_targeted",
                             source="targeted", extra_for=extra_for, progress=progress))
    progress.finish()
    out = TargetResult(failed=gen.failed, requested=len(slots))
    filt = filter_examples(gen.examples, judge, cfg.min_score, stage="target")
    out.rejected += filt.rejected
    strong = []
    for ex in filt.kept:
        trait = ex.model_extra["provenance"]["target_trait"]
        if ex.quality.get("traits", {}).get(trait) == 2:
            strong.append(ex)
        else:
            d = ex.model_dump()
            d["rejection"] = {"stage": "target", "time": now_iso(), "reasons": [
                f"targeted trait {trait} scored {ex.quality.get('traits', {}).get(trait)} < 2"]}
            out.rejected.append(Example.model_validate(d))
    dd = dedupe(strong, evals, DedupeConfig(), against=base)
    out.kept, out.rejected = dd.kept, out.rejected + dd.removed
    out.stats = client.stats
    return out


def summary(plan: TargetPlan, r: TargetResult) -> str:
    means = ", ".join(f"{t} {plan.trait_means[t]:.2f}" if t in plan.trait_means else t for t in plan.weak_traits)
    return (f"target: weak traits {means}; requested {r.requested}, kept {len(r.kept)}, "
            f"rejected {len(r.rejected)}, failed calls {len(r.failed)}")
