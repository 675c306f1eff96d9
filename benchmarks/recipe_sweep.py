"""The SFT recipe sweep on the embedded model: train each setting, evaluate it on the held-out eval
set, print one table.

    nice -n 19 python -m benchmarks.recipe_sweep                      # every setting below
    nice -n 19 python -m benchmarks.recipe_sweep A-cpu-demo B-5-epochs  # some of them
    python -m benchmarks.recipe_sweep --table                         # only print what is on disk
                                                                      # (also what `python -m benchmarks` does)
    python -m benchmarks.recipe_sweep --runs-dir runs/sweep --limit 16  # a quicker look
    python -m benchmarks.recipe_sweep --base DIR --max-steps 2 --limit 2 --runs-dir /tmp/s  # the machinery only
    nice -n 19 python -m benchmarks.recipe_sweep E-5ep-lr-6e-4 --dpo-from E-5ep-lr-6e-4  # + a DPO round

`--dpo-from SETTING` adds one preference round on that setting's adapter (`train --method dpo
--from-run RUNS_DIR/SETTING --self-play N`: chosen = the curated reply, rejected = the adapter's own
reply, SPIN-style, plus judge-ranked pairs among its samples) into RUNS_DIR/SETTING+dpo, evaluates
it the same way and adds a row whose last column is its A/B against its SFT parent.

Each setting is a `python -m pipeline train` command (the cpu-demo preset plus flags) into
RUNS_DIR/<setting>, then `python -m pipeline eval --run RUNS_DIR/<setting> --judge reader`. A
setting whose run already finished (or was evaluated) is not redone, so an interrupted sweep
continues where it stopped; delete the folder to redo one. Everything runs one process at a
time: on a shared CPU box start the sweep under `nice -n 19`.

The base model's replies are generated once: the first evaluated run's `eval/responses_base.jsonl`
is copied into the next run's eval folder, and `pipeline eval` reuses it only when every reply's
key (base, sampling, system prompt, prompt) matches, so nothing stale is ever judged.

Columns: setting | steps | training time (wall, from train_summary.json) with the machine's 1-minute
load average when it started and ended (RUNS_DIR/<setting>.load.json; other work slows training) | final loss | mean overall adapter / base (1-10,
the judge's) | win rate vs base [Wilson 95%] (both orders, a tie counts half) | violations per
64 replies adapter / base | win rate vs the first setting (today's cpu-demo), same judge, same
sampling | the judge's name and version.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (name, what it changes, train flags on top of `--preset cpu-demo`). The first is the reference.
# cpu-demo: r=8/alpha=16 on the 7 projections of the last 12 of 30 layers, 3 epochs, lr 3e-4
# cosine, 8 conversations per step (packed), max length 512.
SETTINGS: list[tuple[str, str, list[str]]] = [
    ("A-cpu-demo", "today's cpu-demo preset (3 epochs, lr 3e-4, r=8, last 12 layers)", []),
    ("B-5-epochs", "5 epochs", ["--epochs", "5"]),
    ("C-lr-1e-3", "lr 1e-3 (3 epochs)", ["--lr", "1e-3"]),
    ("D-r16-all-layers", "r=16/alpha=32 on all 30 layers (3 epochs)",
     ["--rank", "16", "--alpha", "32", "--set", "lora.layers=0"]),
    ("E-5ep-lr-6e-4", "5 epochs, lr 6e-4", ["--epochs", "5", "--lr", "6e-4"]),
    ("F-neftune", "5 epochs, lr 6e-4, NEFTune alpha 5", ["--epochs", "5", "--lr", "6e-4", "--set", "neftune_alpha=5"]),
]
JUDGE = "reader"


def _py(args: list[str], log: Path) -> None:
    """One pipeline command in its own process (its memory is freed when it ends), logged to `log`."""
    cmd = [sys.executable, "-m", "pipeline", *args]
    print(f"  $ {' '.join(cmd[2:])}  (log: {log})", flush=True)
    with log.open("w") as f:
        rc = subprocess.call(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if rc:
        raise SystemExit(f"`{' '.join(cmd[2:])}` failed (exit {rc}); see {log}")


def _load() -> str:
    try:
        return "load %.1f" % os.getloadavg()[0]
    except OSError:
        return "load n/a"


def _train(name: str, args: list[str], runs_dir: Path) -> None:
    """Run one training command and record the machine's load average beside it (RUNS_DIR/NAME.load.json):
    a training time means little without the load it was measured under."""
    load_file = runs_dir / f"{name}.load.json"
    before = os.getloadavg()[0]
    _py(args, runs_dir / f"{name}.train.log")
    prev = json.loads(load_file.read_text()) if load_file.is_file() else []  # one entry per (resumed) segment
    load_file.write_text(json.dumps(prev + [{"start": round(before, 1), "end": round(os.getloadavg()[0], 1)}]))


def _train_load(runs_dir: Path, name: str) -> str:
    f = runs_dir / f"{name}.load.json"
    if not f.is_file():
        return "n/a"
    return ", ".join(f"{x['start']}-{x['end']}" for x in json.loads(f.read_text()))


def run_setting(name: str, flags: list[str], runs_dir: Path, limit: int | None, extra: list[str] = ()) -> None:
    from pipeline.runs import RunFolder

    run = RunFolder(runs_dir / name)
    if not run.is_finished():
        print(f"{name}: training ({_load()})", flush=True)
        resume = run.exists() and run.last_checkpoint() is not None
        args = ["train", "--resume", str(run.path)] if resume else \
            ["train", "--preset", "cpu-demo", *flags, *extra, "--out", str(run.path), "--quiet"]
        _train(name, args, runs_dir)
    if not run.has_results() or (limit and run.results().eval_set.n != limit):
        base_replies = [p for p in sorted(runs_dir.glob("*/eval/responses_base.jsonl")) if p.parent.parent != run.path]
        if base_replies and not (run.eval_dir / "responses_base.jsonl").is_file():
            run.eval_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(base_replies[0], run.eval_dir / "responses_base.jsonl")
        print(f"{name}: evaluating ({_load()})", flush=True)
        _py(["eval", "--run", str(run.path), "--judge", JUDGE, *(["--limit", str(limit)] if limit else [])],
            runs_dir / f"{name}.eval.log")


def run_dpo(parent: str, runs_dir: Path, limit: int | None, self_play: int, extra: list[str] = ()) -> str:
    from pipeline.runs import RunFolder

    name = f"{parent}+dpo"
    run = RunFolder(runs_dir / name)
    if not run.is_finished():
        print(f"{name}: preference round ({_load()})", flush=True)
        resume = run.exists() and run.last_checkpoint() is not None
        _train(name, ["train", "--resume", str(run.path)] if resume else
               ["train", "--method", "dpo", "--from-run", str(runs_dir / parent), "--self-play", str(self_play),
                *extra, "--out", str(run.path), "--quiet"], runs_dir)
    run_setting(name, [], runs_dir, limit)  # trained already: only evaluates
    return name


def table(names: list[str], runs_dir: Path) -> list[dict]:
    from benchmarks.adapter_ab import head_to_head
    from pipeline.runs import RunFolder

    rows = []
    for name in names:
        run = RunFolder(runs_dir / name)
        # a DPO round is compared with its SFT parent, every other setting with the reference
        ref = runs_dir / (name[:-len("+dpo")] if name.endswith("+dpo") else SETTINGS[0][0])
        if not run.has_results():
            st = run.status() if run.exists() else {}
            state = (f"{st.get('state')} at step {st.get('step')}/{st.get('max_steps')}, not evaluated" if st
                     else "not started")
            rows.append({"setting": name, "missing": state})
            continue
        res, summ = run.results(), run.summary()
        ab, ma, mb = res.ab, res.adapter_metrics, res.base_metrics
        vs_ref = None
        if run.path != ref and RunFolder(ref).has_results():
            vs_ref = head_to_head(str(run.path), str(ref), judge=JUDGE)
        rows.append({
            "setting": name, "steps": summ.get("steps"), "train_s": summ.get("runtime_s"),
            "load": _train_load(runs_dir, name),
            "final_loss": summ.get("final_loss"), "n": ab.n,
            "overall": (ma.get("overall_mean"), mb.get("overall_mean")),
            "win": (ab.win_rate, ab.ci_low, ab.ci_high, ab.wins, ab.losses, ab.ties),
            "viol64": tuple(round(64 * m["violation_rate"], 1) if m.get("violation_rate") is not None else None
                            for m in (ma, mb)),
            "vs_ref": vs_ref, "vs": ref.name, "judge": res.judge.name,
        })
    return rows


def _fmt_rate(rate, lo, hi) -> str:
    return "n/a" if rate is None else f"{rate:.0%} [{lo:.0%}, {hi:.0%}]"


def render(rows: list[dict]) -> str:
    head = (f"| setting | steps | training (load avg start-end) | final loss | eval prompts | overall adapter / base | win rate vs base [95%] (W-L-T) "
            f"| violations /64 adapter / base | vs reference [95%] (W-L-T) | judge |")
    out = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        if "missing" in r:
            out.append(f"| {r['setting']} | {r['missing']} |")
            continue
        w = r["win"]
        t = f"{r['train_s'] / 60:.1f} min ({r['load']})" if r["train_s"] else "n/a"
        v = r["vs_ref"]
        vs = (f"vs {r['vs']}: {_fmt_rate(v['win_rate'], v['ci_low'], v['ci_high'])} ({v['wins']}-{v['losses']}-"
              f"{v['ties']})" if v else "(reference)" if r["setting"] == SETTINGS[0][0] else "-")
        out.append(f"| {r['setting']} | {r['steps']} | {t} | {r['final_loss']:.3f} | {r['n']} | {r['overall'][0]:.2f} / "
                   f"{r['overall'][1]:.2f} | {_fmt_rate(*w[:3])} ({w[3]}-{w[4]}-{w[5]}) | {r['viol64'][0]} / "
                   f"{r['viol64'][1]} | {vs} | {r['judge']} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.recipe_sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("settings", nargs="*", help=f"settings to run (default all: {', '.join(s[0] for s in SETTINGS)})")
    p.add_argument("--runs-dir", default=str(ROOT / "runs" / "sweep"))
    p.add_argument("--limit", type=int, default=None, help="only the first N eval prompts")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for training and eval (default: the preset's = physical cores). On a busy "
                        "shared box 1 is much faster: two threads that wait on each other stall under load")
    p.add_argument("--base", help="base model for every setting (default: the preset's, the embedded smollm2-135m)")
    p.add_argument("--max-steps", type=int, default=None, help="stop each training after N steps (checks the "
                                                                 "machinery; the figures then mean nothing)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a TrainConfig setting for every SFT setting (after its own flags), e.g. lora.layers=0")
    p.add_argument("--dpo-from", metavar="SETTING", help="also run a DPO round on SETTING's adapter and A/B it "
                                                           "against that parent")
    p.add_argument("--self-play", type=int, default=32, help="DPO: curated conversations to self-play (default 32)")
    p.add_argument("--table", action="store_true", help="print the table of what is on disk; train nothing")
    # `python -m benchmarks` (every benchmark, `make benchmarks`) calls main([]): print what is on disk
    # rather than start an hour of training; the sweep itself runs from its own command line.
    if argv is not None and not argv:
        argv = ["--table"]
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    known = {s[0]: s for s in SETTINGS}
    # with --table, any evaluated run folder under RUNS_DIR may be listed too (e.g. a stopped, renamed one)
    unknown = [s for s in a.settings + ([a.dpo_from] if a.dpo_from else [])
               if s not in known and not (a.table and (Path(a.runs_dir) / s).is_dir())]
    if unknown:
        print(f"unknown setting(s) {unknown}; choose from {', '.join(known)}", file=sys.stderr)
        return 2
    names = a.settings or ([a.dpo_from] if a.dpo_from else list(known))
    runs_dir = Path(a.runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    dpo_extra = [*(["--threads", str(a.threads)] if a.threads else []),
                 *(["--max-steps", str(a.max_steps)] if a.max_steps else [])]
    extra = [*dpo_extra, *(["--base", a.base] if a.base else []), *[x for kv in a.set for x in ("--set", kv)]]  # a DPO round takes its parent's base
    if a.threads:
        os.environ["OMP_NUM_THREADS"] = str(a.threads)  # eval's torch threads (training also gets --threads)
    if not a.table:
        # the reference first: every other row is also compared with it
        for name in ([SETTINGS[0][0]] if SETTINGS[0][0] not in names else []) + names:
            t0 = time.time()
            run_setting(name, known[name][2], runs_dir, a.limit, extra)
            print(f"{name}: done in {time.time() - t0:.0f} s ({_load()})", flush=True)
        if a.dpo_from:
            run_dpo(a.dpo_from, runs_dir, a.limit, a.self_play, dpo_extra)
    if a.dpo_from:
        names = names + [f"{a.dpo_from}+dpo"]
    print(f"\nrecipe sweep ({runs_dir}, judge {JUDGE}; {_load()} now; training times are wall clock on this machine)")
    for name in names:
        what = known[name][1] if name in known else \
            ("DPO round on " + name[:-4] + " (self-play)" if name.endswith("+dpo") else "a run folder")
        print(f"  {name}: {what}")
    print(render(table(names, runs_dir)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
