"""Generation throughput, cache reuse, fault tolerance and resume, against the project's
OpenAI-compatible server on 127.0.0.1 (pipeline/testing/openai_server.py).

    python -m benchmarks.generate_throughput            # full: the sequential loop really runs (~60 s)
    python -m benchmarks.generate_throughput --quick    # sequential time extrapolated from 40 calls

What is measured (228 examples = the seed's raw count; 37 scenarios x 7 variants, cut at 228):
  1. sequential   the seed's generate_batch shape: one call after another (concurrency 1)
  2. concurrent   pipeline.data.generate with max_concurrency=16
  3. rerun        the same job again on the same cache: requests sent must be 0
  4. faults       30% of requests fail (429 with Retry-After, 500, timeout, malformed body):
                  every example must be produced or listed as failed with its reason; a rerun
                  (faults off, same cache) sends only the calls that failed
  5. kill/resume  `python -m pipeline data generate` killed (SIGKILL) halfway, then restarted:
                  completed calls repeated must be 0
The server answers each request after `--latency` seconds (default 0.25 s).
Targets (issue #6): concurrent <= sequential / 10; rerun requests = 0; accounted = 228; repeated = 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.data.generate import EXAMPLE_SCHEMA, GenerateConfig, build_messages, few_shot_pool, generate, plan
from pipeline.data.records import load_examples
from pipeline.llm_client import ClientConfig, LLMClient
from pipeline.settings import REPO_ROOT, Endpoint
from pipeline.spec import load_persona
from pipeline.testing.openai_server import OpenAIServer

N_EXAMPLES = 228
PER_SCENARIO = 7  # 37 scenarios x 7 = 259, cut at 228 (variant-major, so every scenario gets 6 or 7)
MODEL = "bench-model"


def _client(srv: OpenAIServer, cache: Path | None, **kw) -> LLMClient:
    return LLMClient(ClientConfig(Endpoint(srv.base_url, MODEL, "sk-bench"), cache_dir=cache, **kw))


def _cfg(concurrency: int) -> GenerateConfig:
    return GenerateConfig(examples_per_scenario=PER_SCENARIO, limit=N_EXAMPLES, max_concurrency=concurrency)


def sequential(persona, srv: OpenAIServer, n: int, approved) -> float:
    """The seed's loop: for each scenario, for each example, one blocking call."""
    client = _client(srv, None, max_concurrency=1)
    slots = plan(persona, _cfg(1))[:n]
    pool = few_shot_pool(persona, approved)
    t0 = time.perf_counter()
    for s in slots:
        msgs, _ = build_messages(persona, s, pool, 2)
        client.chat(msgs, temperature=0.9, max_tokens=400, json_schema=EXAMPLE_SCHEMA, seed=s.variant)
    return time.perf_counter() - t0


def concurrent(persona, srv, cache: Path, approved, **kw):
    client = _client(srv, cache, max_concurrency=16, **kw)
    t0 = time.perf_counter()
    res = generate(persona, client, _cfg(16), approved=approved)
    return time.perf_counter() - t0, res, client.stats


