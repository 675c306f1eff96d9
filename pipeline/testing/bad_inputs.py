"""Malformed inputs a careless user (or an attacker) hands the studio, as data: the tests and
`benchmarks/probe_faults.py` both use these lists, so the probe's figures and the tests agree.

Each case is (name, content bytes, expected): "refused" (a clear message naming the file, and
the line where there is one) or "accepted" (a file a real editor writes that must load).
"""

from __future__ import annotations

import json

from ..evaluation.results import RESULTS_FILE


def _record(i: int = 1, reply: str = "Done, it's on your list. Want a due date?", **extra) -> dict:
    return {"id": f"ex-{i:03d}", "category": "task_creation", "scenario": "Create a simple task",
            "messages": [{"role": "user", "content": f"add a task {i}"}, {"role": "assistant", "content": reply}],
            "source": "curated", "quality": {}, "review": {"status": "approved", "note": ""}, **extra}


def _lines(*rows) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def data_files() -> list[tuple[str, bytes, str]]:
    good = _lines(_record(1), _record(2))
    deep = '{"id": "x", "quality": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    moderately_deep = _record(3, quality={"a": json.loads("[" * 200 + "]" * 200)})
    return [
        ("one_line_json_array", json.dumps([_record(1), _record(2)]).encode() + b"\n", "refused"),
        ("number_line", good + b"42\n", "refused"),
        ("string_line", good + b'"just text"\n', "refused"),
        ("null_line", good + b"null\n", "refused"),
        ("deeply_nested", good + deep.encode(), "refused"),
        ("nested_200_levels", _lines(moderately_deep), "refused"),
        ("invalid_utf8", good + b'{"id": "bad \xff\xfe here"}\n', "refused"),
        ("empty_file", b"", "refused"),
        ("whitespace_only", b"  \n\n\t \n", "refused"),
        ("duplicate_ids", _lines(_record(1), _record(2), _record(1, reply="Another reply to the same id.")), "refused"),
        ("whitespace_only_reply", _lines(_record(1), _record(2, reply="   \n\t ")), "refused"),
        ("ten_mb_reply", _lines(_record(1), _record(2, reply="word " * 2_000_000)), "refused"),
        ("truncated_last_line", good + _lines(_record(3))[:40], "refused"),
        ("missing_messages", _lines({k: v for k, v in _record(1).items() if k != "messages"}), "refused"),
        ("unknown_role", _lines(_record(1, messages=[{"role": "user", "content": "hi"},
                                                      {"role": "bot", "content": "hello"}])), "refused"),
        ("ends_with_user", _lines(_record(1, messages=[{"role": "user", "content": "hi"}])), "refused"),
        ("content_not_text", _lines(_record(1, messages=[{"role": "user", "content": "hi"},
                                                          {"role": "assistant", "content": 42}])), "refused"),
        ("utf16_file", good.decode().encode("utf-16"), "refused"),
        ("nul_bytes", good + b'{"id": "a\x00b"}\n', "refused"),
        ("utf8_bom", b"\xef\xbb\xbf" + good, "accepted"),
        ("crlf_line_endings", good.replace(b"\n", b"\r\n"), "accepted"),
    ]


