import subprocess
import sys

import pytest
import yaml

from pipeline.spec import SpecError, load_persona, parse_spec, render_markdown

from .conftest import PERSONA_DIR, REPO


def _copy_persona(tmp_path, mutate_spec=None, mutate_scen=None):
    folder = tmp_path / "taskmaster"
    folder.mkdir()
    spec = yaml.safe_load((PERSONA_DIR / "persona.yaml").read_text())
    scen = yaml.safe_load((PERSONA_DIR / "scenarios.yaml").read_text())
    if mutate_spec:
        mutate_spec(spec)
    if mutate_scen:
        mutate_scen(scen)
    (folder / "persona.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (folder / "scenarios.yaml").write_text(yaml.safe_dump(scen, sort_keys=False))
    return folder


def test_shipped_persona_matches_the_seed():
    p = load_persona(PERSONA_DIR)
    assert p.spec.trait_ids == ["encouraging", "productivity_focused", "professional_friendly", "action_oriented", "optimistic"]
    assert [s.id for s in p.spec.pattern] == ["acknowledge", "deliver", "propel"]
    assert len(p.spec.boundaries) == 4
    assert p.spec.success_criteria.overall_min == 7.5 and p.spec.success_criteria.ab_win_rate_min == 0.70
    assert p.spec.deployment.max_adapter_mb == 50
    assert len(p.scenarios.categories) == 7
    assert sum(len(c.scenarios) for c in p.scenarios.categories.values()) == 37
    assert p.scenarios.total_target == 170
    assert p.spec.violation_types == ["condescending", "passive_aggressive", "defensive", "negativity_matching", "generic_ai"]


def test_missing_rubric_anchor_and_unknown_field_are_all_reported(tmp_path):
    def mutate(spec):
        del spec["traits"][0]["rubric"][2]
        spec["traits"][1]["colour"] = "blue"
        spec["tone"] = "warm"

    folder = _copy_persona(tmp_path, mutate)
    with pytest.raises(SpecError) as err:
        load_persona(folder)
    problems = err.value.problems
    assert len(problems) == 3, problems
    text = "\n".join(problems)
    assert f"{folder / 'persona.yaml'}: traits[0].rubric" in text
    assert "traits[1].colour: unknown field" in text
    assert "tone: unknown field" in text


def test_scenario_problems_name_the_scenarios_file(tmp_path):
    folder = _copy_persona(tmp_path, mutate_scen=lambda s: s["categories"]["task_creation"].pop("target_count"))
    with pytest.raises(SpecError, match=r"scenarios.yaml: categories.task_creation.target_count: required field is missing"):
        load_persona(folder)


def test_bad_yaml_reports_line(tmp_path):
    folder = _copy_persona(tmp_path)
    (folder / "persona.yaml").write_text("name: taskmaster\ntraits: [unclosed\n")
    with pytest.raises(SpecError, match=r"persona.yaml: not valid YAML \(line"):
        load_persona(folder)


def test_parse_spec_for_editor():
    text = (PERSONA_DIR / "persona.yaml").read_text()
    assert parse_spec(text).display_name == "TaskMaster"
    with pytest.raises(SpecError, match="display_name: required field is missing"):
        parse_spec(text.replace("display_name: TaskMaster\n", ""))


def test_render_has_all_five_components():
    md = render_markdown(load_persona(PERSONA_DIR))
    for heading in ("TRAITS", "VOCABULARY", "PATTERNS", "BOUNDARIES", "EXAMPLES", "## Success Criteria", "## Deployment Target"):
        assert heading in md
    assert "Target dataset size: 170 examples" in md
    assert (PERSONA_DIR / "PERSONA_SPEC.md").read_text() == md, "PERSONA_SPEC.md is stale: run `python -m pipeline spec render`"


def test_cli_validate_ok_and_bad(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "pipeline", "spec", "validate", str(PERSONA_DIR)], cwd=REPO,
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "OK" in ok.stdout
    folder = _copy_persona(tmp_path, lambda s: s["traits"][0].pop("rubric"))
    bad = subprocess.run([sys.executable, "-m", "pipeline", "spec", "validate", str(folder)], cwd=REPO,
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert "persona.yaml: traits[0].rubric: required field is missing" in bad.stderr
