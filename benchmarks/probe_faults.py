"""Issue 18's probe, reproducible: bad input and faults against the real components.

    .venv/bin/python -m benchmarks.probe_faults            # everything (~3-6 min on 2 busy cores)
    .venv/bin/python -m benchmarks.probe_faults --skip-training

Prints one table:
  * endpoints refused: every admin handler of the real studio (admin password set), called
    anonymously through gradio_client, plus malformed cookies, anonymous/oversized uploads;
  * lockout: 25 wrong guesses with a rotating X-Forwarded-For from loopback: how many were
    checked at full speed (the rest waited their turn), and whether the admin still got in;
  * votes stored: 20 concurrent voters x 3 battles, and 50 fresh sessions from one browser;
  * faults survived: 5 corrupt-newest-checkpoint resumes of a real tiny-model run;
  * bad inputs: the malformed data files and persona specs of pipeline/testing/bad_inputs.py,
    each -> clear message (naming the file) / traceback / silently accepted;
  * secrets found / missed of the 15 planted by pipeline/testing/bad_inputs.secret_plants.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PASSWORD = "probe-admin-password-1"


def probe_endpoints(tmp: Path) -> dict:
    import socket
    import urllib.error
    import urllib.request

    from gradio_client import Client

    from pipeline.settings import Settings
    from studio import app as studio_app
    from studio.access import COOKIE, REFUSAL

    shutil.copytree(REPO / "data", tmp / "root" / "data")
    settings = Settings.from_env(env={"TASKMASTER_ADMIN_PASSWORD": PASSWORD}, root=tmp / "root",
                                 work_dir=tmp / "work", cache_dir=REPO / ".cache")
    demo = studio_app.build_app(settings)
    demo.queue()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, show_error=False,
                **demo.studio_launch_kwargs)
    url = f"http://127.0.0.1:{port}"
    out = {"admin_handlers": 0, "refused": 0, "ran": [], "errors": []}
    try:
        client = Client(url, verbose=False)
        protected = [fid for fid, bf in demo.fns.items() if getattr(bf.fn, "__taskmaster_protected__", False)]
        out["admin_handlers"] = len(protected)
        for fid in protected:
            bf = demo.fns[fid]
            data = [getattr(c, "value", None) for c in bf.inputs]  # each component's own default
            verdict, msg = _queue_call(url, fid, data)
            name = bf.api_name or bf.name or str(fid)
            if verdict == "ok":
                out["ran"].append(name)
            elif "Admin login required" in msg or "Admin only" in msg:
                out["refused"] += 1
            else:
                out["errors"].append(f"{name}: {msg[:100]}")
        # malformed cookies and uploads
        from tests.test_access_faults import _call_raw, _upload

        bad_cookies = [b"9" * 5000 + b"." + b"0" * 64, "12.\u00e9t\u00e9".encode(), b"\xff\xfe." + b"a" * 64]
        api = next(bf.api_name for fid, bf in demo.fns.items() if fid in protected and bf.api_name
                   and not bf.inputs)
        out["cookie_refused"] = sum(1 for c in bad_cookies if (lambda r: r[0] == 200 and "Admin login required" in r[1])(
            _call_raw(url, api, [], c)))
        out["cookies"] = len(bad_cookies)
        out["upload_anonymous"] = _upload(url, 50 * 1024 * 1024)
        token = client.predict(PASSWORD, api_name="/admin_login")[0]
        out["upload_admin_small"] = _upload(url, 1000, cookie=token)
        out["upload_admin_50mb"] = _upload(url, 50 * 1024 * 1024, cookie=token)
        _ = COOKIE
    finally:
        demo.close()
    return out


def _queue_call(url: str, fn_index: int, data: list) -> tuple[str, str]:
    """Gradio's queue protocol by hand (any handler, named or not): ("ok" | "error", message)."""
    import json
    import secrets
    import urllib.request

    sid = secrets.token_hex(8)
    body = json.dumps({"data": data, "fn_index": fn_index, "session_hash": sid, "event_data": None,
                       "trigger_id": None}, default=str).encode()
    req = urllib.request.Request(f"{url}/gradio_api/queue/join", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=30).read()
        with urllib.request.urlopen(f"{url}/gradio_api/queue/data?session_hash={sid}", timeout=60) as r:
            for raw in r:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                ev = json.loads(line[5:])
                if ev.get("msg") == "process_completed":
                    if ev.get("success"):
                        return "ok", ""
                    o = ev.get("output") or {}
                    return "error", f"{o.get('title') or ''} {o.get('error') or ''}"
    except Exception as exc:  # noqa: BLE001
        return "error", f"{type(exc).__name__}: {exc}"
    return "error", "no completion event"


