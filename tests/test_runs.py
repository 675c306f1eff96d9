"""pipeline.runs: one reader of a run folder; a folder from before it existed still lists,
evaluates, packages and serves in the Arena (tests/data/old_run, written by the old code)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.errors import UserError
from pipeline.runs import RunFolder, finished_with_adapter, list_runs, new_run, resolve_run, same_base
from pipeline.settings import Settings

from .conftest import PERSONA_DIR, REPO

OLD_RUN = Path(__file__).parent / "data" / "old_run" / "20261201-120000-old"


def _old_run(settings: Settings, tiny_model_dir: Path) -> RunFolder:
    """The old folder copied into the studio's runs/, its machine paths pointed at this checkout."""
    dst = settings.runs_dir / OLD_RUN.name
    shutil.copytree(OLD_RUN, dst)
    cfg = yaml.safe_load((dst / "config.yaml").read_text())
    for d in (cfg, cfg["train"]):
        d["base_model"], d["persona"] = str(tiny_model_dir), str(PERSONA_DIR)
    (dst / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return RunFolder(dst)


@pytest.fixture()
def tiny_settings(tmp_path, tiny_model_dir) -> Settings:
    return Settings.from_env(env={}, work_dir=tmp_path / "work", base_model=str(tiny_model_dir), cache_dir=REPO / ".cache")


def test_run_folder_reads_what_the_old_code_wrote(tiny_settings, tiny_model_dir):
    run = _old_run(tiny_settings, tiny_model_dir)
    assert run.id == OLD_RUN.name and run.is_finished() and run.has_adapter() and not run.has_results()
    st = run.status()
    assert st["state"] == "finished" and st["has_adapter"] and not st["resumable"] and st["step"] == 2
    assert run.summary()["final_loss"] == pytest.approx(6.2289, abs=1e-3)
    assert [m["step"] for m in run.metrics()] == [1, 2]
    assert run.config()["lora"]["r"] == 4 and run.results() is None
    # listed, with a filter on the base model (the Arena keeps adapters of another base out)
    assert list_runs(tiny_settings) == [run]
    assert list_runs(tiny_settings, where=same_base(str(tiny_model_dir))) == [run]
    assert list_runs(tiny_settings, where=same_base("llama-3.1-8b-instruct")) == []
    assert resolve_run(run.id, tiny_settings) == run == resolve_run(str(run.path), tiny_settings)


def test_new_run_ids_sort_by_time_and_never_collide(tiny_settings):
    a = new_run(tiny_settings, "cpu-demo")
    a.path.mkdir(parents=True)
    b = new_run(tiny_settings, "cpu-demo")
    assert a.id.endswith("-cpu-demo") and b.path != a.path and not b.path.exists()
    with pytest.raises(UserError, match="not found"):
        resolve_run("no-such-run", tiny_settings)
    with pytest.raises(UserError, match="not a training run folder"):
        RunFolder(a.path).status()
    assert list_runs(tiny_settings) == []  # an empty folder is not a run


@pytest.mark.slow
def test_an_old_run_evaluates_packages_and_serves_in_the_arena(tiny_settings, tiny_model_dir):
    from pipeline.arena import Arena, Limits
    from pipeline.evaluation.evaluate import EvalConfig, run_eval
    from pipeline.evaluation.studio_api import evaluable_runs
    from pipeline.inference import ChatEngine, SamplingConfig
    from pipeline.package import PackageConfig, build_package, publishable_runs

    run = _old_run(tiny_settings, tiny_model_dir)
    assert evaluable_runs(tiny_settings) == [str(run.path)]
    engine = ChatEngine(str(tiny_model_dir), tiny_settings)
    run_eval(EvalConfig(run_dir=run.path, limit=2, sampling=SamplingConfig(max_new_tokens=8)), tiny_settings,
             engine=engine, echo=lambda m: None)
    res = run.results()
    assert res is not None and res.eval_set.n == 2 and res.decision == "REQUIRES ITERATION"
    assert [g.name for g in res.gates][:3] == ["overall_score", "all_traits", "no_violations"]
    assert publishable_runs(tiny_settings)[0] == (f"{run.id} · REQUIRES ITERATION", str(run.path))

    pkg = build_package(PackageConfig(run=run.id, n_examples=2, max_new_tokens=4), tiny_settings,
                        engine_factory=lambda base: engine).path
    assert pkg == run.package_dir and (pkg / "MANIFEST.json").is_file()
    from pipeline.evaluation.results import load_results

    packaged = load_results(pkg)  # the package's copy: the same evaluation, local paths made portable
    assert (packaged.decision, packaged.gates, packaged.eval_set.sha256) == (res.decision, res.gates, res.eval_set.sha256)

    arena = Arena(tiny_settings, lambda: engine, limits=Limits(max_new_tokens=4))
    assert set(arena.contenders()) == {"base", run.id}
    assert finished_with_adapter(run)
    s = arena.session(None, None, "old-run-voter")
    list(arena.send(s, "Create a task to call the plumber"))
    revealed = arena.vote(s, "left")
    assert {revealed["left"], revealed["right"]} == {"base", run.id}
