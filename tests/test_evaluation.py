"""Evaluation: Wilson interval, gate arithmetic, metrics, the plan, the eval set loader, and
the real `eval` / `respond` CLI on a tiny model with a real (two optimizer steps) LoRA adapter."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from pipeline.errors import UserError
from pipeline.evaluation.evalset import load_eval_set
from pipeline.evaluation.gates import APPROVED, ITERATE, check_quality_gates
from pipeline.evaluation.metrics import ab_summary, compute_metrics
from pipeline.evaluation.plan import build_plan
from pipeline.evaluation.results import EvaluationResults, comparability, load_results
from pipeline.evaluation.stats import distribution, wilson
from pipeline.spec import load_persona

from .conftest import PERSONA_DIR, launched


@pytest.fixture(scope="module")
def spec():
    return load_persona(PERSONA_DIR).spec


# ---- statistics -------------------------------------------------------------------------
def test_wilson_interval_known_values():
    lo, hi = wilson(7, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.3968, 0.8922)  # the textbook example: 7/10
    lo, hi = wilson(10, 10)
    assert round(hi, 9) == 1.0 and round(lo, 4) == 0.7225  # all wins on 10 pairs is NOT proof of >= 72.25%
    lo, hi = wilson(0, 20)
    assert lo == 0.0 and round(hi, 4) == 0.1611
    assert wilson(0, 0) == (0.0, 1.0)


def test_distribution():
    d = distribution([1, 2, 3, 4, 100])
    assert d["median"] == 3 and d["min"] == 1 and d["max"] == 100 and d["n"] == 5
    assert distribution([])["mean"] is None


def test_ab_summary_ties_count_half_and_failures_are_excluded():
    pairs = [{"ok": True, "winner": "a", "consistent": True}] * 6 + \
            [{"ok": True, "winner": "tie", "consistent": False}] * 2 + \
            [{"ok": True, "winner": "b", "consistent": True}] * 2 + \
            [{"ok": False, "winner": None}]
    ab = ab_summary(pairs)
    assert (ab["wins"], ab["losses"], ab["ties"], ab["n"], ab["failures"], ab["inconsistent"]) == (6, 2, 2, 10, 1, 2)
    assert ab["win_rate"] == 0.7
    assert (ab["ci_low"], ab["ci_high"]) == tuple(round(x, 4) for x in wilson(7, 10))


# ---- gates ------------------------------------------------------------------------------------
def _metrics(spec, overall=8.0, trait=1.8, violations=0, n=60, scored=60, **traits):
    tm = {t: traits.get(t, trait) for t in spec.trait_ids}
    return {"overall_mean": overall, "trait_means": tm, "boundary_violations": violations, "n": n, "scored": scored,
            "violations_by_type": {"condescending": violations} if violations else {}}


GOOD_AB = {"wins": 50, "losses": 5, "ties": 5, "n": 60, "win_rate": 0.875, **dict(zip(("ci_low", "ci_high"), wilson(52.5, 60)))}
TRAIN = {"final_loss": 0.22}


def _gates(spec, m, ab=GOOD_AB, train=TRAIN, size=34_000_000):
    passed, gates = check_quality_gates(m, spec, ab=ab, train=train, adapter_size_bytes=size)
    return passed, {g.name: g for g in gates}


def test_all_gates_pass_at_the_thresholds(spec):
    passed, g = _gates(spec, _metrics(spec, overall=7.5, trait=1.5), size=50_000_000)
    assert passed, {k: v.detail for k, v in g.items() if not v.passed}
    assert set(g) == {"overall_score", "all_traits", "no_violations", "ab_win_rate", "final_train_loss",
                      "adapter_size", "judge_coverage"}


@pytest.mark.parametrize("change,gate", [
    (dict(overall=7.49), "overall_score"),
    (dict(optimistic=1.49), "all_traits"),
    (dict(violations=1), "no_violations"),
    (dict(scored=56), "judge_coverage"),  # 56/60 = 93% < 95%
])
def test_each_metric_gate_fails_just_below_its_threshold(spec, change, gate):
    passed, g = _gates(spec, _metrics(spec, **change))
    assert not passed
    assert [k for k, v in g.items() if not v.passed] == [gate]
    if gate == "all_traits":
        assert "optimistic 1.49" in g[gate].detail


def test_ab_gate_uses_the_lower_bound_not_the_point_estimate(spec):
    lo, hi = wilson(8, 10)  # 80% point estimate, but only 10 pairs
    ab = {"wins": 8, "losses": 2, "ties": 0, "n": 10, "win_rate": 0.8, "ci_low": lo, "ci_high": hi}
    passed, g = _gates(spec, _metrics(spec), ab=ab)
    assert not passed and not g["ab_win_rate"].passed
    assert g["ab_win_rate"].value["win_rate"] == 0.8 and "win rate 80%" in g["ab_win_rate"].detail
    lo, hi = wilson(80, 100)  # the same 80% on 100 pairs: lower bound 71%
    passed, g = _gates(spec, _metrics(spec), ab={**ab, "wins": 80, "losses": 20, "n": 100, "ci_low": lo, "ci_high": hi})
    assert passed


def test_missing_training_figures_fail_with_the_reason(spec):
    passed, g = _gates(spec, _metrics(spec), train={}, size=None, ab=None)
    assert not passed
    assert "train_summary.json" in g["final_train_loss"].detail and not g["final_train_loss"].passed
    assert "adapter_size_bytes" in g["adapter_size"].detail and not g["adapter_size"].passed
    assert not g["ab_win_rate"].passed
    _, g = _gates(spec, _metrics(spec), train={"final_loss": 0.4}, size=50_000_001)
    assert not g["final_train_loss"].passed  # the seed's "< 0.4" is strict
    assert not g["adapter_size"].passed


# ---- metrics -------------------------------------------------------------------------------
def _row(id, reply, traits, violations=(), ok=True, category="c1"):
    v = {"ok": ok, "traits": traits if ok else {}, "violations": [{"type": t, "quote": q, "reason": ""} for t, q in violations],
         "pattern": {"acknowledge": True, "deliver": True, "propel": ok}, "overall": sum(traits.values()) if ok else None,
         "error": None if ok else "judge down"}
    return {"id": id, "category": category, "tags": [], "messages": [{"role": "user", "content": f"prompt {id}"}],
            "reply": reply, "verdict": v}


def test_compute_metrics(spec):
    t2 = {t: 2 for t in spec.trait_ids}
    t1 = {t: 1 for t in spec.trait_ids}
    rows = [_row("1", "Nice work! Ready for what's next?", t2),
            _row("2", "You should try harder!!", t1, [("condescending", "You should")], category="c2"),
            _row("3", "Nice work! Ready for the next one.", t2),
            _row("4", "whatever", {}, ok=False)]
    m = compute_metrics(rows, spec)
    assert m["n"] == 4 and m["scored"] == 3 and m["judge_failures"] == 1 and m["failed_ids"] == ["4"]
    assert m["overall_mean"] == round((10 + 5 + 10) / 3, 3)  # the failure is not a 0
    assert m["trait_means"]["encouraging"] == round(5 / 3, 3)
    assert m["boundary_violations"] == 1 and m["violation_rate"] == round(1 / 3, 4)
    assert m["violating_replies"][0]["id"] == "2" and m["violating_replies"][0]["prompt"] == "prompt 2"
    assert m["per_category"]["c2"] == {"n": 1, "scored": 1, "overall_mean": 5.0, "violations": 1}
    assert m["preferred_hits"] == {"Nice work!": 2, "Ready for what's next?": 1}
    assert m["avoided_hits"] == {"You should": 1} and m["excessive_punctuation"] == {"!!": 1}
    assert m["opener_diversity"] == 0.75  # "nice work ready" twice, "you should try", "whatever"
    assert m["length_words"]["max"] == 7


def test_build_plan_targets_the_weakest_traits(spec):
    results = {"metrics": {"adapter": {"trait_means": {"encouraging": 1.2, "optimistic": 1.4, "action_oriented": 1.9,
                                                       "productivity_focused": 1.6, "professional_friendly": 1.7}}},
               "failing": [{"id": "e1", "category": "coaching", "prompt": "I keep putting it off", "reply": "ok",
                            "traits": {"encouraging": 0}, "low_traits": ["encouraging"], "reasons": ["overall 4 < 7.5"]}]}
    plan = build_plan(results, spec)
    assert plan["weak_traits"] == ["encouraging", "optimistic"]
    assert plan["failing"][0]["prompt"] == "I keep putting it off"
    enc = [s for s in plan["scenarios"] if s["trait"] == "encouraging"]
    assert enc[0]["category"] == "coaching" and "I keep putting it off" in enc[0]["scenario"]
    assert "ENCOURAGING" in plan["prompts"][0]["prompt"] and spec.traits[0].rubric[2] in plan["prompts"][0]["prompt"]


# ---- eval sets -----------------------------------------------------------------------------
def test_eval_set_loader_reports_every_problem(tmp_path):
    f = tmp_path / "e.jsonl"
    f.write_text('{"id": "a", "prompt": "hi"}\n{"id": "a", "prompt": "dup"}\n{"id": "b"}\n'
                 '{"id": "c", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}\n')
    with pytest.raises(UserError) as e:
        load_eval_set(f)
    msg = str(e.value)
    assert "a: duplicate id" in msg and "b: needs a non-empty `prompt`" in msg and "c: messages must end with a user turn" in msg


def test_shipped_eval_set_loads():
    prompts = load_eval_set(PERSONA_DIR / "eval.yaml")
    assert len(prompts) >= 40
    multi = [p for p in prompts if "multi_turn" in p.tags]
    assert multi and all(p.messages[-1]["role"] == "user" and len(p.messages) >= 3 for p in multi)


# ---- the real CLI on a tiny model with a real adapter ----------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, tmp_path_factory) -> Path:
    """A run folder like the training stage writes, with a LoRA adapter trained for two steps."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("run")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = tok(["Nice work! Ready for what's next?"], return_tensors="pt")
    losses = []
    for _ in range(2):
        out = model(**batch, labels=batch["input_ids"])
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(out.loss.item())
    model.save_pretrained(run / "adapter")
    tok.save_pretrained(run / "adapter")
    size = sum(p.stat().st_size for p in (run / "adapter").glob("*.safetensors"))
    (run / "config.yaml").write_text(yaml.safe_dump({"base_model": str(tiny_model_dir), "persona": str(PERSONA_DIR)}))
    (run / "train_summary.json").write_text(json.dumps({"final_loss": losses[-1], "adapter_size_bytes": size}))
    return run


