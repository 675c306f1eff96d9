"""`generate`: new training examples from the persona spec and the scenario matrix.

One chat call per example (the seed's `generate_batch(scenarios, prompt, examples_per_scenario)`
shape), run concurrently through `LLMClient`. Each call asks for one JSON object
`{"context", "user", "assistant"}`; the prompt (pipeline/prompts/generate_*.txt) varies the
user message along four axes chosen from (scenario, variant) so the set is not 228 copies of
the same polite sentence:

    tone      neutral, hurried, casual, stressed, upbeat, terse, apologetic
    length    one short line, one or two sentences, a short paragraph with background
    typos     none, a couple of typos, all lower case with no punctuation
    context   one in three examples of task-data scenarios carry a "Task API context"

Few-shot examples come from the approved set (the shipped curated examples of the same
scenario, else the spec's own examples). Variants are numbered, and the variant number is
part of the prompt and the sampling seed, so every example is a distinct cached request:
rerunning a finished job makes zero calls and a killed job resumes where it stopped.

Every record keeps its provenance: generator model, prompt version (name + hash of the
template text), scenario, variant, request key, time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from ..errors import UserError
from ..jsonl import write_jsonl
from ..llm_client import ChatResult, ClientFailure, LLMClient
from ..prompting import CONTEXT_HEADER
from ..spec import Persona
from .records import Example
from .workspace import Progress, now_iso

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
EXAMPLE_SCHEMA = {
    "type": "object",
    "required": ["user", "assistant"],
    "properties": {
        "user": {"type": "string", "minLength": 2},
        "assistant": {"type": "string", "minLength": 10},
        "context": {"type": ["string", "null"]},
    },
}
TONES = ["neutral and polite", "hurried", "casual and chatty", "stressed", "upbeat", "terse", "apologetic"]
LENGTHS = ["one short line", "one or two sentences", "a short paragraph with some background"]
TYPOS = ["no typos", "a couple of natural typos", "all lower case with no punctuation"]
# Categories whose answers depend on the user's task data: some examples carry a context.
CONTEXT_CATEGORIES = {"task_completion", "task_updates", "task_queries"}


def load_prompt(name: str) -> tuple[str, str]:
    """(template text, version) for pipeline/prompts/<name>.txt; version = name@sha256[:8]."""
    path = PROMPTS_DIR / f"{name}.txt"
    text = path.read_text(encoding="utf-8")
    return text, f"{name}@{hashlib.sha256(text.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class Slot:
    """One example to generate: which scenario, which variant (and for targeted work, which trait)."""
    category: str
    scenario: str
    variant: int
    trait: str | None = None
    failing: str | None = None  # a failing reply's prompt that motivated this slot (target stage)


@dataclass
class GenerateConfig:
    examples_per_scenario: int = 3  # as in the seed
    scenarios: list[str] | None = None  # None: every scenario of the matrix
    limit: int | None = None  # stop the plan at this many examples (e.g. 228)
    start_variant: int = 0
    temperature: float = 0.9
    max_tokens: int = 400
    few_shot: int = 2
    max_concurrency: int = 8
    max_requests: int | None = None
    max_cost_usd: float | None = None

    def problems(self, persona: Persona | None = None) -> list[str]:
        p = []
        if self.examples_per_scenario < 1:
            p.append(f"examples_per_scenario: {self.examples_per_scenario}; must be at least 1")
        if self.limit is not None and self.limit < 1:
            p.append(f"limit: {self.limit}; must be at least 1 (or unset)")
        if not 0 <= self.temperature <= 2:
            p.append(f"temperature: {self.temperature}; must be between 0 and 2")
        if self.max_tokens < 50:
            p.append(f"max_tokens: {self.max_tokens}; must be at least 50 (a reply is up to ~120 words)")
        if self.few_shot < 0:
            p.append(f"few_shot: {self.few_shot}; must be 0 or more")
        if self.max_concurrency < 1:
            p.append(f"max_concurrency: {self.max_concurrency}; must be at least 1")
        if persona is not None and self.scenarios:
            known = {s for _, s in persona.scenarios.all_scenarios()}
            unknown = [s for s in self.scenarios if s not in known]
            if unknown:
                p.append(f"scenarios: not in scenarios.yaml: {unknown}; pick from `python -m pipeline data stats`")
        return p

    def check(self, persona: Persona | None = None) -> None:
        problems = self.problems(persona)
        if problems:
            raise UserError("generate settings:\n  " + "\n  ".join(problems))


@dataclass
class GenerateResult:
    examples: list[Example] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # {"slot", "reason", "request_key"}
    stats: dict = field(default_factory=dict)


def plan(persona: Persona, cfg: GenerateConfig) -> list[Slot]:
    """Scenario x variant slots, in matrix order, cut at `limit`."""
    pairs = [(c, s) for c, s in persona.scenarios.all_scenarios() if not cfg.scenarios or s in cfg.scenarios]
    slots = [Slot(c, s, cfg.start_variant + v) for v in range(cfg.examples_per_scenario) for c, s in pairs]
    # Variant-major order so a `limit` cuts evenly across scenarios rather than dropping the last ones.
    return slots[: cfg.limit] if cfg.limit else slots


def _h(*parts) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def _style(slot: Slot) -> dict:
    h = _h(slot.scenario, slot.variant)
    with_context = slot.category in CONTEXT_CATEGORIES and (h >> 20) % 3 == 0
    return {
        "tone": TONES[h % len(TONES)],
        "length": LENGTHS[(h >> 4) % len(LENGTHS)],
        "typos": TYPOS[(h >> 8) % len(TYPOS)] if (h >> 12) % 3 == 0 else TYPOS[0],
        "context_instruction": (
            f'Give a short "{CONTEXT_HEADER}" block (a few of the user\'s tasks with titles, priorities and '
            "due dates) in `context`; the reply must use only what it says."
            if with_context else "No task data is available: set `context` to null."),
        "context_field": f'"{CONTEXT_HEADER} ..."' if with_context else "null",
    }


def few_shot_pool(persona: Persona, approved: list[Example]) -> dict[str, list[tuple[str, str]]]:
    """scenario -> [(user, assistant)] from approved single-turn examples; "*" -> the spec's examples."""
    pool: dict[str, list[tuple[str, str]]] = {"*": [(e.user, e.assistant.strip()) for e in persona.spec.examples]}
    for ex in approved:
        if ex.review.status == "approved" and len(ex.user_turns) == 1:
            pool.setdefault(ex.scenario, []).append((ex.first_user, ex.assistant_turns[-1]))
    return pool


