"""Malformed persona specs (issue 18): every one is a SpecError naming persona.yaml and what to
change (never a traceback, never silently accepted); BOM and CRLF files (Windows) load."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from pipeline.spec import SpecError, load_persona, parse_spec
from pipeline.testing.bad_inputs import spec_files

from .conftest import PERSONA_DIR, REPO

CASES = spec_files((PERSONA_DIR / "persona.yaml").read_bytes())


def _folder(tmp_path, content: bytes):
    folder = tmp_path / "taskmaster"
    folder.mkdir()
    shutil.copy(PERSONA_DIR / "scenarios.yaml", folder / "scenarios.yaml")
    (folder / "persona.yaml").write_bytes(content)
    return folder


@pytest.mark.parametrize("name,content,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_persona_yaml_is_refused_naming_the_file(tmp_path, name, content, expected):
    folder = _folder(tmp_path, content)
    if expected == "accepted":
        assert load_persona(folder).spec.display_name == "TaskMaster"
        return
    with pytest.raises(SpecError) as info:
        load_persona(folder)
    assert all("persona.yaml" in p for p in info.value.problems), info.value.problems
    assert len(str(info.value)) < 2000, "the message is short (no 10 MB echo)"
    # The studio's editor goes through parse_spec: the same refusal for text it cannot decode
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return
    with pytest.raises(SpecError):
        parse_spec(text)


def test_messages_say_what_is_wrong(tmp_path):
    content = dict((n, c) for n, c, _ in CASES)
    expect = {"empty_file": "empty", "invalid_utf8": "UTF-8", "deep_nesting": "nested",
              "duplicate_top_key": "display_name", "duplicate_nested_key": "overall_min",
              "terminal_escape_in_name": "control", "bidi_override_in_name": "bidi",
              "ten_mb_system_prompt": "system_prompt", "utf16_file": "UTF-8"}
    for name, needle in expect.items():
        sub = tmp_path / name
        sub.mkdir()
        with pytest.raises(SpecError) as info:
            load_persona(_folder(sub, content[name]))
        assert needle in str(info.value), (name, str(info.value)[:500])
    (tmp_path / "dup").mkdir()
    with pytest.raises(SpecError) as info:
        load_persona(_folder(tmp_path / "dup", content["duplicate_top_key"]))
    assert "line 4" in str(info.value) and "twice" in str(info.value)


def test_the_cli_never_echoes_control_characters(tmp_path):
    folder = _folder(tmp_path, dict((n, c) for n, c, _ in CASES)["terminal_escape_in_name"])
    proc = subprocess.run([sys.executable, "-m", "pipeline", "spec", "validate", str(folder)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-800:]
    assert "\x1b" not in proc.stderr + proc.stdout
