"""Malformed dataset files (issue 18): each is refused with a message naming the file (and the
line), never a traceback, and never silently accepted; a BOM or CRLF file (Windows editors) loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.data.records import load_examples
from pipeline.jsonl import iter_jsonl
from pipeline.testing.bad_inputs import data_files

from .conftest import REPO

CASES = data_files()


@pytest.mark.parametrize("name,content,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_dataset_file_is_refused_naming_the_file(tmp_path, name, content, expected):
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(content)
    if expected == "accepted":
        examples = load_examples(path)
        assert [e.id for e in examples] == ["ex-001", "ex-002"]
        return
    with pytest.raises(ValueError) as info:
        load_examples(path)
    assert str(path) in str(info.value), f"the message names the file: {info.value}"


def test_messages_name_the_line_and_say_what_to_do(tmp_path):
    content = dict((n, c) for n, c, _ in CASES)
    expect = {"one_line_json_array": ("line 1", "one JSON object per line"),
              "number_line": (":3", "JSON object"), "invalid_utf8": (":3", "UTF-8"),
              "deeply_nested": (":3", "nested"), "empty_file": ("", "no records"),
              "duplicate_ids": ("ex-001", "record 1", "record 3"), "whitespace_only_reply": ("record 2", "blank"),
              "ten_mb_reply": ("record 2", "characters"), "utf16_file": ("", "UTF-8")}
    for name, needles in expect.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(content[name])
        with pytest.raises(ValueError) as info:
            load_examples(path)
        for needle in needles:
            assert needle in str(info.value), (name, str(info.value)[:400])


def test_a_generic_jsonl_file_may_be_empty_but_not_hold_non_objects(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text("")
    assert list(iter_jsonl(p)) == []
    p.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: expected a JSON object"):
        list(iter_jsonl(p))


def test_the_cli_answers_a_bad_file_with_a_message_and_exit_2(tmp_path):
    for name in ("one_line_json_array", "deeply_nested", "empty_file"):
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(dict((n, c) for n, c, _ in CASES)[name])
        proc = subprocess.run([sys.executable, "-m", "pipeline", "data", "stats", str(path)], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-800:]
        assert str(path) in proc.stderr