def _format_spec(persona: Persona) -> dict:
    s = persona.spec
    return {
        "display_name": s.display_name, "identity": s.identity.strip(), "system_prompt": s.system_prompt.strip(),
        "traits": "\n".join(f"- {t.name}: {t.description}. Top score means: {t.rubric[2]}" for t in s.traits),
        "preferred": "; ".join(s.vocabulary.preferred), "avoided": "; ".join(s.vocabulary.avoided),
        "generic_ai": "; ".join(s.vocabulary.generic_ai_phrases) or "(none listed)",
        "pattern": " -> ".join(f"{p.id} ({p.description})" for p in s.pattern),
        "boundaries": "\n".join(f"- {b.rule}" for b in s.boundaries),
    }


def build_messages(persona: Persona, slot: Slot, pool: dict, n_shots: int, template: str = "generate_user",
                   extra: dict | None = None) -> tuple[list[dict], str]:
    """The chat request for one slot, and the prompt version it used."""
    sys_text, sys_ver = load_prompt("generate_system")
    user_text, user_ver = load_prompt(template)
    shots = pool.get(slot.scenario) or pool.get("*", [])
    if shots and n_shots:
        start = slot.variant % len(shots)
        chosen = [shots[(start + i) % len(shots)] for i in range(min(n_shots, len(shots)))]
        few = "\n".join(f"User: {u}\n{persona.spec.display_name}: {a}\n" for u, a in chosen)
    else:
        few = "(none)"
    values = {"category": slot.category, "scenario": slot.scenario, "variant": slot.variant, "few_shot": few,
              **_style(slot), **(extra or {})}
    msgs = [{"role": "system", "content": sys_text.format(**_format_spec(persona))},
            {"role": "user", "content": user_text.format(**values)}]
    return msgs, f"{sys_ver}+{user_ver}"


