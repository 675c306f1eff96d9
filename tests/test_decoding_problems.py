"""One check of a decoding setup (pipeline.evaluation.respond.decoding_problems) for `respond` and
`evaluate`: every problem at once, each named as that command spells the setting."""

from __future__ import annotations

from pipeline.evaluation.evaluate import EvalConfig
from pipeline.evaluation.respond import RespondConfig
from pipeline.inference import SamplingConfig
from pipeline.settings import Settings

BAD = SamplingConfig(max_new_tokens=0, temperature=-1.0, top_p=1.5)


def test_respond_names_the_config_fields(tmp_path):
    problems = RespondConfig(base="smollm2-135m", prompts=tmp_path / "p.jsonl", sampling=BAD, batch_size=0).problems()
    assert problems[1:] == ["max_new_tokens: 0; must be at least 1", "temperature: -1.0; must be 0 (greedy) or more",
                            "top_p: 1.5; must be in (0, 1]", "batch_size: 0; must be at least 1"]


def test_evaluate_names_the_cli_flags(tmp_path):
    settings = Settings.from_env(env={}, work_dir=tmp_path)
    problems = EvalConfig(run_dir=tmp_path / "run", judge="rubric", sampling=BAD, batch_size=0).problems(settings)
    for want in ("--max-new-tokens: 0; must be at least 1", "--temperature: -1.0; must be 0 (greedy) or more",
                 "--top-p: 1.5; must be in (0, 1]", "--batch-size: 0; must be at least 1"):
        assert want in problems, problems
