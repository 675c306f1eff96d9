"""What the studio's Evaluate tab calls (one call per callback; no Gradio here).

The evaluation itself always runs as a background job (`python -m pipeline evaluate ...` via
JobManager): generation on CPU takes minutes and must survive a page refresh. The tab reads
the results back through the run folder (`RunFolder.results()`, the typed results model).
"""

from __future__ import annotations

import shlex
import pandas as pd
from pathlib import Path

from ..errors import UserError
from ..judges import describe_agreement
from ..jobs import JobManager
from ..settings import Settings
from ..runs import RunFolder, list_runs
from .results import RESULTS_FILE, load_results

JOB_KIND = "evaluate"


def evaluable_runs(settings: Settings) -> list[str]:
    """Run folders that hold an adapter, newest first."""
    return [str(r.path) for r in list_runs(settings, where=RunFolder.has_adapter)]


def default_decoding(settings: Settings):
    """(SamplingConfig, why) the studio's base model decodes with unless the form says otherwise."""
    from ..inference import default_sampling
    from ..models import sampling_defaults
    from .respond import EVAL_MAX_NEW_TOKENS

    return (default_sampling(settings.base_model, max_new_tokens=EVAL_MAX_NEW_TOKENS),
            sampling_defaults(settings.base_model)[1])


def default_run(jobs: JobManager, settings: Settings) -> str | None:
    """The run the tab opens on: the latest evaluation job's run (running or not), so the status,
    the log and the results below all describe the same run after a reload; else the newest run."""
    runs = evaluable_runs(settings)
    job = jobs.latest(JOB_KIND)
    if job is not None and job.run_dir:
        for r in runs:
            if Path(r).resolve() == Path(job.run_dir).resolve():
                return r
    return runs[0] if runs else None


def eval_argv(run: str, judge: str, limit: int | None, max_new_tokens: int | None,
              temperature: float | None = None, top_p: float | None = None) -> list[str]:
    if not run:
        raise UserError("choose a run folder first (runs/<id> with an adapter/); train one in the Train tab")
    argv = ["evaluate", "--run", str(run), "--judge", judge]
    if limit:
        argv += ["--limit", str(int(limit))]
    if max_new_tokens:
        argv += ["--max-new-tokens", str(int(max_new_tokens))]
    if temperature is not None and temperature != "":
        if float(temperature) < 0:
            raise UserError(f"Temperature {temperature}: use 0 (greedy) or more, or leave it empty for the default")
        argv += ["--temperature", f"{float(temperature):g}"]
    if top_p is not None and top_p != "":
        if not 0 < float(top_p) <= 1:
            raise UserError(f"Top-p {top_p}: use a value above 0 and at most 1, or leave it empty for the default")
        argv += ["--top-p", f"{float(top_p):g}"]
    return argv


def start_eval(jobs: JobManager, settings: Settings, run: str, judge: str, limit=None,
               max_new_tokens=None, temperature=None, top_p=None) -> tuple[str, str, str]:
    argv = eval_argv(run, judge, limit, max_new_tokens, temperature, top_p)
    if judge == "llm" and not settings.judge.configured:
        raise UserError("the LLM judge needs an endpoint: set OPENAI_API_KEY (and OPENAI_BASE_URL for a local server), "
                        "or choose the reader or rubric judge (offline)")
    if not RunFolder(run).has_adapter():
        raise UserError(f"{run} has no adapter/adapter_config.json; choose a finished training run")
    job = jobs.start(JOB_KIND, argv, run_dir=str(run), label=f"eval {Path(run).name} ({judge})")
    status, log = job_status(jobs, job.id)
    return f"Started `python -m pipeline {' '.join(shlex.quote(a) for a in argv)}`", status, log


def job_status(jobs: JobManager, job_id: str | None = None) -> tuple[str, str]:
    v = jobs.view(JOB_KIND, job_id, none="No evaluation has run yet.")
    return v.status, v.log


def stop_eval(jobs: JobManager) -> tuple[str, str]:
    job = jobs.latest(JOB_KIND)
    if job is None or job.state != "running":
        raise UserError("no evaluation is running")
    jobs.stop(job.id)
    return job_status(jobs, job.id)


def results_path(run: str) -> Path:
    return RunFolder(run).results_path