def kill_and_resume(srv: OpenAIServer, work: Path) -> dict:
    env = {**os.environ, "OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "sk-bench",
           "TASKMASTER_GENERATOR_MODEL": MODEL, "TASKMASTER_WORK_DIR": str(work / "work"),
           "TASKMASTER_CACHE_DIR": str(work / "cache"), "PYTHONPATH": str(REPO_ROOT),
           "TASKMASTER_BASE_MODEL": "smollm2-135m"}
    argv = [sys.executable, "-m", "pipeline", "data", "generate", "--limit", str(N_EXAMPLES),
            "--examples-per-scenario", str(PER_SCENARIO), "--max-concurrency", "16", "--json"]
    cache = work / "cache" / "llm"
    srv.reset()
    proc = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(cache.rglob("*.json"))) < N_EXAMPLES // 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p.stem for p in cache.rglob("*.json")}
    sent_before = srv.count()
    srv.reset()
    keyer = _client(srv, None)
    out = subprocess.run(argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    result = json.loads(out.stdout[out.stdout.index("{"):])
    # Which requests did the restarted job send? Recompute each one's cache key from its body.
    resent = []
    for r in srv.requests:
        b = r["body"] or {}
        if r["path"] != "/v1/chat/completions" or "messages" not in b:
            continue  # a connection the killed process opened but never sent a body on
        resent.append(keyer.request_key(b["messages"], temperature=b.get("temperature", 0.0),
                                        max_tokens=b.get("max_tokens"), json_schema=EXAMPLE_SCHEMA, seed=b.get("seed")))
    final = load_examples(work / "work" / "state" / "data" / "taskmaster" / "generated.jsonl")
    return {"completed_before_kill": len(done), "sent_before_kill": sent_before, "sent_after_restart": srv.count(),
            "repeated_completed": len(set(resent) & done), "cache_hits_after_restart": result["stats"]["cache_hits"],
            "final_examples": len(final), "final_failed": result["failed"]}


def table(rows: list[tuple], headers: tuple) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda r: "| " + " | ".join(str(x).ljust(w) for x, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.generate_throughput")
    ap.add_argument("--latency", type=float, default=0.25, help="server seconds per reply (default 0.25)")
    ap.add_argument("--quick", action="store_true", help="time 40 sequential calls and extrapolate to 228")
    ap.add_argument("--fault-rate", type=float, default=0.30)
    a = ap.parse_args(argv)
    persona = load_persona(REPO_ROOT / "data" / "personas" / "taskmaster")
    approved = load_examples(REPO_ROOT / "data" / "personas" / "taskmaster" / "train.jsonl")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with OpenAIServer(latency_s=a.latency, model=MODEL) as srv:
            n_seq = 40 if a.quick else N_EXAMPLES
            t_seq = sequential(persona, srv, n_seq, approved) * (N_EXAMPLES / n_seq)
            srv.reset()
            t_con, res, st = concurrent(persona, srv, tmp / "c1", approved)
            sent1 = srv.count()
            srv.reset()
            t_re, res2, st2 = concurrent(persona, srv, tmp / "c1", approved)
            sent2 = srv.count()
        speedup = t_seq / t_con
        rows = [("sequential loop (seed shape)" + (" [extrapolated from 40]" if a.quick else ""), N_EXAMPLES,
                 1, f"{t_seq:.1f}", N_EXAMPLES, "-"),
                ("concurrent generate", len(res.examples), 16, f"{t_con:.1f}", sent1, f"{speedup:.1f}x"),
                ("rerun (same cache)", len(res2.examples), 16, f"{t_re:.2f}", sent2, "-")]
        print(f"Generation of {N_EXAMPLES} examples, server latency {a.latency * 1000:.0f} ms")
        print(table(rows, ("run", "examples", "concurrency", "seconds", "requests sent", "speed-up")))
        ok &= t_con <= t_seq / 10 and sent2 == 0 and len(res.examples) == N_EXAMPLES

        # ---- faults -----------------------------------------------------------------
        rows = []
        for retries in (5, 1):
            with OpenAIServer(latency_s=a.latency, model=MODEL, fault_rate=a.fault_rate, seed=7,
                              retry_after_s=0.5, timeout_sleep_s=2.5) as srv:
                t, res, st = concurrent(persona, srv, tmp / f"faults{retries}", approved, timeout_s=2.0,
                                        max_retries=retries)
                injected = srv.faults_injected()
            # Rerun the same job on the same cache, faults off: only the calls that failed are sent.
            with OpenAIServer(latency_s=a.latency, model=MODEL) as clean:
                _, res_again, st_again = concurrent(persona, clean, tmp / f"faults{retries}", approved)
            ok &= st_again["requests_sent"] == len(res.failed) and len(res_again.examples) == N_EXAMPLES
            reasons: dict[str, int] = {}
            for f in res.failed:
                k = f["reason"].split(" (gave up")[0]
                reasons[k] = reasons.get(k, 0) + 1
            accounted = len(res.examples) + len(res.failed)
            rows.append((retries, st["requests_sent"], json.dumps(injected, sort_keys=True), len(res.examples),
                         len(res.failed), "; ".join(f"{n} x {r}" for r, n in reasons.items()) or "-",
                         f"{accounted}/{N_EXAMPLES}", f"{t:.1f}", st_again["requests_sent"]))
            ok &= accounted == N_EXAMPLES and all(f["reason"] for f in res.failed)
        print(f"\nFault injection: {a.fault_rate:.0%} of requests fail (429 + Retry-After 0.5 s, 500, timeout at 2 s, "
              "malformed body)")
        print(table(rows, ("max_retries", "requests", "faults injected", "produced", "failed", "failure reasons",
                           "accounted", "seconds", "requests on rerun")))

        # ---- kill / resume ----------------------------------------------------------
        with OpenAIServer(latency_s=a.latency, model=MODEL) as srv:
            k = kill_and_resume(srv, tmp / "kill")
        print("\nKill halfway (SIGKILL) and restart `python -m pipeline data generate`")
        print(table([(k["completed_before_kill"], k["sent_before_kill"], k["sent_after_restart"],
                      k["cache_hits_after_restart"], k["repeated_completed"], k["final_examples"])],
                    ("completed before kill", "sent before kill", "sent after restart", "cache hits after restart",
                     "completed calls repeated", "examples at the end")))
        ok &= k["repeated_completed"] == 0 and k["final_examples"] == N_EXAMPLES
    print(f"\ntargets met: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
