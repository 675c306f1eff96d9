"""Phase 4 closed offline: the next step proposed from a run's evaluation results."""

from __future__ import annotations

import json

from pipeline.evaluation.next_step import propose, propose_for_run
from pipeline.evaluation.results import EvaluationResults


def _results(*, gates, weak=(), violations=0, win_rate=0.6, epochs=3):
    return EvaluationResults.model_validate({
        "created_at": "2026-12-01T00:00:00Z", "decision": "REQUIRES ITERATION",
        "gates": [{"name": n, "passed": p, "value": v, "threshold": t} for n, p, v, t in gates],
        "metrics": {"adapter": {"boundary_violations": violations, "trait_means": {}}, "base": {}, "improvement": {}},
        "ab": {"wins": 6, "losses": 4, "ties": 0, "n": 10, "win_rate": win_rate, "ci_low": 0.3, "ci_high": 0.8},
        "judge": {"kind": "rubric", "name": "rubric:v1"}, "eval_set": {"path": "e", "sha256": "x", "n": 10},
        "adapter": {"path": "a", "sha256": "y", "size_bytes": 1}, "run_config": {"config": {"train": {"epochs": epochs}}},
        "plan": {"weak_traits": list(weak), "failing": [{"id": "f1"}, {"id": "f2"}]},
    })


def test_a_loss_still_falling_proposes_more_epochs_first(tmp_path):
    r = _results(gates=[("overall_score", False, 5.0, 7.0)], weak=["encouraging"], violations=2)
    losses = [3.4 - 0.05 * i for i in range(16)]  # still going down
    step = propose(r, tmp_path / "run", losses=losses)
    assert step.step == "more_epochs" and "epochs=5" in step.commands[0]
    assert [a["step"] for a in step.alternatives] == ["targeted_data", "preference_round"]
    assert step.weak_traits == ["encouraging"]


def test_a_failed_loss_gate_on_a_flat_curve_says_the_loss_rounded(tmp_path):
    r = _results(gates=[("final_train_loss", False, 2.88560128119751, "< 0.4")])
    step = propose(r, tmp_path / "run", losses=[2.9] * 16)
    assert step.step == "more_epochs" and "final loss 2.886 misses the spec's < 0.4" in step.why, step.why


def test_weak_traits_on_a_flat_curve_propose_targeted_data(tmp_path):
    r = _results(gates=[("all_traits", False, {}, 1.5)], weak=["action_oriented", "concise"])
    step = propose(r, tmp_path / "run", losses=[2.0] * 16)
    assert step.step == "targeted_data" and step.weak_traits == ["action_oriented", "concise"]
    assert "data target" in step.commands[0] and "EVALUATION_RESULTS.json" in step.commands[0]
    assert "2 failing replies" in step.why


def test_violations_and_votes_propose_a_preference_round_from_the_votes_and_the_judge(tmp_path):
    r = _results(gates=[("no_violations", False, 3, 0), ("ab_win_rate", False, 0.6, 0.7)], violations=3)
    step = propose(r, tmp_path / "run", losses=[2.0] * 16, votes=12)
    assert step.step == "preference_round"
    assert "arena export --format dpo" in step.commands[0] and "--method dpo --from-run" in step.commands[1]
    assert "--pairs arena-dpo.jsonl" in step.commands[1] and "12 Arena votes" in step.why
    assert "**Next step: preference round.**" in step.markdown()


def test_all_gates_passed_proposes_shipping(tmp_path):
    step = propose(_results(gates=[("overall_score", True, 8.0, 7.0)]), tmp_path / "run")
    assert step.step == "ship" and "package" in step.commands[0]


def test_cli_reads_the_runs_own_results(tmp_path, settings, capsys):
    from pipeline.cli import main

    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    r = _results(gates=[("all_traits", False, {}, 1.5)], weak=["encouraging"])
    (run / "eval" / "EVALUATION_RESULTS.json").write_text(r.model_dump_json())
    assert propose_for_run(run).step == "targeted_data"
    assert main(["next", "--run", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["weak_traits"] == ["encouraging"]
