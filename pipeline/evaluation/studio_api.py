"""What the studio's Evaluate tab calls (one call per callback; no Gradio here).

The evaluation itself always runs as a background job (`python -m pipeline evaluate ...` via
JobManager): generation on CPU takes minutes and must survive a page refresh. The tab reads
the results back through the run folder (`RunFolder.results()`, the typed results model).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..jobs import JobManager
from ..settings import Settings
from ..runs import RunFolder, list_runs

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
                        "or choose the rubric judge")
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


def _describe_sampling(s: dict | None) -> str:
    from ..inference import SAMPLING_FIELDS, SamplingConfig

    if not s:
        return "unrecorded sampling"
    return SamplingConfig(**{k: v for k, v in s.items() if k in SAMPLING_FIELDS}).describe()


# Column names of the tab's tables (the tab builds its DataFrames from these rows).
COLUMNS = {"gates": ["gate", "result", "value", "threshold", "detail"], "traits": ["trait", "model", "score", "bar"],
           "categories": ["category", "n", "base", "adapter", "change", "base violations", "adapter violations"],
           "worst": ["id", "overall", "prompt", "reply", "violations"]}


@dataclass
class EvalView:
    """Everything the tab shows for a run's latest evaluation: markdown and table rows."""

    decision: str = "No evaluation for this run yet: start one above."
    gates: list[dict] = field(default_factory=list)
    traits: list[dict] = field(default_factory=list)
    categories: list[dict] = field(default_factory=list)
    worst: list[dict] = field(default_factory=list)
    ab: str = ""
    summary: str = ""
    file: str | None = None


def view(run: str | None) -> EvalView:
    """The run's evaluation as rows (an empty view when it has none yet)."""
    res = RunFolder(run).results() if run else None
    if res is None:
        return EvalView()
    path = RunFolder(run).results_path
    a, b = res.adapter_metrics, res.base_metrics
    gates = [{"gate": g.name, "result": "PASS" if g.passed else "FAIL",
              "value": json.dumps(g.value) if isinstance(g.value, (dict, list)) else g.value,
              "threshold": g.threshold, "detail": g.detail} for g in res.gates]
    # "bar" gives each (trait, model) its own bar: Gradio's BarPlot stacks bars that share an x
    # value, which would pile base on adapter instead of setting them side by side.
    traits = [{"trait": t, "model": m, "score": src["trait_means"].get(t), "bar": f"{t} · {m}"}
              for t in a["trait_means"] for m, src in (("base", b), ("adapter", a))]
    cats = [{"category": c["category"], "n": c["n"], "base": c["base_mean"], "adapter": c["adapter_mean"],
             "change": c["delta"], "base violations": c["base_violations"],
             "adapter violations": c["adapter_violations"]} for c in res.per_category]
    worst = [{"id": w["id"], "overall": w["overall"], "prompt": w["prompt"], "reply": w["reply"],
              "violations": "; ".join(f"{v['type']}: \"{v['quote']}\"" for v in (w["violations"] or []))}
             for w in res.worst_replies]
    ab = res.ab
    ab_md = (f"**A/B (adapter vs base, both orders):** {ab.wins} wins, {ab.losses} losses, {ab.ties} ties "
             f"over {ab.n} pairs; win rate {ab.win_rate:.0%} (95% Wilson {ab.ci_low:.0%}-{ab.ci_high:.0%}); "
             f"{getattr(ab, 'inconsistent', 0)} order-dependent verdicts counted as ties." if ab.n else
             "**A/B:** no pairs judged.")
    head = (f"## {res.decision}\n\nOverall {a['overall_mean']} vs base {b['overall_mean']} "
            f"(judge `{res.judge.name}`, {res.eval_set.n} prompts, {res.created_at}; "
            f"both sides decoded with {_describe_sampling(res.sampling)})")
    summary = (path.parent / "summary.md").read_text(encoding="utf-8") if (path.parent / "summary.md").is_file() else ""
    try:
        from .next_step import propose_for_run

        head += "\n\n" + propose_for_run(run).markdown()
    except Exception as exc:  # the results above stay readable even if the proposal cannot be made
        head += f"\n\n(next step unavailable: {exc})"
    return EvalView(head, gates, traits, cats, worst, ab_md, summary, str(path))