def to_example(slot: Slot, result: ChatResult, prompt_version: str, source: str = "generated") -> Example:
    """Turn a validated reply into a record; raises ValueError with the reason when it cannot."""
    data = result.data or {}
    user, assistant = str(data.get("user", "")).strip(), str(data.get("assistant", "")).strip()
    context = data.get("context")
    msgs = []
    if isinstance(context, str) and context.strip() and context.strip().lower() != "null":
        ctx = context.strip()
        msgs.append({"role": "system", "content": ctx if ctx.startswith(CONTEXT_HEADER) else f"{CONTEXT_HEADER}\n{ctx}"})
    msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    prov = {"generator_model": result.model, "prompt_version": prompt_version, "scenario": slot.scenario,
            "category": slot.category, "variant": slot.variant, "request_key": result.request_key,
            "cached": result.cached, "time": now_iso()}
    if slot.trait:
        prov["target_trait"] = slot.trait
    if slot.failing:
        prov["failing_prompt"] = slot.failing
    try:
        return Example(id=f"{'tgt' if source == 'targeted' else 'gen'}-{result.request_key[:12]}",
                       category=slot.category, scenario=slot.scenario, messages=msgs, source=source,
                       review={"status": "pending", "note": ""}, provenance=prov)
    except ValidationError as exc:
        raise ValueError("reply is not a usable example: " + "; ".join(e["msg"] for e in exc.errors())) from None


async def agenerate(persona: Persona, client: LLMClient, slots: list[Slot], cfg: GenerateConfig, *,
                    approved: list[Example] = (), template: str = "generate_user", source: str = "generated",
                    extra_for=None, progress: Progress | None = None) -> GenerateResult:
    pool = few_shot_pool(persona, list(approved))
    built = [build_messages(persona, s, pool, cfg.few_shot, template, extra_for(s) if extra_for else None)
             for s in slots]
    requests = [{"messages": m, "temperature": cfg.temperature, "max_tokens": cfg.max_tokens,
                 "json_schema": EXAMPLE_SCHEMA, "seed": s.variant} for (m, _), s in zip(built, slots)]

    def on_result(i, r):
        if progress is not None:
            progress.step(ok=not isinstance(r, ClientFailure))

    results = await client.achat_many(requests, on_result=on_result)
    out = GenerateResult()
    for slot, (_, version), r in zip(slots, built, results):
        slot_d = {"category": slot.category, "scenario": slot.scenario, "variant": slot.variant,
                  **({"trait": slot.trait} if slot.trait else {})}
        if isinstance(r, ClientFailure):
            out.failed.append({"slot": slot_d, "reason": r.reason, "request_key": r.request_key})
            continue
        try:
            out.examples.append(to_example(slot, r, version, source))
        except ValueError as exc:
            out.failed.append({"slot": slot_d, "reason": str(exc), "request_key": r.request_key})
    out.stats = client.stats
    return out


def generate(persona: Persona, client: LLMClient, cfg: GenerateConfig, *, approved: list[Example] = (),
             progress_path: Path | None = None, echo: bool = False) -> GenerateResult:
    """Generate `examples_per_scenario` examples for each scenario (cut at `limit`)."""
    cfg.check(persona)
    slots = plan(persona, cfg)
    progress = Progress(progress_path, "generate", len(slots), echo=echo)
    result = client.run(agenerate(persona, client, slots, cfg, approved=approved, progress=progress))
    progress.finish()
    return result


def save_result(result: GenerateResult, out: Path, failed_out: Path) -> None:
    write_jsonl(out, [e.model_dump(exclude_none=True) for e in result.examples])
    write_jsonl(failed_out, result.failed)


def summary(result: GenerateResult) -> str:
    s = result.stats
    reasons: dict[str, int] = {}
    for f in result.failed:
        key = f["reason"].split(" (gave up")[0]
        reasons[key] = reasons.get(key, 0) + 1
    lines = [f"generated {len(result.examples)} examples, {len(result.failed)} failed",
             f"requests sent {s.get('requests_sent', 0)}, cache hits {s.get('cache_hits', 0)}, retries "
             f"{s.get('retries', 0)}, tokens {s.get('prompt_tokens', 0)} in / {s.get('completion_tokens', 0)} out, "
             f"est. cost ${s.get('est_cost_usd', 0):.4f}"]
    lines += [f"  failed: {n} x {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)