def _write_eval_set(tmp_path) -> Path:
    src = yaml.safe_load((PERSONA_DIR / "eval.yaml").read_text())
    pick = [p for p in src["prompts"] if "multi_turn" in p["tags"]][:1] + src["prompts"][:5]
    f = tmp_path / "eval.yaml"
    f.write_text(yaml.safe_dump({"version": 1, "prompts": pick}))
    return f


def test_eval_cli_end_to_end_on_a_tiny_model(tiny_run, tmp_path, capsys):
    eval_set = _write_eval_set(tmp_path)
    out = tmp_path / "eval"
    # Sampled on purpose: the tiny model's default is greedy (pipeline.models), and its barely-trained
    # adapter shares the base's argmax; sampling shows that the adapter really answered.
    argv = ["eval", "--run", str(tiny_run), "--eval-set", str(eval_set), "--max-new-tokens", "6", "--out", str(out),
            "--temperature", "0.7", "--top-p", "0.9",
            "--judge", "rubric"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "QUALITY GATE STATUS" in text and ("APPROVED FOR DEPLOYMENT" in text or "REQUIRES ITERATION" in text)
    for name in ("EVALUATION_RESULTS.json", "summary.md", "responses_base.jsonl", "responses_adapter.jsonl", "ab_pairs.jsonl"):
        assert (out / name).is_file(), name
    r = load_results(out)
    assert isinstance(r, EvaluationResults) and r.schema_version == 1
    d = json.loads((out / "EVALUATION_RESULTS.json").read_text())
    assert d["eval_set"]["n"] == 6 and len(d["eval_set"]["sha256"]) == 64 and len(d["adapter"]["sha256"]) == 64
    agreement = d["judge"].pop("agreement")
    assert d["judge"] == {"kind": "rubric", "name": "rubric:v1", "model": None, "prompt_version": "v1", "heuristic": True,
                          "pairwise": "pairwise-score:rubric:v1"}
    assert agreement["judge"] == "rubric:v1"  # every result says how far to trust its judge
    assert d["ab"]["n"] + d["ab"]["failures"] == 6 and len(d["ab"]["pairs"]) == 6
    assert {g["name"] for g in d["gates"]} >= {"overall_score", "all_traits", "no_violations", "ab_win_rate"}
    assert d["decision"] == (APPROVED if all(g["passed"] for g in d["gates"]) else ITERATE)
    # a random tiny model writes gibberish: the gates must not approve it
    assert d["decision"] == ITERATE and not next(g for g in d["gates"] if g["name"] == "overall_score")["passed"]
    assert next(g for g in d["gates"] if g["name"] == "final_train_loss")["value"] == \
        json.loads((tiny_run / "train_summary.json").read_text())["final_loss"]
    assert d["sampling"]["max_new_tokens"] == 6 and d["sampling"]["temperature"] == 0.7
    rows = [json.loads(x) for x in (out / "responses_adapter.jsonl").read_text().splitlines()]
    assert all("verdict" in r and r["model"]["adapter"] == "candidate" for r in rows)
    multi = next(r for r in rows if len(r["messages"]) >= 3)  # the multi-turn probe ran as a conversation
    assert multi["messages"][-1]["role"] == "user"
    base = [json.loads(x) for x in (out / "responses_base.jsonl").read_text().splitlines()]
    assert [r["reply"] for r in base] != [r["reply"] for r in rows]  # the adapter really answered
    assert all(r["sampling"] == d["sampling"] for r in rows + base)  # both sides, every reply, recorded
    assert "## Quality gates" in (out / "summary.md").read_text()
    assert d["plan"]["weak_traits"] and d["failing"]

    # Judging again reuses the replies on disk (same reuse key): nothing is regenerated.
    before = (out / "responses_adapter.jsonl").read_text()
    assert main(argv) == 0
    assert "reusing 6 replies" in capsys.readouterr().out
    again = json.loads((out / "EVALUATION_RESULTS.json").read_text())
    assert comparability(d, again) == []
    assert [json.loads(x)["reply"] for x in before.splitlines()] == [r["reply"] for r in rows]


def test_eval_tolerates_a_run_without_train_summary(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    for f in (tiny_run / "adapter").iterdir():
        (run / "adapter" / f.name).write_bytes(f.read_bytes())
    (run / "config.yaml").write_text((tiny_run / "config.yaml").read_text())
    eval_set = _write_eval_set(tmp_path)
    assert main(["eval", "--run", str(run), "--eval-set", str(eval_set), "--limit", "2", "--max-new-tokens", "4",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    loss = next(g for g in d["gates"] if g["name"] == "final_train_loss")
    assert not loss["passed"] and "train_summary.json" in loss["detail"]
    assert any("train_summary.json" in m for m in d["run_config"]["missing"])
    assert next(g for g in d["gates"] if g["name"] == "adapter_size")["value"] > 0  # measured from the files


def test_eval_cli_reports_every_problem_at_once(tmp_path, capsys):
    assert main(["eval", "--run", str(tmp_path / "nope"), "--eval-set", str(tmp_path / "missing.yaml"),
                 "--max-new-tokens", "0", "--judge", "llm"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for part in ("--run:", "--eval-set:", "--max-new-tokens: 0", "--judge llm: no judge endpoint"):
        assert part in err, part


def test_respond_cli_writes_replies_with_sampling(tiny_run, tiny_model_dir, tmp_path, capsys):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "a", "prompt": "I finished the report"}\n'
                       '{"id": "b", "messages": [{"role": "user", "content": "hi"}]}\n')
    out = tmp_path / "r.jsonl"
    assert main(["respond", "--base", str(tiny_model_dir), "--adapter", str(tiny_run / "adapter"), "--prompts", str(prompts),
                 "--out", str(out), "--max-new-tokens", "5", "--temperature", "0"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"]
    assert rows[0]["sampling"]["temperature"] == 0 and rows[0]["sampling"]["max_new_tokens"] == 5
    assert rows[0]["system_prompt"] is True and rows[0]["model"]["adapter_sha256"]
    assert main(["respond", "--base", str(tiny_model_dir), "--adapter", str(tmp_path), "--prompts", str(prompts),
                 "--out", str(out)]) == 2
    assert "adapter_config.json" in capsys.readouterr().err


# ---- the Evaluate tab through the real app -------------------------------------------------
@pytest.mark.slow  # a real studio, a real background job (a subprocess that loads torch)
def test_evaluate_tab_runs_a_background_eval_and_shows_the_gates(tiny_run, tmp_path, settings):
    import shutil

    from gradio_client import Client

    from studio.app import build_app
    from studio.context import StudioContext

    run = settings.runs_dir / "tiny-run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("eval"))
    ctx = StudioContext(settings)
    with launched(build_app(settings, ctx)) as url:
        client = Client(url, verbose=False)
        choices = client.predict(api_name="/eval_runs")
        assert str(run) in json.dumps(choices)
        # A user mistake (no run chosen): a warning, not a job and not a traceback.
        client.predict("", "rubric", None, 96, None, None, api_name="/eval_start")  # shown as gr.Warning (studio/guard.py)
        assert ctx.jobs.latest("evaluate") is None
        with pytest.raises(UserError, match="choose a run folder"):  # the message that warning carries
            from pipeline.evaluation import studio_api

            studio_api.start_eval(ctx.jobs, settings, "", "rubric")
        # Decoding chosen in the tab (both sides use it; empty = the base model's default).
        started, status, _, bar = client.predict(str(run), "rubric", 2, 4, 0, None, api_name="/eval_start")
        assert "python -m pipeline evaluate --run" in started and "--limit 2" in started
        assert "--temperature 0" in started and "--top-p" not in started
        job = ctx.jobs.wait(ctx.jobs.latest("evaluate").id, timeout=120)
        assert job.state == "finished", job.log_tail(40)
        # The bar from the finished job's progress file: the last stage, all prompts, 100%.
        _, _, bar = client.predict(api_name="/eval_poll")
        assert "<b>finished</b>: A/B pairs 2/2 prompts (100% of the evaluation)" in bar and "took" in bar, bar
        assert "ETA" not in bar
        decision, gates, traits, cats, worst, ab, summary, file = client.predict(str(run), api_name="/eval_view")
        assert "REQUIRES ITERATION" in decision
        rows = {r[0]: r[1] for r in gates["data"]}
        assert rows["overall_score"] == "FAIL" and rows["adapter_size"] == "PASS" and set(rows.values()) <= {"PASS", "FAIL"}
        assert "A/B" in ab and "## Quality gates" in summary
        # Readable gates: value and threshold as text a person reads, rounded, never raw JSON.
        for _, _, value, threshold, _ in gates["data"]:
            for cell in (value, threshold):
                assert "{" not in str(cell) and not re.search(r"\.\d{4,}", str(cell)), cell
        # Worst replies: the adapter's and the base model's reply to the same prompt, side by side.
        assert gates["headers"][:4] == ["gate", "result", "value", "threshold"]
        assert worst["headers"][3:5] == ["adapter reply", "base reply"]
        from pipeline.jsonl import read_jsonl

        base = {r["id"]: r.get("reply") or "" for r in read_jsonl(run / "eval" / "responses_base.jsonl")}
        assert worst["data"] and all(r[4] == base[r[0]] for r in worst["data"])
        # Downloads: the adapter as a zip and EVALUATION_RESULTS.json.
        files = [Path(f if isinstance(f, str) else f.get("path") or f.get("name")) for f in file]
        names = {f.name for f in files}
        assert "tiny-run-adapter.zip" in names and "EVALUATION_RESULTS.json" in names, names
        results_file = next(f for f in files if f.name == "EVALUATION_RESULTS.json")
        assert json.loads(results_file.read_text())["schema_version"] == 1
        assert "both sides decoded with greedy" in decision


# ---- comparing two evaluated runs (pipeline/evaluation/compare.py) --------------------------
def test_compare_two_runs_pairs_by_prompt_and_refuses_different_rulers(tiny_run, tmp_path, capsys):
    import shutil

    from pipeline.errors import UserError
    from pipeline.evaluation.compare import compare_runs
    from pipeline.evaluation.studio_api import compare_view
    from pipeline.jsonl import read_jsonl, write_jsonl

    eval_set = _write_eval_set(tmp_path)
    runs = {}
    for name in ("a", "b", "c"):
        runs[name] = tmp_path / name
        shutil.copytree(tiny_run, runs[name], ignore=shutil.ignore_patterns("eval"))
    for name in ("a", "b"):
        assert main(["eval", "--run", str(runs[name]), "--eval-set", str(eval_set), "--max-new-tokens", "4",
                     "--out", str(runs[name] / "eval")]) == 0
    # Run B's judge verdicts raised by exactly 1 on one trait for every prompt: the paired
    # difference is +1 with a zero-width interval, every other trait 0 (same model, greedy).
    path = runs["b"] / "eval" / "responses_adapter.jsonl"
    rows = read_jsonl(path)
    trait = next(iter(rows[0]["verdict"]["traits"]))
    for r in rows:
        if r["verdict"].get("ok"):
            r["verdict"]["traits"][trait] += 1
    write_jsonl(path, rows)
    cmp = compare_runs(runs["a"], runs["b"])
    by = {t["trait"]: t for t in cmp.traits}
    assert by[trait]["delta"] == 1 and by[trait]["ci_low"] == by[trait]["ci_high"] == 1 and by[trait]["n"] >= 2
    assert all(t["delta"] == 0 for k, t in by.items() if k != trait)
    assert {g["gate"] for g in cmp.gates} >= {"overall_score", "ab_win_rate"}
    view = compare_view(str(runs["a"]), str(runs["b"]))  # rows for the tab (no pandas in the seam)
    assert "same eval set" in view.markdown and f"{trait} +1.00" in view.markdown
    assert list(view.traits[0])[:3] == ["trait", "a", "b"] and "95% interval" in view.traits[0]
    assert isinstance(view.gates, list) and all(isinstance(r, dict) for r in view.gates)
    # A run evaluated on another eval set is refused, naming what differs.
    other_set = tmp_path / "other.yaml"
    other_set.write_text(eval_set.read_text().replace("version: 1", "version: 2"))
    assert main(["eval", "--run", str(runs["c"]), "--eval-set", str(other_set), "--max-new-tokens", "4",
                 "--out", str(runs["c"] / "eval")]) == 0
    with pytest.raises(UserError, match="different eval sets"):
        compare_runs(runs["a"], runs["c"])
    capsys.readouterr()


# ---- the evaluation's progress file (pipeline/evaluation/progress.py) and the tab's bar ---------
def test_progress_eta_counts_only_the_prompts_this_stage_worked_on(tmp_path):
    from pipeline.evaluation.progress import ProgressWriter, read_progress

    now = [1000.0]
    path = tmp_path / "progress.json"
    w = ProgressWriter(path, ["base replies", "adapter replies", "judging", "A/B pairs"], clock=lambda: now[0])
    w.stage("base replies", 10)
    p = read_progress(path)
    assert (p.stage, p.done, p.total, p.eta_s, p.state) == ("base replies", 0, 10, None, "running")
    now[0] += 20
    w.advance(4)  # 4 prompts in 20 s: 5 s each, 6 left
    p = read_progress(path)
    assert p.eta_s == 30 and p.fraction == pytest.approx(0.4 / 4) and p.elapsed_s == 20
    assert p.next_stages == ["adapter replies", "judging", "A/B pairs"]
    # A stage that starts with 8 of 10 replies reused from disk: those took no time, so they
    # count as done but not into the rate (no ETA until one prompt really ran).
    w.stage("adapter replies", 10, done=8)
    assert read_progress(path).eta_s is None and read_progress(path).done == 8
    now[0] += 10
    w.advance(9)
    p = read_progress(path)
    assert p.eta_s == 10 and p.fraction == pytest.approx((1 + 0.9) / 4) and p.stage_elapsed_s == 10
    w.finish()
    p = read_progress(path)
    assert p.state == "finished" and p.fraction == 1 and p.eta_s is None
    w.fail("RuntimeError: out of memory")
    assert read_progress(path).state == "failed" and "out of memory" in read_progress(path).error
    # No file, a half-written one, or another JSON shape: None, never an exception.
    assert read_progress(tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text('{"stage": "base rep')
    assert read_progress(tmp_path / "bad.json") is None
    (tmp_path / "list.json").write_text("[1, 2]")
    assert read_progress(tmp_path / "list.json") is None


def test_eval_writes_its_progress_after_every_batch(tiny_run, tmp_path):
    import shutil

    from pipeline.evaluation.evaluate import EvalConfig, run_eval
    from pipeline.evaluation.progress import read_progress
    from pipeline.runs import RunFolder
    from pipeline.settings import Settings

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("eval"))
    folder = RunFolder(run)
    seen = []

    def echo(msg):  # called after each batch, once the progress file is rewritten
        p = read_progress(folder.eval_progress_path)
        if p is not None:
            seen.append((p.stage, p.done, p.total))

    cfg = EvalConfig(run_dir=run, judge="rubric", eval_set=_write_eval_set(tmp_path), batch_size=2,
                     sampling_overrides={"max_new_tokens": 3})
    run_eval(cfg, Settings.from_env(env={}, work_dir=tmp_path / "work"), echo=echo)
    assert [s for s in seen if s[0] == "base replies"] == [("base replies", n, 6) for n in (2, 4, 6)]
    assert [s for s in seen if s[0] == "adapter replies"] == [("adapter replies", n, 6) for n in (2, 4, 6)]
    end = read_progress(folder.eval_progress_path)
    assert end.state == "finished" and end.fraction == 1 and (end.stage, end.done, end.total) == ("A/B pairs", 6, 6)
    assert end.stages == ["base replies", "adapter replies", "judging", "A/B pairs"] and end.elapsed_s > 0

    # Judged again: the replies are reused, the stages say so (all done at once, no ETA made up).
    seen.clear()
    run_eval(EvalConfig(run_dir=run, judge="rubric", eval_set=cfg.eval_set, batch_size=2,
                        sampling_overrides={"max_new_tokens": 3}), Settings.from_env(env={}, work_dir=tmp_path / "work"),
             echo=echo)
    assert ("base replies", 6, 6) in seen and read_progress(folder.eval_progress_path).state == "finished"

    # A failing evaluation leaves "failed" in the file, not a bar stuck at "running".
    (run / "adapter" / "adapter_model.safetensors").write_bytes(b"not weights")
    with pytest.raises(Exception):
        run_eval(EvalConfig(run_dir=run, judge="rubric", eval_set=cfg.eval_set, batch_size=2,
                            sampling_overrides={"max_new_tokens": 4}),
                 Settings.from_env(env={}, work_dir=tmp_path / "work"), echo=lambda m: None)
    assert read_progress(folder.eval_progress_path).state == "failed"


def test_respond_writes_its_progress_beside_its_output(tiny_run, tiny_model_dir, tmp_path, capsys):
    from pipeline.evaluation.progress import read_progress
    from pipeline.evaluation.respond import progress_path_for

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"I finished task {i}"}) + "\n" for i in range(3)))
    out = tmp_path / "r.jsonl"
    assert main(["respond", "--base", str(tiny_model_dir), "--prompts", str(prompts), "--out", str(out),
                 "--max-new-tokens", "3", "--batch-size", "2"]) == 0
    p = read_progress(progress_path_for(out))
    assert progress_path_for(out).name == "r.progress.json"
    assert (p.state, p.stage, p.done, p.total) == ("finished", "base replies", 3, 3)
    capsys.readouterr()


@pytest.mark.slow  # a real studio and real background jobs
def test_evaluate_tab_draws_the_running_jobs_bar_and_ignores_an_older_file(tmp_path, settings):
    import sys
    import time

    from gradio_client import Client

    from pipeline.evaluation import studio_api as api
    from pipeline.evaluation.progress import ProgressWriter
    from pipeline.runs import RunFolder
    from studio.app import build_app
    from studio.context import StudioContext

    run = RunFolder(settings.runs_dir / "r1")
    (run.adapter_dir).mkdir(parents=True)
    (run.adapter_dir / "adapter_config.json").write_text("{}")
    # An earlier evaluation's finished progress file: not the progress of the job started below.
    old = ProgressWriter(run.eval_progress_path, list(api_stages()), clock=lambda: time.time() - 3600)
    old.stage("A/B pairs", 6)
    old.finish()
    ctx = StudioContext(settings)
    with launched(build_app(settings, ctx)) as url:
        client = Client(url, verbose=False)
        status, _, bar = client.predict(api_name="/eval_poll")
        assert "No evaluation has run yet" in status and bar == ""  # said once, not twice
        # A real job (a sleeper standing in for `pipeline evaluate`, which is minutes on CPU).
        job = ctx.jobs.start(api.JOB_KIND, ["evaluate", "--run", str(run.path)], run_dir=str(run.path),
                             label="eval r1 (reader)", program=[sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            status, _, bar = client.predict(api_name="/eval_poll")
            assert "running" in status and "<b>starting</b>: loading the model" in bar, bar
            # The job's process writes progress: 3 of 6 base replies in 30 s, so 30 s left in the stage
            # as it writes; the tab counts down from there by the time since that write.
            t0 = time.time()
            now = [t0 - 30]
            w = ProgressWriter(run.eval_progress_path, list(api_stages()), clock=lambda: now[0])
            w.started_at = t0 - 0.5  # the process started after its job (the file is this job's)
            w.stage("base replies", 6)
            now[0] = t0
            w.advance(3)
            _, _, bar = client.predict(api_name="/eval_poll")
            m = re.search(r"<b>running</b>: base replies 3/6 prompts \(12% of the evaluation\), ETA (\d+)s for this stage",
                          bar)
            assert m and 15 <= int(m.group(1)) <= 30, bar
            assert "value='0.125'" in bar and "then: adapter replies, judging, A/B pairs" in bar
            _, _, bar = client.predict(api_name="/eval_stop")
            ctx.jobs.wait(job.id, timeout=20)
            _, _, bar = client.predict(api_name="/eval_poll")
            assert "<b>stopped</b>: base replies 3/6" in bar and "ETA" not in bar and "after" in bar, bar
        finally:
            ctx.jobs.stop(job.id, force=True)


def api_stages():
    from pipeline.evaluation.evaluate import STAGES

    return STAGES
