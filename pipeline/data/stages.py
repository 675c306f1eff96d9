"""The data stages as whole operations on the workspace files: what the CLI subcommands and
the Data tab call (one call each). The pure functions they wrap live in generate.py,
filter.py, dedupe.py, balance.py, target.py, review.py and export.py."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..jsonl import iter_jsonl, write_json, write_jsonl
from ..llm_client import LLMClient
from ..settings import Settings
from ..spec import Persona, load_persona
from . import balance as balance_mod
from . import dedupe as dedupe_mod
from . import export as export_mod
from . import filter as filter_mod
from . import generate as generate_mod
from . import target as target_mod
from .records import Example
from .review import ReviewQueue
from .workspace import DataPaths, protect_shipped, read_examples


@dataclass
class LLMLimits:
    """The generator's limits for one job (one typed config shared by CLI and UI)."""
    max_concurrency: int = 8
    max_requests: int | None = None
    max_cost_usd: float | None = None
    timeout_s: float = 60
    backoff_base_s: float = 0.5  # first retry waits up to this long, doubling (tests shorten it)

    def client(self, settings: Settings, role: str = "generator") -> LLMClient:
        return LLMClient.from_settings(settings, role, max_concurrency=self.max_concurrency,
                                       max_requests=self.max_requests, max_cost_usd=self.max_cost_usd,
                                       timeout_s=self.timeout_s, backoff_base_s=self.backoff_base_s)


def persona_of(settings: Settings, name: str | None = None) -> Persona:
    return load_persona(settings.persona_dir(name))


def _save(path: Path, examples: list[Example], paths: DataPaths) -> None:
    protect_shipped(path, paths)
    write_jsonl(path, [e.model_dump(exclude_none=True) for e in examples])


def _merge_by_id(path: Path, new: list[Example]) -> list[Example]:
    """Existing records of `path` plus new ones whose id is not there yet (nothing is lost)."""
    old = read_examples(path) if path.is_file() else []
    seen = {e.id for e in old}
    return old + [e for e in new if e.id not in seen]


def _approved_pool(paths: DataPaths) -> list[Example]:
    return read_examples(paths.shipped_train) if paths.shipped_train.is_file() else []


def rejected_path(paths: DataPaths, stage: str) -> Path:
    return paths.root / f"rejected.{stage}.jsonl"


# ---- generate -----------------------------------------------------------------------------
def run_generate(settings: Settings, cfg: generate_mod.GenerateConfig, limits: LLMLimits | None = None, *,
                 persona: str | None = None, output: Path | None = None, echo: bool = False) -> dict:
    p = persona_of(settings, persona)
    cfg.check(p)
    paths = DataPaths.of(settings, p.spec.name)
    out = Path(output) if output else paths.generated
    protect_shipped(out, paths)
    limits = limits or LLMLimits(max_concurrency=cfg.max_concurrency, max_requests=cfg.max_requests,
                                 max_cost_usd=cfg.max_cost_usd)
    client = limits.client(settings, "generator")
    res = generate_mod.generate(p, client, cfg, approved=_approved_pool(paths), progress_path=paths.progress, echo=echo)
    merged = _merge_by_id(out, res.examples)
    _save(out, merged, paths)
    write_jsonl(paths.generated_failed, res.failed)
    return {"output": str(out), "generated": len(res.examples), "total_in_file": len(merged),
            "failed": len(res.failed), "failed_file": str(paths.generated_failed), "stats": res.stats,
            "summary": generate_mod.summary(res)}


# ---- filter -------------------------------------------------------------------------------
def default_filter_input(paths: DataPaths) -> Path:
    return paths.generated if paths.generated.is_file() else paths.shipped_train