def spec_files(shipped_persona_yaml: bytes) -> list[tuple[str, bytes, str]]:
    """persona.yaml variants (the shipped scenarios.yaml beside each)."""
    good = shipped_persona_yaml
    text = good.decode("utf-8")
    return [
        ("empty_file", b"", "refused"),
        ("comments_only", b"# nothing yet\n\n", "refused"),
        ("invalid_utf8", good.replace(b"display_name:", b"display_name: \xff\xfe", 1), "refused"),
        ("deep_nesting", good + b"extra: " + b"[" * 20_000 + b"]" * 20_000 + b"\n", "refused"),
        ("duplicate_top_key", good + b"display_name: Someone Else\n", "refused"),
        ("duplicate_nested_key", good.replace(b"success_criteria:\n", b"success_criteria:\n  overall_min: 1\n", 1),
         "refused"),
        ("terminal_escape_in_name", _set_display_name(text, '"Task\\x1b[31mMaster\\x1b[0m"'), "refused"),
        ("bidi_override_in_name", _set_display_name(text, '"Task\\u202eretsaM"'), "refused"),
        ("ten_mb_system_prompt", _big_prompt(text), "refused"),
        ("top_level_list", b"- name: taskmaster\n- display_name: X\n", "refused"),
        ("yaml_syntax_error", good + b"broken: \"unclosed\n", "refused"),
        ("utf16_file", text.encode("utf-16"), "refused"),
        ("truncated_half", good[: len(good) // 2], "refused"),
        ("utf8_bom", b"\xef\xbb\xbf" + good, "accepted"),
        ("crlf_line_endings", good.replace(b"\n", b"\r\n"), "accepted"),
    ]


def _set_display_name(text: str, value: str) -> bytes:
    import re

    return re.sub(r"(?m)^display_name:.*$", lambda m: f"display_name: {value}", text, count=1).encode()


def _big_prompt(text: str) -> bytes:
    import re

    # a block scalar replaced by one 10 MB line
    out = re.sub(r"(?ms)^system_prompt:.*?(?=^\S)", lambda m: "system_prompt: " + "plan " * 2_000_000 + "\n",
                 text, count=1)
    return out.encode()


# ---- planted secrets (fake, well-formed) ---------------------------------------------------------
FAKE_HF = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
FAKE_OPENAI = "sk-proj-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe"
FAKE_AWS = "AKIA" + "QWERTYUIOPASDFGH"
STUDIO_PASSWORD = "plain-studio-password-42"  # the studio's own admin password (a known secret)


def _json_escaped(s: str, every: int = 1) -> str:
    return "".join(f"\\u{ord(c):04x}" if i % every == 0 else c for i, c in enumerate(s))


def _safetensors(extra_tail: bytes = b"", meta: dict | None = None) -> bytes:
    header = json.dumps({"__metadata__": meta or {"format": "pt"},
                         "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    body = b"\x00" * (3 << 20)  # 3 MB of "weights"
    return len(header).to_bytes(8, "little") + header + body + extra_tail


def secret_plants() -> list[tuple[str, bytes]]:
    """15 files for a package folder, each carrying one secret a scan must find."""
    return [
        ("README.md", f"Pushed with {FAKE_HF}\n".encode()),
        ("adapter_config.json", json.dumps({"api_key": FAKE_OPENAI}).encode()),
        (RESULTS_FILE, ('{"note": "' + _json_escaped(FAKE_HF) + '"}').encode()),
        ("MANIFEST.json", ('{"x": "' + _json_escaped(FAKE_OPENAI, every=3) + '"}').encode()),
        ("notes_utf16.txt", f"token {FAKE_HF}\n".encode("utf-16")),
        ("notes_utf16le_nobom.txt", f"key {FAKE_OPENAI} end\n".encode("utf-16-le")),
        ("adapter_model.safetensors", _safetensors(extra_tail=FAKE_HF.encode())),
        ("extra/adapter_meta.safetensors", _safetensors(meta={"format": "pt", "by": FAKE_OPENAI})),
        ("glued.txt", f"export token_{FAKE_HF}\n".encode()),
        ("training_config.yaml", f"aws_key_id: {FAKE_AWS}\n".encode()),
        (".env", b"password=Sup3rS3cretValue\n"),
        ("weights.bin", b"\x01\x02" * 1000 + STUDIO_PASSWORD.encode() + b"\x00" * 10),
        ("deep/folder/no_suffix", f"{FAKE_HF}".encode()),
        ("examples/sample_interactions.jsonl",
         (json.dumps({"messages": [{"role": "user", "content": f"my key is {FAKE_OPENAI}"}]}) + "\n").encode()),
        ("tokenizer_config.json", json.dumps({"chat_template": "{# " + FAKE_AWS + " #}"}, ensure_ascii=True).encode()),
    ]