def readable(value, digits: int = 3) -> str:
    """A gate's value or threshold as a person reads it: numbers rounded, a mapping as
    `key: value` pairs, a list joined; never raw JSON."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{round(value, digits):g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {readable(v, digits)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(readable(v, digits) for v in value)
    return str(value)


def _base_replies(eval_dir: Path) -> dict[str, str]:
    path = eval_dir / "responses_base.jsonl"
    from .respond import read_replies  # the replies file's one reader

    return {r["id"]: r["reply"] for r in read_replies(path)} if path.is_file() else {}


def _describe_sampling(s: dict | None) -> str:
    from ..inference import SAMPLING_FIELDS, SamplingConfig

    if not s:
        return "unrecorded sampling"
    return SamplingConfig(**{k: v for k, v in s.items() if k in SAMPLING_FIELDS}).describe()


def view(run: str | None) -> dict:
    """Everything the tab shows for a run's latest evaluation (empty frames if none yet)."""
    empty = {"decision": "No evaluation for this run yet: start one above.",
             "gates": pd.DataFrame(columns=GATE_COLUMNS),
             "traits": pd.DataFrame(columns=["trait", "model", "score", "bar"]),
             "categories": pd.DataFrame(columns=CATEGORY_COLUMNS),
             "worst": pd.DataFrame(columns=WORST_COLUMNS), "ab": "", "summary": "", "file": None}
    if not run:
        return empty
    path = results_path(run)
    if not path.is_file():
        return empty
    r = load_results(path).model_dump()
    a, b = r["metrics"]["adapter"], r["metrics"]["base"]
    gates = pd.DataFrame([{"gate": g["name"], "result": "PASS" if g["passed"] else "FAIL",
                           "value": readable(g["value"]), "threshold": readable(g["threshold"]),
                           "detail": g["detail"]} for g in r["gates"]], columns=GATE_COLUMNS)
    # "bar" gives each (trait, model) its own bar: Gradio's BarPlot stacks bars that share an x
    # value, which would pile base on adapter instead of setting them side by side.
    traits = pd.DataFrame([{"trait": t, "model": m, "score": src["trait_means"].get(t), "bar": f"{t} · {m}"}
                           for t in a["trait_means"] for m, src in (("base", b), ("adapter", a))])
    cats = pd.DataFrame([{"category": c["category"], "n": c["n"], "base": _round(c["base_mean"]),
                          "adapter": _round(c["adapter_mean"]), "change": _round(c["delta"]),
                          "base violations": c["base_violations"], "adapter violations": c["adapter_violations"]}
                         for c in r["per_category"]], columns=CATEGORY_COLUMNS)
    # The base model's reply to the same prompt beside the adapter's, so a reader sees what changed.
    base_reply = _base_replies(path.parent)
    worst = pd.DataFrame([{"id": w["id"], "overall": _round(w["overall"]), "prompt": w["prompt"],
                           "adapter reply": w["reply"], "base reply": base_reply.get(w["id"], ""),
                           "violations": "; ".join(f"{v['type']}: \"{v['quote']}\"" for v in (w["violations"] or []))}
                          for w in r["worst_replies"]], columns=WORST_COLUMNS)
    ab = r["ab"]
    ab_md = (f"**A/B (adapter vs base, both orders):** {ab['wins']} wins, {ab['losses']} losses, {ab['ties']} ties "
             f"over {ab['n']} pairs; win rate {ab['win_rate']:.0%} (95% Wilson {ab['ci_low']:.0%}-{ab['ci_high']:.0%}); "
             f"{ab.get('inconsistent', 0)} order-dependent verdicts counted as ties." if ab.get("n") else
             "**A/B:** no pairs judged.")
    head = (f"## {r['decision']}\n\nOverall {readable(a['overall_mean'])} vs base {readable(b['overall_mean'])} "
            f"(judge `{r['judge']['name']}`, {r['eval_set']['n']} prompts, {r['created_at']}; "
            f"both sides decoded with {_describe_sampling(r.get('sampling'))})\n\n"
            f"How far to trust the judge: {describe_agreement(r['judge'].get('agreement'))}")
    lineage = dataset_line(r.get("run_config") or {})
    if lineage:
        head += f"  \n{lineage}"
    summary = (path.parent / "summary.md").read_text(encoding="utf-8") if (path.parent / "summary.md").is_file() else ""
    try:
        from .next_step import propose_for_run

        head += "\n\n" + propose_for_run(run).markdown()
    except Exception as exc:  # the results above stay readable even if the proposal cannot be made
        head += f"\n\n(next step unavailable: {exc})"
    return {"decision": head, "gates": gates, "traits": traits, "categories": cats, "worst": worst, "ab": ab_md,
            "summary": summary, "file": str(path)}


def dataset_line(run_config: dict) -> str:
    """Which training data the evaluated run used (recorded by training), one line."""
    ds = ((run_config.get("train_summary") or {}).get("dataset") or (run_config.get("config") or {}).get("dataset")
          or {})
    if not isinstance(ds, dict) or not ds:
        return ""
    parts = [f"`{ds.get('version') or ds.get('path', '?')}`"]
    if ds.get("sha256"):
        parts.append(f"sha256 {str(ds['sha256'])[:12]}")
    if ds.get("count") is not None:
        parts.append(f"{ds['count']} conversations")
    return "Trained on " + " · ".join(parts)


def _round(x, digits: int = 3):
    return None if x is None else round(float(x), digits)


GATE_COLUMNS = ["gate", "result", "value", "threshold", "detail"]
CATEGORY_COLUMNS = ["category", "n", "base", "adapter", "change", "base violations", "adapter violations"]
WORST_COLUMNS = ["id", "overall", "prompt", "adapter reply", "base reply", "violations"]


def compare_view(run_a: str | None, run_b: str | None) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """(summary markdown, per-trait frame, per-gate frame) for the tab's "Compare two runs"."""
    from .compare import compare_runs

    cmp = compare_runs(run_a or "", run_b or "")
    a, b = Path(cmp.run_a).name, Path(cmp.run_b).name

    def interval(t):
        return "-" if t["ci_low"] is None else f"{t['ci_low']:+.2f} to {t['ci_high']:+.2f}"

    traits = pd.DataFrame([{"trait": t["trait"], a: readable(t["a"]), b: readable(t["b"]),
                            "change (B - A)": "-" if t["delta"] is None else f"{t['delta']:+.2f}",
                            "95% interval": interval(t), "prompts": t["n"]} for t in cmp.traits])
    gates = pd.DataFrame([{"gate": g["gate"], f"{a}": f"{g['a_result']} ({readable(g['a'])})",
                           f"{b}": f"{g['b_result']} ({readable(g['b'])})",
                           "change (B - A)": "-" if g["delta"] is None else f"{g['delta']:+.3g}"} for g in cmp.gates])
    return cmp.markdown(), traits, gates
