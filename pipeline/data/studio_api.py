"""What the Data tab calls: one function per control, returning plain values.

The tab (studio/tabs/data.py) only lays out components and wires them to these. Long
stages (generate, balance, target, and filter with the LLM judge) start as background jobs
(`python -m pipeline data <action> ...` via pipeline.jobs), so the page can be closed and the
job keeps going; quick ones (rubric filter, dedupe, review, export) run in the request.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from ..errors import UserError
from ..evaluation.results import RESULTS_FILE
from ..jobs import JobManager
from ..jsonl import iter_jsonl
from ..settings import Settings
from . import stages
from .balance import BalanceConfig
from .dedupe import DedupeConfig
from .filter import FilterConfig
from .generate import GenerateConfig
from .review import SAMPLE_FRACTION, render_example
from .target import TargetConfig
from .workspace import DataPaths

JOB_KIND = "data"


def _opt(argv: list[str], flag: str, value) -> None:
    if value not in (None, "", 0) and value is not False:
        argv += [flag, str(value)]


def job_argv(action: str, params: dict) -> list[str]:
    """The CLI argv for a Data-tab action; validates the values first (every problem at once)."""
    p = dict(params)
    def num(key, default):
        v = p.get(key)
        return default if v in (None, "") else int(v)

    gen = GenerateConfig(examples_per_scenario=num("examples_per_scenario", 3),
                         limit=int(p["limit"]) if p.get("limit") else None,
                         max_concurrency=num("max_concurrency", 8))
    problems = gen.problems()
    if p.get("max_requests") not in (None, "") and int(p["max_requests"]) < 1:
        problems.append("max requests: must be at least 1 (leave empty for no cap)")
    if p.get("max_cost_usd") not in (None, "") and float(p["max_cost_usd"]) <= 0:
        problems.append("max cost: must be above 0 USD (leave empty for no cap)")
    argv = ["data", action]
    if action == "generate":
        _opt(argv, "--examples-per-scenario", gen.examples_per_scenario)
        _opt(argv, "--limit", gen.limit)
    elif action == "balance":
        b = BalanceConfig(target_per_scenario=int(p["target_per_scenario"]) if p.get("target_per_scenario") else None)
        problems += b.problems()
        _opt(argv, "--target-per-scenario", b.target_per_scenario)
        _opt(argv, "--judge", p.get("judge"))
        if p.get("offline"):
            argv.append("--offline")
        if p.get("with_curated"):
            argv.append("--with-curated")
    elif action == "target":
        results = (p.get("results") or "").strip()
        if not results:
            problems.append(f"evaluation results: give the path of an {RESULTS_FILE} or a plan file")
        elif not Path(results).is_file():
            problems.append(f"evaluation results: {results} not found; check the path")
        t = TargetConfig(examples_per_trait=num("per_trait", 30))
        if t.examples_per_trait < 1:
            problems.append("examples per trait: must be at least 1")
        argv.insert(2, results)
        _opt(argv, "--per-trait", t.examples_per_trait)
        _opt(argv, "--judge", p.get("judge"))
    elif action == "filter":
        f = FilterConfig(min_score=float(p.get("min_score", 6)), judge=p.get("judge") or "llm")
        problems += f.problems()
        argv += ["--judge", f.judge, "--min-score", f"{f.min_score:g}"]
    else:
        raise UserError(f"unknown data action {action!r}")
    if action != "filter":
        _opt(argv, "--max-concurrency", gen.max_concurrency)
        _opt(argv, "--max-requests", p.get("max_requests"))
        _opt(argv, "--max-cost-usd", p.get("max_cost_usd"))
    if problems:
        raise UserError(f"{action} settings:\n  " + "\n  ".join(problems))
    return argv


def start_job(jobs: JobManager, settings: Settings, action: str, params: dict):
    """Start a data stage in the background; returns the Job. Refuses (clearly) without an endpoint."""
    argv = job_argv(action, params)
    needs_generator = action in ("generate", "target") or (action == "balance" and not params.get("offline"))
    if needs_generator and not settings.generator.configured:
        raise UserError(f"{action} needs a generator endpoint: set OPENAI_API_KEY (and OPENAI_BASE_URL for a local "
                        "server) and restart the studio. Offline, use filter (rubric judge), dedupe, "
                        "balance with 'report gaps only', review and export.")
    if action == "filter" and params.get("judge") == "llm" and not settings.judge.configured:
        raise UserError("the LLM judge needs an endpoint (OPENAI_API_KEY or TASKMASTER_JUDGE_API_KEY); "
                        "choose the rubric judge to filter offline")
    return jobs.start(JOB_KIND, argv, label=f"data {action}", env=settings.job_env())


def job_status(jobs: JobManager, job_id: str | None = None) -> tuple[str, str]:
    """(markdown status line, log tail) of the given or latest data job."""
    v = jobs.view(JOB_KIND, job_id, none="No data job has run yet.")
    return v.status, v.log


def ended_job(jobs: JobManager) -> str | None:
    """The latest data job's id once it has ended (finished, failed, stopped), else None: the tab
    then redraws the overview, which the stage's output file may have changed."""
    job = jobs.latest(JOB_KIND)
    return job.id if job is not None and job.state != "running" else None


def stop_job(jobs: JobManager, job_id: str | None = None) -> tuple[str, str]:
    job = jobs.get(job_id) if job_id else jobs.latest(JOB_KIND)
    if job is None or job.state != "running":
        raise UserError("no data job is running")
    jobs.stop(job.id)
    return job_status(jobs, job.id)


def command_line(argv: list[str]) -> str:
    return "python -m pipeline " + " ".join(shlex.quote(a) for a in argv)


