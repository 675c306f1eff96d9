"""`package validate`'s secret scan against 15 planted secrets (issue 18): every file is read
whole, UTF-16 and JSON \\u escapes are decoded, and patterns carry their own boundaries."""

from __future__ import annotations

from pipeline.package.secrets_scan import scan_folder, scan_text
from pipeline.settings import Settings
from pipeline.testing.bad_inputs import FAKE_HF, FAKE_OPENAI, STUDIO_PASSWORD, secret_plants


def test_every_planted_secret_is_found_and_none_is_shown(tmp_path):
    plants = secret_plants()
    for rel, data in plants:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    settings = Settings.from_env(env={"TASKMASTER_ADMIN_PASSWORD": STUDIO_PASSWORD})
    found = scan_folder(tmp_path, settings)
    hit = {f.file for f in found}
    missed = [rel for rel, _ in plants if rel not in hit]
    assert not missed, f"missed {len(missed)}/{len(plants)}: {missed}"
    text = " ".join(str(f) for f in found)
    assert FAKE_HF[5:] not in text and FAKE_OPENAI[10:] not in text and STUDIO_PASSWORD not in text


def test_boundaries_are_the_patterns_own():
    assert scan_text(f"token_{FAKE_HF}", "a.txt"), "glued to a word with _"
    assert scan_text(f"x={FAKE_HF}.", "a.txt")
    assert not scan_text("a task-management-checklist-for-the-quarter", "a.txt"), "no sk- inside a word"


def test_a_clean_package_has_no_findings(tmp_path):
    (tmp_path / "README.md").write_text("# An adapter\nTrained with task-management data.\n")
    (tmp_path / "w.safetensors").write_bytes(b"\x00" * 1000)
    assert scan_folder(tmp_path, None) == []
