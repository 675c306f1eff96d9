"""Push: the real huggingface_hub client against the local Hub server (pipeline/testing/hub_server.py),
checking what arrived there, and every error a user can cause."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys

import pytest
import yaml

from pipeline.hub import HubError, PushConfig, push_package
from pipeline.package import PackageConfig, build_package
from pipeline.package.manifest import file_sha256
from pipeline.settings import Settings
from pipeline.testing.hub_server import FakeHub

from .conftest import REPO
from .test_package import make_run

ALICE = "hf_alice0000000000000000000000000000write"
READER = "hf_reader000000000000000000000000000read"


@pytest.fixture(scope="module")
def packages(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("push")
    settings = Settings.from_env(env={}, work_dir=root, cache_dir=REPO / ".cache")
    good = build_package(PackageConfig(run=str(make_run(root, tiny_model_dir))), settings).path
    bad_run = make_run(root, tiny_model_dir, run_id="run-bad", approved=False)
    bad = build_package(PackageConfig(run=str(bad_run)), settings).path
    return settings, good, bad


@pytest.fixture()
def hub():
    with FakeHub() as h, h.patched_client():
        h.add_user("alice", ALICE, orgs={"acme": "write", "viewers": "read", "guests": "contributor"})
        h.add_user("reader", READER, token_role="read")
        yield h


def _pkg(packages, tmp_path, which="good"):
    settings, good, bad = packages
    return settings, shutil.copytree(good if which == "good" else bad, tmp_path / which)


def _cfg(hub, pkg, repo_id="alice/taskmaster", **kw):
    return PushConfig(package=str(pkg), repo_id=repo_id, endpoint=hub.url, load_check=False, **kw)


def test_push_creates_a_private_repo_in_one_commit_with_every_file(hub, packages, tmp_path, caplog):
    settings, pkg = _pkg(packages, tmp_path)
    caplog.set_level(logging.DEBUG)
    res = push_package(_cfg(hub, pkg).model_copy(update={"load_check": True}), settings, token=ALICE)
    repo = hub.repo("alice/taskmaster")
    assert repo is not None and repo.private and res.created and res.private
    commits = hub.commits("alice/taskmaster")
    assert len(commits) == 1, "one atomic commit"
    assert commits[0]["summary"] == "Publish run run-001: APPROVED FOR DEPLOYMENT"
    assert "overall_score: PASS" in commits[0]["description"]
    assert res.commit_url == f"{hub.url}/alice/taskmaster/commit/{commits[0]['oid']}"
    local = {p.relative_to(pkg).as_posix() for p in pkg.rglob("*") if p.is_file()}
    assert set(repo.files) == local
    for rel in local:
        assert repo.files[rel] == (pkg / rel).read_bytes(), rel
    assert "adapter_model.safetensors" in repo.lfs, "weights went through the LFS batch API"
    assert "README.md" not in repo.lfs, "text files travel inline in the commit"
    assert any(p.endswith("/info/lfs/objects/batch") for _, p, _ in hub.requests)
    readme = repo.files["README.md"].decode()
    assert 'adapter = "alice/taskmaster"' in readme, "the published usage code loads the repo"
    assert json.loads(repo.files["MANIFEST.json"])["files"]["README.md"]["sha256"] == file_sha256(pkg / "README.md")
    assert ALICE not in caplog.text and all(ALICE.encode() not in b for b in repo.files.values())


def test_pushing_again_updates_in_place_and_removes_stale_files(hub, packages, tmp_path):
    settings, pkg = _pkg(packages, tmp_path)
    push_package(_cfg(hub, pkg), settings, token=ALICE)
    hub.repo("alice/taskmaster").files["old_checkpoint.txt"] = b"from an older package"
    res = push_package(_cfg(hub, pkg), settings, token=ALICE)
    assert not res.created
    commits = hub.commits("alice/taskmaster")
    assert len(commits) == 2 and commits[1]["deleted"] == ["old_checkpoint.txt"]
    assert "old_checkpoint.txt" not in hub.repo("alice/taskmaster").files
    assert res.commit_url.endswith(commits[1]["oid"])


def test_push_to_an_org_and_a_public_repo(hub, packages, tmp_path):
    settings, pkg = _pkg(packages, tmp_path)
    res = push_package(_cfg(hub, pkg, "acme/taskmaster", private=False), settings, token=ALICE)
    assert res.repo_url == f"{hub.url}/acme/taskmaster" and not hub.repo("acme/taskmaster").private


def test_failed_validation_is_refused_unless_overridden_and_the_override_is_recorded(hub, packages, tmp_path):
    settings, pkg = _pkg(packages, tmp_path, "bad")
    with pytest.raises(HubError, match="failed validation") as exc:
        push_package(_cfg(hub, pkg), settings, token=ALICE)
    assert "boundary_violations" in str(exc.value) and "--override-validation" in str(exc.value)
    assert hub.repo("alice/taskmaster") is None, "nothing created when refused"

    res = push_package(_cfg(hub, pkg, override_validation=True), settings, token=ALICE)
    assert res.override and res.decision == "REQUIRES ITERATION"
    commit = hub.commits("alice/taskmaster")[0]
    assert commit["summary"] == "Publish run run-bad: REQUIRES ITERATION (validation override)"
    readme = hub.file("alice/taskmaster", "README.md").decode()
    assert "Published with a validation override" in readme and "boundary_violations" in readme


def test_a_secret_is_never_pushed_even_with_override(hub, packages, tmp_path):
    settings, pkg = _pkg(packages, tmp_path)
    with open(pkg / "DATA_CARD.md", "a") as fh:
        fh.write("openai key sk-proj-" + "Z" * 40 + "\n")
    with pytest.raises(HubError, match="looks like a secret") as exc:
        push_package(_cfg(hub, pkg, override_validation=True), settings, token=ALICE)
    assert "Z" * 20 not in str(exc.value)
    assert hub.repo("alice/taskmaster") is None


def test_dataset_is_pushed_beside_the_adapter_and_linked_from_the_card(hub, packages, tmp_path):
    settings, pkg = _pkg(packages, tmp_path)
    res = push_package(_cfg(hub, pkg, dataset_repo="alice/taskmaster-data"), settings, token=ALICE)
    ds = hub.repo("alice/taskmaster-data", repo_type="dataset")
    data_path = yaml.safe_load((pkg / "training_config.yaml").read_text())["data"]
    assert not data_path.startswith("/"), "the package records the data relative to the project"
    assert ds is not None and ds.files["train.jsonl"] == (settings.root / data_path).read_bytes()
    assert "alice/taskmaster" in ds.files["README.md"].decode()
    assert res.dataset_url == f"{hub.url}/datasets/alice/taskmaster-data"
    readme = hub.file("alice/taskmaster", "README.md").decode()
    front = yaml.safe_load(readme.split("---")[1])
    assert front["datasets"] == ["alice/taskmaster-data"]


@pytest.mark.parametrize("token, repo_id, expected", [
    (None, "alice/x", "no Hugging Face token: set HF_TOKEN"),
    ("hf_" + "n" * 34, "alice/x", "token was rejected (401"),
    (READER, "reader/x", "read-only"),
    (ALICE, "bob/x", "no write access to the namespace 'bob'"),
    (ALICE, "viewers/x", "your role there is 'read'"),
    (ALICE, "guests/x", "no write access to the namespace 'guests' (403)"),  # refused by the server
    (ALICE, "alice/taken", "taken"),
    (ALICE, "not a repo id", "is not a Hub repo id: use OWNER/NAME"),
])
def test_clear_messages_for_every_user_error(hub, packages, tmp_path, token, repo_id, expected):
    settings, pkg = _pkg(packages, tmp_path)
    hub.add_repo("alice/taken", owner="mallory", private=True)  # the name exists, invisible to alice
    with pytest.raises(HubError) as exc:
        push_package(_cfg(hub, pkg, repo_id), settings, token=token)
    assert expected in str(exc.value)
    if token:
        assert token not in str(exc.value)
    assert all(not r.files for r in hub.repos.values()), "nothing published"


def test_network_failures_publish_nothing(hub, packages, tmp_path):
    settings, pkg = _pkg(packages, tmp_path)
    # the Hub unreachable
    with pytest.raises(HubError, match="network failure talking to http://127.0.0.1:9"):
        push_package(PushConfig(package=str(pkg), repo_id="alice/x", endpoint="http://127.0.0.1:9", load_check=False),
                     settings, token=ALICE)
    # the connection drops during the commit: the repo exists but shows nothing
    hub.fail("POST", r"/commit/", drop=True)
    with pytest.raises(HubError, match="network failure.*Nothing was published"):
        push_package(_cfg(hub, pkg), settings, token=ALICE)
    assert hub.repo("alice/taskmaster").files == {} and hub.commits("alice/taskmaster") == []
    # the Hub fails the commit: same, then a retry publishes everything in one commit
    hub.fail("POST", r"/commit/", status=500)
    with pytest.raises(HubError, match="HTTP 500.*Nothing was published"):
        push_package(_cfg(hub, pkg), settings, token=ALICE)
    assert hub.repo("alice/taskmaster").files == {}
    push_package(_cfg(hub, pkg), settings, token=ALICE)
    assert len(hub.commits("alice/taskmaster")) == 1 and "adapter_model.safetensors" in hub.repo("alice/taskmaster").files


def test_cli_push_uses_hf_token_and_never_echoes_it(hub, packages, tmp_path):
    _, pkg = _pkg(packages, tmp_path)
    env = {"PATH": "/usr/bin:/bin", **hub.client_env(), "HF_TOKEN": ALICE, "TASKMASTER_WORK_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "pipeline", "push", str(pkg), "--repo-id", "alice/cli-push",
                           "--no-load-check"], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    oid = hub.commits("alice/cli-push")[0]["oid"]
    assert f"{hub.url}/alice/cli-push/commit/{oid}" in proc.stdout and "(private)" in proc.stdout
    assert ALICE not in proc.stdout + proc.stderr


def test_publish_tab_packages_validates_and_pushes_in_one_click(tmp_path, tiny_model_dir):
    """The real studio, through gradio_client: Package -> Validate -> Push to the local Hub."""
    from gradio_client import Client

    from studio.app import build_app

    settings = Settings.from_env(env={}, work_dir=tmp_path / "work", cache_dir=REPO / ".cache")
    run = make_run(settings.work_dir, tiny_model_dir)
    demo = build_app(settings)
    with FakeHub() as hub, hub.patched_client():
        hub.add_user("alice", ALICE)
        demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        try:
            client = Client(demo.local_url, verbose=False)
            status, *_ = client.predict(str(run), api_name="/publish_package")
            assert "package written to" in status and (run / "package" / "MANIFEST.json").is_file()
            verdict, rows = client.predict(str(run), api_name="/publish_validate")
            assert "PASSED" in verdict and rows["data"] == []
            # settings.hf_token is not set: the token field is what authenticates, for this push only
            result, token_after, cli = client.predict(str(run), ALICE, "alice/from-ui", "", True, False,
                                                      api_name="/publish_push")
            assert token_after == "" and ALICE not in result + cli
            oid = hub.commits("alice/from-ui")[0]["oid"]
            assert f"{hub.url}/alice/from-ui/commit/{oid}" in result and hub.repo("alice/from-ui").private
            # a broken package: the findings table names file and fix; the push is refused
            (run / "package" / "PERSONA_SPEC.md").unlink()
            verdict, rows = client.predict(str(run), api_name="/publish_validate")
            assert "FAILED" in verdict
            assert ["error", "PERSONA_SPEC.md"] in [r[:2] for r in rows["data"]]
        finally:
            demo.close()


def test_the_publish_seam_hands_the_tab_rows_and_dataclasses(tmp_path, tiny_model_dir):
    """pipeline.package.studio_api without Gradio: the run list, the package summary and command, the
    findings as plain rows, and a failed push as a view (its reason and command, never the token)."""
    from pipeline.package import studio_api

    settings = Settings.from_env(env={}, work_dir=tmp_path / "work", cache_dir=REPO / ".cache")
    run = make_run(settings.work_dir, tiny_model_dir)
    assert [path for _, path in studio_api.runs(settings)] == [str(run)]
    view = studio_api.package(str(run), settings)
    assert "package written to" in view.summary and view.command == f"Same from the command line: `python -m pipeline package --run {run}`"
    checked = studio_api.validate(str(run), settings)
    assert "PASSED" in checked.verdict and checked.rows == []
    (run / "package" / "PERSONA_SPEC.md").unlink()
    rows = studio_api.validate(str(run), settings).rows
    assert all(isinstance(r, list) and len(r) == len(studio_api.FINDING_HEADERS) for r in rows)
    assert ["error", "PERSONA_SPEC.md"] in [r[:2] for r in rows]
    with FakeHub() as hub, hub.patched_client():
        hub.add_user("alice", ALICE)
        failed = studio_api.push(str(run), settings, token=ALICE, repo_id="alice/x", dataset_repo="", private=True,
                                 override_validation=False)
        assert hub.repo("alice/x") is None, "refused before the repo was created"
    assert failed.error and failed.markdown == f"**Push failed:** {failed.error}" and "PERSONA_SPEC.md" in failed.error
    assert "--repo-id alice/x --private" in failed.command and ALICE not in failed.markdown + failed.command
