"""run_eval: the seed's Phase 3 on a training run folder.

    python -m pipeline evaluate --run runs/<id> [--judge rubric|llm] [--eval-set FILE] [--limit N]

Reads runs/<id>/config.yaml (base_model, persona), train_summary.json (final_loss,
adapter_size_bytes) and adapter/. Base and adapter answer every eval prompt (one ChatEngine:
the base weights once, the adapter attached by name, the base answering with it disabled;
the persona system prompt for both). Both sets of replies are judged, the A/B pairs are
judged in both orders, metrics and gates computed, and runs/<id>/eval/ gets:

    EVALUATION_RESULTS.json   the versioned results (pipeline/evaluation/results.py)
    summary.md                the readable summary
    responses_base.jsonl      the base model's replies, with their verdicts
    responses_adapter.jsonl   the adapter's replies, with their verdicts
    ab_pairs.jsonl            every A/B pair with both orders' picks
    progress.json             how far it has got (stage, prompts done/total, ETA; progress.py)

Replies already on disk with the same reuse key (prompt, base, adapter hash, sampling,
system prompt) are reused, so judging again with another judge does not regenerate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..inference import ChatEngine, SamplingConfig, default_sampling, load_engine
from ..jsonl import atomic_write_text, file_sha256, read_jsonl, write_json, write_jsonl
from ..judges import JUDGE_KINDS, get_judge, get_pairwise, judge_agreement
from ..judges.base import JudgeItem
from ..judges.pairwise import PairItem
from ..runs import RunFolder
from ..spec import load_persona
from .evalset import load_eval_set
from .gates import check_quality_gates, decision
from .metrics import ab_summary, compute_metrics, worst_replies
from .plan import build_plan, failing_rows
from .progress import PROGRESS_FILE, ProgressWriter
from .respond import ADAPTER_NAME, EVAL_MAX_NEW_TOKENS, adapter_problems, dir_sha256, generate_replies, reply_key
from .results import RESULTS_FILE, SCHEMA_VERSION, EvaluationResults
from .summary import render_summary

EVAL_DIR = "eval"
EVAL_SET_FILE = "eval.yaml"


@dataclass
class EvalConfig:
    run_dir: Path
    judge: str = "reader"  # the offline judge with measured agreement (docs/judges.md); rubric: lexicons only
    eval_set: Path | None = None  # default: <persona>/eval.yaml
    persona: Path | None = None  # default: the run's config.yaml `persona`
    base: str | None = None  # default: the run's config.yaml `base_model`
    # None: the base model's default decoding (pipeline.models; greedy for the 135M model), with
    # `sampling_overrides` (the CLI flags / the tab's fields that were set) on top. Base and adapter
    # always answer with the same sampling, recorded in every reply row and in the results.
    sampling: SamplingConfig | None = None
    sampling_overrides: dict = field(default_factory=dict)
    batch_size: int = 8
    limit: int | None = None  # first N prompts only (a quick look; gates then say so via n)
    out_dir: Path | None = None  # default: <run_dir>/eval

    def problems(self, settings) -> list[str]:
        """Every problem at once, each naming what to change."""
        p = []
        run = RunFolder(self.run_dir)
        if self.judge not in JUDGE_KINDS:
            p.append(f"--judge: {self.judge!r}; choose one of {', '.join(JUDGE_KINDS)}")
        if self.judge == "llm" and not settings.judge.configured:
            p.append("--judge llm: no judge endpoint configured; set OPENAI_API_KEY (and OPENAI_BASE_URL for a local "
                     "server) or TASKMASTER_JUDGE_BASE_URL, or use --judge rubric")
        if not run.path.is_dir():
            p.append(f"--run: {run.path} is not a folder; pass a training run folder (runs/<id>)")
        else:
            if not run.config_path.is_file() and (self.base is None or self.persona is None):
                p.append(f"--run: {run.config_path} not found; pass a finished training run, or give --base and --persona")
            p += [x.replace("adapter:", "--run:") for x in adapter_problems(run.adapter_dir)]
        if self.eval_set is not None and not Path(self.eval_set).is_file():
            p.append(f"--eval-set: {self.eval_set} not found")
        from .respond import decoding_problems

        s = self.sampling or SamplingConfig(**{k: v for k, v in self.sampling_overrides.items() if v is not None})
        p += decoding_problems(s, self.batch_size, flag=lambda name: "--" + name.replace("_", "-"))
        if self.limit is not None and self.limit < 1:
            p.append(f"--limit: {self.limit}; must be at least 1")
        return p


def run_inputs(run: RunFolder) -> tuple[dict, dict, list[str]]:
    """(config.yaml, train_summary.json, what is missing) — tolerant: a missing file or key is
    reported, and the gate that needs it fails with that reason."""
    missing, cfg, summ = [], {}, {}
    if not run.config_path.is_file():
        missing.append("config.yaml")
    else:
        try:
            cfg = run.config()
        except UserError as exc:
            missing.append(f"config.yaml ({exc})")
    if not run.summary_path.is_file():
        missing.append("train_summary.json (final_train_loss gate cannot be computed)")
    else:
        try:
            summ = run.summary()
        except UserError:
            missing.append("train_summary.json (not valid JSON)")
    for k in ("base_model", "persona"):
        if cfg and k not in cfg:
            missing.append(f"config.yaml: {k}")
    if summ and summ.get("final_loss") is None:
        missing.append("train_summary.json: final_loss (final_train_loss gate cannot be computed)")
    return cfg, summ, missing


def _reuse(path: Path, keys: dict[str, str]) -> list[dict] | None:
    if not path.is_file():
        return None
    try:
        rows = {r["id"]: r for r in read_jsonl(path)}
    except (ValueError, KeyError):
        return None
    if all(i in rows and rows[i].get("key") == k for i, k in keys.items()):
        return [rows[i] for i in keys]
    return None


def run_eval(cfg: EvalConfig, settings, *, engine: ChatEngine | None = None, judge=None, pairwise=None,
             echo=print) -> dict:
    problems = cfg.problems(settings)
    if problems:
        raise UserError("eval settings:\n  " + "\n  ".join(problems))
    progress = ProgressWriter(Path(cfg.out_dir or RunFolder(cfg.run_dir).eval_dir) / PROGRESS_FILE, list(STAGES))
    try:
        results = _run_eval(cfg, settings, progress, engine=engine, judge=judge, pairwise=pairwise, echo=echo)
    except BaseException as exc:  # KeyboardInterrupt too: the bar must not say "running" forever
        progress.fail(f"{type(exc).__name__}: {exc}")
        raise
    progress.finish()
    return results


# The evaluation's stages, in order, as its progress file names them.
STAGES = ("base replies", "adapter replies", "judging", "A/B pairs")
# Verdicts per judge call: a multiple of the reader's encoder batch (16), so its batches are the
# ones an unchunked call would make, and big enough that an LLM judge keeps its concurrency.
JUDGE_CHUNK = 32


def _run_eval(cfg: EvalConfig, settings, progress: ProgressWriter, *, engine, judge, pairwise, echo) -> dict:
    t_start = time.perf_counter()
    timing: dict[str, float] = {}
    folder = RunFolder(cfg.run_dir)
    run = folder.path
    run_cfg, train, missing = run_inputs(folder)
    persona_dir = Path(cfg.persona or run_cfg.get("persona") or settings.persona_dir())
    persona = load_persona(persona_dir)
    spec = persona.spec
    base = cfg.base or run_cfg.get("base_model") or settings.base_model
    cfg.sampling = cfg.sampling or default_sampling(base, **{"max_new_tokens": EVAL_MAX_NEW_TOKENS,
                                                             **cfg.sampling_overrides})
    eval_path = Path(cfg.eval_set or persona_dir / EVAL_SET_FILE)
    prompts = load_eval_set(eval_path)
    if cfg.limit:
        prompts = prompts[:cfg.limit]
    adapter_dir = folder.adapter_dir
    adapter_sha = dir_sha256(adapter_dir)
    size = train.get("adapter_size_bytes")
    if size is None:
        size = sum(p.stat().st_size for p in adapter_dir.iterdir() if p.is_file() and p.suffix in (".safetensors", ".bin")) or None
    out_dir = Path(cfg.out_dir or folder.eval_dir)
    system_prompt = run_cfg.get("system_prompt") or spec.system_prompt
    judge = judge or get_judge(cfg.judge, persona, settings)
    pairwise = pairwise or get_pairwise(cfg.judge, persona, settings, judge=judge if cfg.judge in ("rubric", "reader") else None)
    echo(f"eval {run}: {len(prompts)} prompts from {eval_path}, base {base}, judge {judge.name}, "
         f"sampling {cfg.sampling.describe()}")

    # ---- generation (reused when the same replies are already on disk) --------------------
    rows_by_model = {}
    own_engine = engine is None
    for label, adapter, sha in (("base", None, None), ("adapter", ADAPTER_NAME, adapter_sha)):
        keys = {p.id: reply_key(p, base, sha, cfg.sampling, system_prompt) for p in prompts}
        path = out_dir / f"responses_{label}.jsonl"
        rows = _reuse(path, keys)
        progress.stage(f"{label} replies", len(prompts), done=len(prompts) if rows is not None else 0)
        if rows is not None:
            echo(f"  {label}: reusing {len(rows)} replies from {path}")
            timing[f"generate_{label}_s"] = "reused"
        else:
            if engine is None:
                engine = load_engine(base, settings)  # closed below, once both sides are generated
            if adapter is not None:
                engine.attach_adapter(ADAPTER_NAME, adapter_dir)
            t0 = time.perf_counter()
            rows = generate_replies(engine, prompts, adapter, cfg.sampling, system_prompt, cfg.batch_size,
                                    base=base, adapter_sha=sha, echo=echo, progress=progress.advance)
            timing[f"generate_{label}_s"] = round(time.perf_counter() - t0, 1)
            write_jsonl(path, rows)  # saved before judging: a judge failure loses no generation
        rows_by_model[label] = rows
    if own_engine and engine is not None:
        engine.close()  # its worker thread must not outlive the process (see Batcher.close)

    # ---- judging --------------------------------------------------------------------------
    t0 = time.perf_counter()
    progress.stage("judging", sum(len(rows) for rows in rows_by_model.values()))
    judged = 0
    for label, rows in rows_by_model.items():
        for i in range(0, len(rows), JUDGE_CHUNK):
            chunk = rows[i:i + JUDGE_CHUNK]
            verdicts = judge.judge_batch([JudgeItem(r["id"], r["messages"], r["reply"], r.get("category")) for r in chunk])
            for r, v in zip(chunk, verdicts):
                r["verdict"] = v.to_dict()
            judged += len(chunk)
            progress.advance(judged)
        write_jsonl(out_dir / f"responses_{label}.jsonl", rows)
    timing["judge_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    base_rows, ad_rows = rows_by_model["base"], rows_by_model["adapter"]
    items = [PairItem(a["id"], a["messages"], a["reply"], b["reply"], a.get("category"))
             for a, b in zip(ad_rows, base_rows)]
    progress.stage("A/B pairs", len(items))
    pairs = []
    for i in range(0, len(items), JUDGE_CHUNK // 2):  # two orders per pair: JUDGE_CHUNK judgements a call
        pairs += pairwise.judge_pairs(items[i:i + JUDGE_CHUNK // 2])
        progress.advance(len(pairs))
    pair_dicts = [p.to_dict() for p in pairs]
    write_jsonl(out_dir / "ab_pairs.jsonl", pair_dicts)
    timing["ab_s"] = round(time.perf_counter() - t0, 2)

    # ---- metrics, gates, results ---------------------------------------------------------------
    ma, mb = compute_metrics(ad_rows, spec), compute_metrics(base_rows, spec)
    ab = ab_summary(pair_dicts)
    passed, gates = check_quality_gates(ma, spec, ab=ab, train=train, adapter_size_bytes=size)
    per_cat = []
    for c in ma["per_category"]:
        am, bm = ma["per_category"][c]["overall_mean"], mb["per_category"].get(c, {}).get("overall_mean")
        per_cat.append({"category": c, "n": ma["per_category"][c]["n"], "base_mean": bm, "adapter_mean": am,
                        "delta": round(am - bm, 3) if am is not None and bm is not None else None,
                        "base_violations": mb["per_category"].get(c, {}).get("violations"),
                        "adapter_violations": ma["per_category"][c]["violations"]})
    improvement = {
        "overall": round(ma["overall_mean"] - mb["overall_mean"], 3)
        if ma["overall_mean"] is not None and mb["overall_mean"] is not None else None,
        "traits": {t: round(ma["trait_means"][t] - mb["trait_means"][t], 3)
                   if ma["trait_means"].get(t) is not None and mb["trait_means"].get(t) is not None else None
                   for t in spec.trait_ids},
        "violation_rate": round(ma["violation_rate"] - mb["violation_rate"], 4)
        if ma["violation_rate"] is not None and mb["violation_rate"] is not None else None,
    }
    timing["total_s"] = round(time.perf_counter() - t_start, 1)
    results = {
        "schema_version": SCHEMA_VERSION,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "decision": decision(passed),
        "gates": [g.to_dict() for g in gates],
        "metrics": {"adapter": ma, "base": mb, "improvement": improvement},
        "ab": {**ab, "judge": pairwise.name, "pairs": [{k: p[k] for k in ("id", "winner", "orders", "consistent", "ok", "error")}
                                                         for p in pair_dicts]},
        "judge": {"kind": getattr(judge, "kind", cfg.judge), "name": judge.name, "model": getattr(judge, "model", None),
                  "prompt_version": getattr(judge, "prompt_version", None), "heuristic": cfg.judge == "rubric",
                  "pairwise": pairwise.name, "agreement": judge_agreement(judge)},
        "eval_set": {"path": str(eval_path), "sha256": file_sha256(eval_path), "n": len(prompts),
                     "limit": cfg.limit},
        "adapter": {"path": str(adapter_dir), "sha256": adapter_sha, "size_bytes": size},
        "run_config": {"run_dir": str(run), "base_model": base, "persona": str(persona_dir), "config": run_cfg,
                       "train_summary": train, "missing": missing},
        "sampling": cfg.sampling.to_dict(),
        "timing": timing,
        "per_category": per_cat,
        "worst_replies": worst_replies(ad_rows),
        "failing": failing_rows(ad_rows, spec),
    }
    results["plan"] = build_plan(results, spec)
    EvaluationResults.model_validate(results)  # the schema is a contract: never write one that breaks it
    write_json(out_dir / RESULTS_FILE, results)
    atomic_write_text(out_dir / "summary.md", render_summary(results))
    echo(f"wrote {out_dir / RESULTS_FILE} and {out_dir / 'summary.md'} ({timing['total_s']}s)")
    return results