def run_filter(settings: Settings, cfg: filter_mod.FilterConfig, *, persona: str | None = None,
               input: Path | None = None, output: Path | None = None, judge=None, echo: bool = False) -> dict:
    p = persona_of(settings, persona)
    cfg.check(p)
    paths = DataPaths.of(settings, p.spec.name)
    src = Path(input) if input else default_filter_input(paths)
    out = Path(output) if output else paths.filtered
    examples = read_examples(src)
    judge = judge or filter_mod.get_judge(cfg.judge, p, settings)
    from .workspace import Progress

    prog = Progress(paths.progress, "filter", len(examples), echo=echo)
    res = filter_mod.filter_examples(examples, judge, cfg.min_score, batch_size=cfg.batch_size, progress=prog)
    prog.finish()
    _save(out, res.kept, paths)
    _save(rejected_path(paths, "filter"), res.rejected, paths)
    return {"input": str(src), "output": str(out), "rejected_file": str(rejected_path(paths, "filter")),
            **res.counts, "judge": getattr(judge, "name", cfg.judge), "summary": filter_mod.summary(res, cfg.min_score)}


# ---- dedupe -------------------------------------------------------------------------------
def _curated_apart(paths: DataPaths, examples: list[Example]) -> list[Example]:
    """The shipped curated set when `examples` is not drawn from it (no shared id), else []."""
    if not paths.shipped_train.is_file():
        return []
    curated = read_examples(paths.shipped_train)
    ids = {e.id for e in examples}
    return [] if any(e.id in ids for e in curated) else curated


def run_dedupe(settings: Settings, cfg: dedupe_mod.DedupeConfig, *, persona: str | None = None,
               input: Path | None = None, output: Path | None = None, eval_set: Path | None = None) -> dict:
    """Near-duplicates within the input, eval leaks, and (for generated sets) copies of the
    shipped curated examples, which stay the reference."""
    cfg.check()
    p = persona_of(settings, persona)
    paths = DataPaths.of(settings, p.spec.name)
    src = Path(input) if input else (paths.filtered if paths.filtered.is_file() else paths.shipped_train)
    out = Path(output) if output else paths.deduped
    evals = dedupe_mod.eval_prompts(Path(eval_set) if eval_set else paths.eval_set)
    examples = read_examples(src)
    against = _curated_apart(paths, examples)
    res = dedupe_mod.dedupe(examples, evals, cfg, against=against)
    _save(out, res.kept, paths)
    _save(rejected_path(paths, "dedupe"), res.removed, paths)
    return {"input": str(src), "output": str(out), "kept": len(res.kept), "removed": len(res.removed),
            "duplicates": res.duplicate_pairs, "eval_leaks": res.eval_leaks, "eval_prompts": len(evals),
            "checked_against_curated": len(against),
            "summary": dedupe_mod.summary(res, cfg) + (f"; also checked against {len(against)} curated examples"
                                                        if against else "")}


# ---- balance ------------------------------------------------------------------------------
def default_balance_input(paths: DataPaths) -> Path:
    for p in (paths.deduped, paths.filtered):
        if p.is_file():
            return p
    return paths.shipped_train


def run_balance(settings: Settings, cfg: balance_mod.BalanceConfig, limits: LLMLimits | None = None, *,
                persona: str | None = None, input: Path | None = None, output: Path | None = None,
                offline: bool = False, with_curated: bool = False, judge=None, echo: bool = False) -> dict:
    """fill_gaps. `with_curated`: count (and keep) the shipped curated examples together with a
    generated input, so only what the whole set lacks is generated."""
    cfg.check()
    p = persona_of(settings, persona)
    paths = DataPaths.of(settings, p.spec.name)
    src = Path(input) if input else default_balance_input(paths)
    out = Path(output) if output else paths.balanced
    protect_shipped(out, paths)
    examples = read_examples(src)
    if with_curated:
        curated = _curated_apart(paths, examples)
        if not curated:
            raise UserError(f"{src} already contains the curated set (or there is none); drop --with-curated")
        examples = curated + examples
    client = None
    if not offline and settings.generator.configured:
        client = (limits or LLMLimits()).client(settings, "generator")
        judge = judge or filter_mod.get_judge(cfg.judge, p, settings)
    res = balance_mod.balance(p, examples, cfg, client=client, judge=judge,
                              evals=dedupe_mod.eval_prompts(paths.eval_set), approved=_approved_pool(paths),
                              progress_path=paths.progress, echo=echo)
    _save(out, res.examples, paths)
    _save(rejected_path(paths, "balance"), res.rejected, paths)
    report = {**res.report, "input": str(src) + (" + curated" if with_curated else ""), "output": str(out)}
    write_json(paths.balance_report, report)
    return {**report, "summary": balance_mod.summary(report), "report_file": str(paths.balance_report)}