def probe_lockout() -> dict:
    import types

    import gradio as gr

    from pipeline.settings import Settings
    from studio.access import AccessControl

    ac = AccessControl(Settings.from_env(env={"TASKMASTER_ADMIN_PASSWORD": PASSWORD}), slow_s=0.2)

    def req(xff=None, sid="s"):
        headers = {"x-forwarded-for": xff} if xff else {}
        raw = types.SimpleNamespace(client=types.SimpleNamespace(host="127.0.0.1"), headers=headers, cookies={})
        return types.SimpleNamespace(request=raw, headers=headers, session_hash=sid)

    fast, t_all = 0, time.monotonic()
    for i in range(25):
        t0 = time.monotonic()
        try:
            asyncio.run(ac.login(f"guess{i}", req(f"10.0.{i}.1")))
        except gr.Error:
            pass
        fast += (time.monotonic() - t0) < 0.1
    t0 = time.monotonic()
    admin_ok = bool(asyncio.run(ac.login(PASSWORD, req("10.9.9.9", sid="admin"))))
    return {"guesses": 25, "checked_at_full_speed": fast, "guess_seconds": round(t0 - t_all, 1),
            "admin_in": admin_ok, "admin_wait_s": round(time.monotonic() - t0, 2)}


def probe_votes(tmp: Path) -> dict:
    from pipeline.arena.battle import Limits, new_battle
    from pipeline.arena.service import Arena
    from pipeline.errors import UserError
    from pipeline.settings import Settings

    settings = Settings.from_env(env={}, work_dir=tmp / "votes")
    arena = Arena(settings, lambda: None, limits=Limits())

    def ready(s):
        s.battle = new_battle(["base", "run-a"])
        s.battle.add_user_turn("Plan my day", arena.limits)
        s.battle.finish_turn("a", "b")

    def voter(k):
        s = arena.session(None, None, f"voter-{k}", address=f"198.51.100.{k}", client="ua")
        for _ in range(3):
            ready(s)
            arena.vote(s, "left")

    threads = [threading.Thread(target=voter, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    honest = arena.store.count()
    stored_stuffed = 0
    for i in range(50):
        s = arena.session(None, None, f"fresh-{i}", address="203.0.113.66", client="same browser")
        ready(s)
        try:
            arena.vote(s, "right")
            stored_stuffed += 1
        except UserError:
            pass
    v = arena.results(judge=[])["voters"]
    traits_msg = ""
    try:
        arena.traits(None, {"trait:encouraging": "left"})
    except UserError as exc:
        traits_msg = "message"
    except Exception as exc:  # noqa: BLE001
        traits_msg = type(exc).__name__
    return {"honest_stored": honest, "honest_cast": 60, "stuffing_sessions": 50, "stuffing_stored": stored_stuffed,
            "cap_per_client_hour": arena.limits.votes_per_client_hour, "addresses": v["addresses"],
            "votes": v["votes"], "traits_before_battle": traits_msg}


def probe_training(tmp: Path) -> dict:
    from pipeline.jsonl import write_jsonl
    from pipeline.settings import Settings
    from pipeline.testing.stop_after import StopAfter
    from pipeline.testing.tiny_model import build_tiny_llama
    from pipeline.train.runner import run_training
    from tests.test_train import _record, _tiny_cfg
    from tests.test_train_faults import CORRUPTIONS

    tiny = build_tiny_llama(tmp / "tiny")
    settings = Settings.from_env(env={}, work_dir=tmp / "work", cache_dir=REPO / ".cache")
    data = tmp / "train.jsonl"
    write_jsonl(data, [_record(i, [(f"add task {i}", f"Done: task {i} is on your list.")]) for i in range(6)])
    cfg = _tiny_cfg(tiny, data, max_steps=6, save_steps=2, logging_steps=1)
    run_training(cfg, tmp / "stopped", settings, stop_event=StopAfter(4), echo=False)
    results = {}
    for i, (what, corrupt) in enumerate(CORRUPTIONS.items()):
        run = tmp / f"c{i}"
        shutil.copytree(tmp / "stopped", run)
        corrupt(run / "checkpoints" / "checkpoint-4")
        try:
            s = run_training(None, run, settings, resume=True, echo=False)
            results[what] = "survived" if s["state"] == "finished" and s["resumed_from"].endswith("checkpoint-2") \
                else f"finished oddly ({s['resumed_from']})"
        except Exception as exc:  # noqa: BLE001
            results[what] = f"failed: {type(exc).__name__}"
    return results


def probe_files(tmp: Path) -> dict:
    from pipeline.data.records import load_examples
    from pipeline.spec import SpecError, load_persona
    from pipeline.testing.bad_inputs import data_files, spec_files

    def classify(fn, path, expected, clear_types):
        try:
            fn(path)
        except clear_types as exc:
            return "clear" if str(path.parent if path.is_dir() else path) in str(exc) else "unclear message"
        except Exception:  # noqa: BLE001
            return "traceback:" + traceback.format_exc().splitlines()[-1][:60]
        return "accepted"

    out = {"data": {}, "spec": {}}
    for name, content, expected in data_files():
        p = tmp / "data" / f"{name}.jsonl"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
        out["data"][name] = (expected, classify(load_examples, p, expected, (ValueError,)))
    shipped = (REPO / "data/personas/taskmaster/persona.yaml").read_bytes()
    for name, content, expected in spec_files(shipped):
        folder = tmp / "specs" / name / "taskmaster"
        folder.mkdir(parents=True)
        shutil.copy(REPO / "data/personas/taskmaster/scenarios.yaml", folder / "scenarios.yaml")
        (folder / "persona.yaml").write_bytes(content)
        out["spec"][name] = (expected, classify(load_persona, folder, expected, (SpecError,)))
    return out


def probe_secrets(tmp: Path) -> dict:
    from pipeline.package.secrets_scan import scan_folder
    from pipeline.settings import Settings
    from pipeline.testing.bad_inputs import STUDIO_PASSWORD, secret_plants

    plants = secret_plants()
    for rel, data in plants:
        (tmp / "pkg" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "pkg" / rel).write_bytes(data)
    found = {f.file for f in scan_folder(tmp / "pkg", Settings.from_env(env={"TASKMASTER_ADMIN_PASSWORD": STUDIO_PASSWORD}))}
    return {"planted": len(plants), "found": sum(1 for rel, _ in plants if rel in found),
            "missed": [rel for rel, _ in plants if rel not in found]}


def _tally(cases: dict) -> str:
    clear = sum(1 for exp, got in cases.values() if exp == "refused" and got == "clear")
    tb = sum(1 for exp, got in cases.values() if got.startswith("traceback"))
    silent = sum(1 for exp, got in cases.values() if exp == "refused" and got == "accepted")
    ok_acc = sum(1 for exp, got in cases.values() if exp == "accepted" and got == "accepted")
    n_acc = sum(1 for exp, _ in cases.values() if exp == "accepted")
    return (f"{len(cases)} files: {clear} clear message / {tb} traceback / {silent} silently accepted; "
            f"{ok_acc}/{n_acc} valid variants (BOM, CRLF) accepted")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-training", action="store_true", help="leave out the 5 corrupt-checkpoint resumes")
    args = ap.parse_args(argv)
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        e = probe_endpoints(tmp / "ep")
        rows.append(("admin handlers refused anonymously", f"{e['refused']}/{e['admin_handlers']}"
                     + (f" (ran: {e['ran']})" if e["ran"] else "") + (f" (other: {e['errors'][:3]})" if e["errors"] else "")))
        rows.append(("malformed admin cookies refused (no 500)", f"{e['cookie_refused']}/{e['cookies']}"))
        rows.append(("upload: anonymous 50 MB / admin 1 KB / admin 50 MB",
                     f"HTTP {e['upload_anonymous']} / {e['upload_admin_small']} / {e['upload_admin_50mb']}"))
        lo = probe_lockout()
        rows.append(("lockout: rotating X-Forwarded-For guesses at full speed",
                     f"{lo['checked_at_full_speed']}/{lo['guesses']} (all 25 took {lo['guess_seconds']} s); "
                     f"admin from another address got in: {lo['admin_in']} in {lo['admin_wait_s']} s"))
        v = probe_votes(tmp / "v")
        rows.append(("votes stored, 20 concurrent voters x 3", f"{v['honest_stored']}/{v['honest_cast']}"))
        rows.append(("votes stored, 50 fresh sessions from one browser",
                     f"{v['stuffing_stored']}/{v['stuffing_sessions']} (cap {v['cap_per_client_hour']}/h per browser)"))
        rows.append(("results: votes from distinct addresses", f"{v['votes']} votes from {v['addresses']} addresses"))
        rows.append(("arena_traits before a battle", v["traits_before_battle"]))
        if not args.skip_training:
            t = probe_training(tmp / "t")
            ok = sum(1 for r in t.values() if r == "survived")
            rows.append(("corrupt-checkpoint resumes survived", f"{ok}/{len(t)}"
                         + ("" if ok == len(t) else f" {t}")))
        f = probe_files(tmp / "f")
        rows.append(("bad data files", _tally(f["data"])))
        rows.append(("bad persona specs", _tally(f["spec"])))
        s = probe_secrets(tmp / "s")
        rows.append(("planted secrets found / missed", f"{s['found']} / {len(s['missed'])} of {s['planted']}"
                     + (f" {s['missed']}" if s["missed"] else "")))
    width = max(len(r[0]) for r in rows)
    print(f"{'probe':<{width}}  result")
    print("-" * (width + 60))
    for k, val in rows:
        print(f"{k:<{width}}  {val}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
