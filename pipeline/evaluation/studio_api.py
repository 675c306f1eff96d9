"""What the studio's Evaluate tab calls (one call per callback; no Gradio here).

The evaluation itself always runs as a background job (`python -m pipeline evaluate ...` via
JobManager): generation on CPU takes minutes and must survive a page refresh. The tab reads
the results back through the run folder (`RunFolder.results()`, the typed results model), and
the running evaluation's progress through its progress file (pipeline/evaluation/progress.py).
What it hands the tab are rows (lists of dicts) and dataclasses; the tab makes the tables.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..judges import describe_agreement
from ..jobs import JobManager
from ..settings import Settings
from ..runs import RunFolder, list_runs
from .progress import read_progress
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
               max_new_tokens=None, temperature=None, top_p=None) -> tuple[str, "JobStatus"]:
    argv = eval_argv(run, judge, limit, max_new_tokens, temperature, top_p)
    if judge == "llm" and not settings.judge.configured:
        raise UserError("the LLM judge needs an endpoint: set OPENAI_API_KEY (and OPENAI_BASE_URL for a local server), "
                        "or choose the reader or rubric judge (offline)")
    if not RunFolder(run).has_adapter():
        raise UserError(f"{run} has no adapter/adapter_config.json; choose a finished training run")
    job = jobs.start(JOB_KIND, argv, run_dir=str(run), label=f"eval {Path(run).name} ({judge})")
    return f"Started `python -m pipeline {' '.join(shlex.quote(a) for a in argv)}`", job_status(jobs, job.id)


@dataclass(frozen=True)
class Progress:
    """Where the evaluation job the tab follows has got (the tab draws the bar from it).

    state: none (no evaluation yet) | starting (its process is loading, no progress written yet)
    | running | finished | failed | stopped | lost (the job's state once it is over)."""
    state: str
    stage: str = ""
    done: int = 0
    total: int = 0
    fraction: float = 0.0  # of the whole evaluation, 0..1
    eta_s: float | None = None  # of the current stage
    elapsed_s: float | None = None
    next_stages: list[str] = field(default_factory=list)
    run: str | None = None


@dataclass(frozen=True)
class JobStatus:
    status: str  # markdown: label, state, the command
    log: str
    progress: Progress
    job_id: str | None = None

    @property
    def finished_job(self) -> str | None:
        """The job's id once it finished (the tab then shows its run's results), else None."""
        return self.job_id if self.progress.state == "finished" else None


def job_status(jobs: JobManager, job_id: str | None = None) -> JobStatus:
    v = jobs.view(JOB_KIND, job_id, none="No evaluation has run yet.")
    return JobStatus(v.status, v.log, job_progress(v.job), v.job.id if v.job else None)


def job_progress(job) -> Progress:
    """The job's progress file read against the job: a file older than the job is an earlier
    evaluation's (not this one's), and a job that is over shows its own end state."""
    if job is None:
        return Progress("none")
    p = read_progress(RunFolder(job.run_dir).eval_progress_path) if job.run_dir else None
    if p is not None and p.started_at < job.started_at - 1:  # 1 s: the two clocks are the same machine's
        p = None
    state = job.state
    if p is None:
        return Progress("starting" if state == "running" else state, fraction=1.0 if state == "finished" else 0.0,
                        run=job.run_dir)
    if state == "running" and p.state == "failed":
        state = "failed"
    elapsed, eta = p.elapsed_s, None
    if state == "running":
        # The file is rewritten once per batch; between writes the clock keeps going.
        since = max(0.0, time.time() - p.updated_at)
        elapsed = round(p.elapsed_s + since, 1)
        eta = None if p.eta_s is None else round(max(0.0, p.eta_s - since), 1)
    return Progress(state, stage=p.stage, done=p.done, total=p.total,
                    fraction=1.0 if state == "finished" else p.fraction, eta_s=eta, elapsed_s=elapsed,
                    next_stages=p.next_stages if state == "running" else [], run=job.run_dir)


def stop_eval(jobs: JobManager) -> JobStatus:
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


@dataclass(frozen=True)
class EvalView:
    """Everything the tab shows for a run's latest evaluation; tables as rows (lists of dicts,
    keys = the column names in GATE_COLUMNS, TRAIT_COLUMNS, CATEGORY_COLUMNS, WORST_COLUMNS)."""
    decision: str = "No evaluation for this run yet: start one above."
    gates: list[dict] = field(default_factory=list)
    traits: list[dict] = field(default_factory=list)
    categories: list[dict] = field(default_factory=list)
    worst: list[dict] = field(default_factory=list)
    ab: str = ""
    summary: str = ""
    file: str | None = None


def view(run: str | None) -> EvalView:
    """The run's latest evaluation (an EvalView with empty tables if it has none yet)."""
    if not run:
        return EvalView()
    path = results_path(run)
    if not path.is_file():
        return EvalView()
    r = load_results(path).model_dump()
    a, b = r["metrics"]["adapter"], r["metrics"]["base"]
    gates = [{"gate": g["name"], "result": "PASS" if g["passed"] else "FAIL", "value": readable(g["value"]),
              "threshold": readable(g["threshold"]), "detail": g["detail"]} for g in r["gates"]]
    # "bar" gives each (trait, model) its own bar: Gradio's BarPlot stacks bars that share an x
    # value, which would pile base on adapter instead of setting them side by side.
    traits = [{"trait": t, "model": m, "score": src["trait_means"].get(t), "bar": f"{t} · {m}"}
              for t in a["trait_means"] for m, src in (("base", b), ("adapter", a))]
    cats = [{"category": c["category"], "n": c["n"], "base": _round(c["base_mean"]),
             "adapter": _round(c["adapter_mean"]), "change": _round(c["delta"]),
             "base violations": c["base_violations"], "adapter violations": c["adapter_violations"]}
            for c in r["per_category"]]
    # The base model's reply to the same prompt beside the adapter's, so a reader sees what changed.
    base_reply = _base_replies(path.parent)
    worst = [{"id": w["id"], "overall": _round(w["overall"]), "prompt": w["prompt"],
              "adapter reply": w["reply"], "base reply": base_reply.get(w["id"], ""),
              "violations": "; ".join(f"{v['type']}: \"{v['quote']}\"" for v in (w["violations"] or []))}
             for w in r["worst_replies"]]
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
    return EvalView(head, gates, traits, cats, worst, ab_md, summary, str(path))


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
TRAIT_COLUMNS = ["trait", "model", "score", "bar"]
CATEGORY_COLUMNS = ["category", "n", "base", "adapter", "change", "base violations", "adapter violations"]
WORST_COLUMNS = ["id", "overall", "prompt", "adapter reply", "base reply", "violations"]


@dataclass(frozen=True)
class CompareView:
    """The tab's "Compare two runs": a summary and two tables as rows (column order = key order)."""
    markdown: str
    traits: list[dict]
    gates: list[dict]


def compare_view(run_a: str | None, run_b: str | None) -> CompareView:
    from .compare import compare_runs

    cmp = compare_runs(run_a or "", run_b or "")
    a, b = Path(cmp.run_a).name, Path(cmp.run_b).name

    def interval(t):
        return "-" if t["ci_low"] is None else f"{t['ci_low']:+.2f} to {t['ci_high']:+.2f}"

    traits = [{"trait": t["trait"], a: readable(t["a"]), b: readable(t["b"]),
               "change (B - A)": "-" if t["delta"] is None else f"{t['delta']:+.2f}",
               "95% interval": interval(t), "prompts": t["n"]} for t in cmp.traits]
    gates = [{"gate": g["gate"], f"{a}": f"{g['a_result']} ({readable(g['a'])})",
              f"{b}": f"{g['b_result']} ({readable(g['b'])})",
              "change (B - A)": "-" if g["delta"] is None else f"{g['delta']:+.3g}"} for g in cmp.gates]
    return CompareView(cmp.markdown(), traits, gates)