# ---- target -------------------------------------------------------------------------------
def default_base(paths: DataPaths) -> Path:
    vs = export_mod.versions(paths.exports)
    return vs[-1] / "train.jsonl" if vs else candidates_path(paths)


def run_target(settings: Settings, results: Path, cfg: target_mod.TargetConfig, limits: LLMLimits | None = None, *,
               persona: str | None = None, traits: list[str] | None = None, base: Path | None = None,
               judge=None, echo: bool = False) -> dict:
    cfg.check()
    p = persona_of(settings, persona)
    paths = DataPaths.of(settings, p.spec.name)
    plan = target_mod.load_plan(Path(results), p, traits)
    base_path = Path(base) if base else default_base(paths)
    base_examples = read_examples(base_path, "base dataset")
    client = (limits or LLMLimits()).client(settings, "generator")
    judge = judge or filter_mod.get_judge(cfg.judge, p, settings)
    res = target_mod.target(p, plan, cfg, client=client, judge=judge, base=base_examples,
                            evals=dedupe_mod.eval_prompts(paths.eval_set), progress_path=paths.progress, echo=echo)
    _save(paths.targeted, _merge_by_id(paths.targeted, res.kept), paths)
    _save(rejected_path(paths, "target"), res.rejected, paths)
    version = None
    if res.kept:
        version = export_mod.write_version(
            paths.exports, p, base_examples + res.kept,
            sources=[f"base: {base_path}", f"targeted for {', '.join(plan.weak_traits)}: {len(res.kept)} examples",
                     f"plan: {plan.source}"],
            selection="base set as it was + targeted examples that passed the filter with a 2 on their trait "
                      "(also queued for review)")
    return {"weak_traits": plan.weak_traits, "trait_means": plan.trait_means, "requested": res.requested,
            "kept": len(res.kept), "rejected": len(res.rejected), "failed": len(res.failed),
            "version": str(version) if version else None, "stats": res.stats,
            "summary": target_mod.summary(plan, res) + (f"\nnew dataset version: {version}" if version else
                                                        "\nno example kept: no new version written")}


# ---- review & export ----------------------------------------------------------------------
def candidates_path(paths: DataPaths) -> Path:
    return paths.latest_candidates()


def load_candidates(paths: DataPaths, input: Path | None = None) -> list[Example]:
    """The candidate set (latest stage output, or `input`) plus targeted examples not in it."""
    base = read_examples(Path(input) if input else candidates_path(paths), "candidate set")
    if input is None and paths.targeted.is_file():
        seen = {e.id for e in base}
        base += [e for e in read_examples(paths.targeted) if e.id not in seen]
    return base


def review_queue(settings: Settings, *, persona: str | None = None, input: Path | None = None) -> ReviewQueue:
    paths = DataPaths.of(settings, persona or settings.persona)
    return ReviewQueue.open(load_candidates(paths, input), paths.review_db)


def _portable(path: Path, settings: Settings) -> str:
    """A source path as the data card shows it: relative to the work dir or the project, never an
    absolute local path (the card is published with the dataset)."""
    for root in (settings.work_dir, settings.root):
        try:
            return str(Path(path).resolve().relative_to(Path(root).resolve()))
        except ValueError:
            continue
    return Path(path).name


def run_export(settings: Settings, *, persona: str | None = None, input: Path | None = None,
               include_pending: bool = False, note: str = "", push_to: str | None = None,
               private: bool = True) -> dict:
    p = persona_of(settings, persona)
    paths = DataPaths.of(settings, p.spec.name)
    if push_to is not None and not settings.hf_token:
        # Checked before writing anything so the user fixes it once.
        export_mod.push(paths.exports, push_to, None)
    q = review_queue(settings, persona=p.spec.name, input=input)
    chosen = export_mod.select(q.current(), include_pending)
    src = _portable(Path(input) if input else candidates_path(paths), settings)
    folder = export_mod.write_version(
        paths.exports, p, chosen,
        sources=[src] + ([_portable(paths.targeted, settings)] if paths.targeted.is_file() and not input else []),
        selection="approved in review" + (" + pending that passed the filter" if include_pending else ""), note=note)
    out = {"version": folder.name, "folder": str(folder), "count": len(chosen), "summary":
           f"exported {len(chosen)} examples to {folder}"}
    if push_to:
        url = export_mod.push(folder, push_to, settings.hf_token, private=private)
        out["pushed"] = url
        out["summary"] += f"\npushed to {url}"
    return out