# ---- quick stages -----------------------------------------------------------------------
def run_quick(settings: Settings, action: str, params: dict) -> str:
    """Rubric filter, dedupe or an offline gap report, in the request; returns the summary."""
    if action == "filter":
        r = stages.run_filter(settings, FilterConfig(min_score=float(params.get("min_score", 6)), judge="rubric"))
    elif action == "dedupe":
        r = stages.run_dedupe(settings, DedupeConfig(float(params.get("threshold", 0.6)),
                                                     float(params.get("eval_threshold", 0.5))))
    elif action == "balance":
        tps = int(params["target_per_scenario"]) if params.get("target_per_scenario") else None
        r = stages.run_balance(settings, BalanceConfig(target_per_scenario=tps), offline=True,
                               with_curated=bool(params.get("with_curated")))
    else:
        raise UserError(f"{action} runs as a background job")
    return f"```\n{r['summary']}\n```"


# ---- charts -----------------------------------------------------------------------------
def overview(settings: Settings, target_per_scenario: int | None = None) -> tuple[str, list[dict], list[dict], list[dict]]:
    """(summary markdown, coverage rows, score rows, rejection-reason rows) for the Data tab's charts."""
    o = stages.overview(settings, target_per_scenario=target_per_scenario)
    # Stacked bars: "at target" up to the target, then "short" (missing) or "above target" (extra),
    # so every bar is max(count, target) high and the gap is visible at a glance.
    cov = [{"scenario": r["scenario"], "kind": k, "examples": n}
           for r in o["coverage"]
           for k, n in (("at target", min(r["count"], r["target"])),
                        ("short", max(0, r["target"] - r["count"])),
                        ("above target", max(0, r["count"] - r["target"])))]
    scores = [{"score": str(s), "examples": n} for s, n in o["scores"]]
    reasons = [{"reason": r, "examples": n} for r, n in o["reasons"]]
    short = [r for r in o["coverage"] if r["count"] < r["target"]]
    stages_done = ", ".join(k for k, v in o["files"].items() if v) or "none yet (the shipped set is the candidate set)"
    short_txt = ", ".join("{} ({}/{})".format(r["scenario"], r["count"], r["target"]) for r in short[:8])
    if len(short) > 8:
        short_txt += " ..."
    md = (f"**Candidate set:** `{o['candidates']}` · {o['count']} examples · stage outputs: {stages_done} · "
          f"exported versions: {', '.join(o['versions']) or 'none'}  \n"
          f"**Coverage:** {len(o['coverage']) - len(short)}/{len(o['coverage'])} scenarios at target"
          + (f"; short: {short_txt}" if short else ""))
    return md, cov, scores, reasons


# ---- review -----------------------------------------------------------------------------
def review_step(settings: Settings, state: dict | None, action: str = "load", *, mode: str = "pending",
                fraction: float = SAMPLE_FRACTION, note: str = "", reply: str | None = None,
                judge_kind: str = "rubric", judge=None) -> tuple[dict, str, str, str]:
    """Apply one review action to the current example, move on, and describe the new state.

    action: load | next | approve | reject | edit. Returns (state, card markdown, reply text,
    progress markdown); state = {"id", "mode", "fraction"} (kept in gr.State per session)."""
    state = dict(state or {})
    q = stages.review_queue(settings)
    cur = state.get("id")
    if action in ("approve", "reject", "edit") and not cur:
        raise UserError("no example is shown: press Load queue first")
    message = ""
    if action in ("approve", "reject"):
        decision = "approved" if action == "approve" else "rejected"
        q.decide(cur, decision, note)
        message = f"{cur}: {decision}."
    elif action == "edit":
        if judge is None:
            from .filter import get_judge

            judge = get_judge(judge_kind, stages.persona_of(settings), settings)
        ex, problems = q.edit(cur, reply or "", judge)
        if problems:
            state.update(id=cur, mode=mode, fraction=fraction)
            return (state, render_example(ex), ex.assistant_turns[-1],
                    _progress_md(q, mode, fraction) + "  \n**Edit saved but not approved** (re-judged): "
                    + "; ".join(problems) + ". Change it again, approve it anyway, or reject it.")
        message = f"{cur}: edit saved, re-judged and approved."
    after = cur if action in ("approve", "reject", "edit", "next") else None
    nxt = q.next_id(mode, after=after, fraction=fraction)
    state.update(id=nxt, mode=mode, fraction=fraction)
    prog = _progress_md(q, mode, fraction) + (f"  \n{message}" if message else "")
    if nxt is None:
        return state, "*Nothing left to review in this mode.*", "", prog
    ex = q.get(nxt)
    return state, render_example(ex), ex.assistant_turns[-1], prog


def _progress_md(q, mode: str, fraction: float) -> str:
    p = q.progress(mode, fraction)
    what = f"random sample ({fraction:.0%})" if mode == "sample" else mode
    return (f"**{what}:** {p['reviewed']}/{p['total']} reviewed · approved {p['approved']} · "
            f"rejected {p['rejected']} · pending {p['pending']}")


def export_from_ui(settings: Settings, include_pending: bool, note: str, repo: str | None) -> str:
    r = stages.run_export(settings, include_pending=include_pending, note=note or "",
                          push_to=(repo or "").strip() or None)
    return r["summary"]


def rejected_rows(settings: Settings, limit: int = 200) -> list[list[str]]:
    """(id, stage, reasons) of set-aside examples, for a table."""
    paths = DataPaths.of(settings)
    rows = []
    for f in sorted(paths.root.glob("rejected.*.jsonl")) if paths.root.is_dir() else []:
        for row in iter_jsonl(f):
            rej = row.get("rejection") or {}
            rows.append([row.get("id", "?"), rej.get("stage", "?"), "; ".join(rej.get("reasons", []))])
    return rows[:limit]