# ---- overview (charts) --------------------------------------------------------------------
def overview(settings: Settings, persona: str | None = None, target_per_scenario: int | None = None) -> dict:
    """Figures for the Data tab's charts: coverage per scenario vs target, score distribution,
    rejection reasons, and which workspace files exist."""
    p = persona_of(settings, persona)
    paths = DataPaths.of(settings, p.spec.name)
    cand = candidates_path(paths)
    try:
        examples = load_candidates(paths)
    except UserError:
        examples = []
    targets = balance_mod.scenario_targets(p, target_per_scenario)
    cov = balance_mod.coverage(examples, p, targets)
    scores: Counter = Counter()
    reasons: Counter = Counter()
    judged = [paths.filtered] + sorted(paths.root.glob("rejected.*.jsonl")) if paths.root.is_dir() else []
    for f in judged:
        if not f.is_file():
            continue
        for row in iter_jsonl(f):
            ov = (row.get("quality") or {}).get("overall")
            if isinstance(ov, (int, float)):
                scores[int(ov)] += 1
            for r in (row.get("rejection") or {}).get("reasons", []):
                reasons[_reason_kind(r)] += 1
    files = {name: getattr(paths, name).is_file() for name in
             ("generated", "filtered", "deduped", "balanced", "targeted")}
    return {"candidates": str(cand), "count": len(examples), "coverage": cov,
            "scores": sorted(scores.items()), "reasons": reasons.most_common(), "files": files,
            "versions": [v.name for v in export_mod.versions(paths.exports)]}


def _reason_kind(reason: str) -> str:
    if reason.startswith("score"):
        return "score below min_score"
    if reason.startswith("violation"):
        return "violation: " + reason.split()[1].rstrip(":")
    if reason.startswith("near-duplicate"):
        return "near-duplicate"
    return reason.split(":")[0]


# ---- argparse helpers shared by the data subcommands ---------------------------------------
def add_limit_args(p) -> None:
    g = p.add_argument_group("generator limits")
    g.add_argument("--max-concurrency", type=int, default=8, help="requests in flight at once (default 8)")
    g.add_argument("--max-requests", type=int, default=None, help="hard cap on HTTP requests, retries included")
    g.add_argument("--max-cost-usd", type=float, default=None, help="hard cap on estimated spend in USD")
    g.add_argument("--timeout", type=float, default=60, help="seconds per request before it is retried (default 60)")


def limits_from(args) -> LLMLimits:
    return LLMLimits(max_concurrency=args.max_concurrency, max_requests=args.max_requests,
                     max_cost_usd=args.max_cost_usd, timeout_s=args.timeout)


def add_generate_args(p, per_scenario_default: int = 3) -> None:
    g = p.add_argument_group("generation")
    g.add_argument("--examples-per-scenario", type=int, default=per_scenario_default,
                   help=f"examples per scenario (default {per_scenario_default}, as in the seed)")
    g.add_argument("--temperature", type=float, default=0.9)
    g.add_argument("--few-shot", type=int, default=2, help="approved examples shown in each prompt (default 2)")


def generate_config_from(args, **kw) -> "generate_mod.GenerateConfig":
    return generate_mod.GenerateConfig(
        examples_per_scenario=args.examples_per_scenario, temperature=args.temperature, few_shot=args.few_shot,
        max_concurrency=args.max_concurrency, max_requests=args.max_requests, max_cost_usd=args.max_cost_usd, **kw)


def print_result(result: dict, as_json: bool) -> None:
    import json

    if as_json:
        print(json.dumps({k: v for k, v in result.items() if k != "summary"}, indent=2, ensure_ascii=False, default=str))
    else:
        print(result["summary"])
