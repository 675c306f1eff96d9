"""Publishing to the Hugging Face Hub: the package as a model repo (optionally its training
data as a dataset repo beside it), and the shared plumbing the Space deploy uses.

One push = preflight, then one commit:
  1. the package is validated (refused if it fails, unless `override_validation`, which is
     then written into the model card with the open findings);
  2. the token is checked (`whoami`) and the namespace's write access read from it;
  3. the repo is created if needed (private by default), or found and updated in place;
  4. every file goes up in ONE `create_commit` (LFS objects are uploaded first, by the
     client; the commit that makes them visible is atomic on the Hub), with stale files of a
     previous push deleted in the same commit. Nothing is half-published: if anything fails
     before the commit lands, the repo shows its previous state.

We call `create_commit` ourselves rather than `upload_folder`: with `hf_xet` installed,
huggingface_hub 2.x's `upload_folder` switches to a pipelined upload that may split a folder
into several commits. Large files go through Xet when `hf_xet` is installed (the real Hub),
or the LFS batch API when `HF_HUB_DISABLE_XET=1` (what the local test Hub speaks).

Every failure a user can cause becomes a `HubError` (a `UserError`) naming what to change:
no token, invalid token (401), no write access (403), repo name taken (409 / someone else's
repo), network failure. The token is never logged, stored, echoed or put in a message.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from .errors import UserError
from .settings import Settings

log = logging.getLogger(__name__)

REPO_ID_RE = re.compile(r"^(?![-.])[A-Za-z0-9._-]{1,96}(?<![-.])/(?![-.])[A-Za-z0-9._-]{1,96}(?<![-.])$")
TOKEN_URL = "https://huggingface.co/settings/tokens"


class HubError(UserError):
    """A push/deploy failure the user can fix; the message says how."""


class PushConfig(BaseModel):
    """The push stage's one config (CLI flags and the Publish tab build it). The token is not
    part of it on purpose: configs get logged and saved, tokens must not."""

    model_config = ConfigDict(extra="forbid")
    package: str = Field(description="package folder (python -m pipeline package --run ...)")
    repo_id: str = Field(description="OWNER/NAME of the model repo")
    private: bool = True
    override_validation: bool = Field(False, description="push even though validation failed (recorded in the card)")
    dataset_repo: str | None = Field(None, description="also push the training data as this dataset repo")
    load_check: bool = Field(True, description="validation loads the adapter onto its base model")
    endpoint: str | None = Field(None, description="Hub URL (default: HF_ENDPOINT or https://huggingface.co)")


@dataclass
class PushResult:
    repo_id: str
    repo_url: str
    commit_url: str
    commit_oid: str
    created: bool
    private: bool
    decision: str | None
    override: bool
    dataset_url: str | None = None
    dataset_commit_url: str | None = None

    def markdown(self) -> str:
        lines = [f"**{'Created' if self.created else 'Updated'}** [{self.repo_id}]({self.repo_url}) "
                 f"({'private' if self.private else 'public'}), decision: {self.decision or 'n/a'}.",
                 f"Commit: [{self.commit_oid[:10]}]({self.commit_url})"]
        if self.dataset_url:
            lines.append(f"Training data: [{self.dataset_url}]({self.dataset_url}) "
                         f"(commit: [{self.dataset_commit_url}]({self.dataset_commit_url}))")
        if self.override:
            lines.append("Pushed with a **validation override**, recorded in the model card.")
        return "\n\n".join(lines)

    def summary(self) -> str:
        lines = [f"{'created' if self.created else 'updated'} {self.repo_url} "
                 f"({'private' if self.private else 'public'}); commit: {self.commit_url}"]
        if self.dataset_url:
            lines.append(f"training data: {self.dataset_url} (commit: {self.dataset_commit_url})")
        if self.override:
            lines.append("pushed with a validation override (recorded in the model card)")
        return "\n".join(lines)


# ---- token + errors --------------------------------------------------------------------------

def resolve_token(token: str | None, settings: Settings) -> str:
    """The token typed in the Publish tab wins; else HF_TOKEN (a Space secret arrives as one)."""
    token = (token or "").strip() or (settings.hf_token or "").strip()
    if not token:
        raise HubError(f"no Hugging Face token: set HF_TOKEN (on a Space: Settings -> Secrets), or paste a write "
                       f"token in the Publish tab's token field ({TOKEN_URL})")
    return token


def check_repo_id(repo_id: str, flag: str = "--repo-id") -> str:
    repo_id = (repo_id or "").strip()
    if not REPO_ID_RE.match(repo_id) or "--" in repo_id or ".." in repo_id:
        raise HubError(f"{flag} {repo_id!r} is not a Hub repo id: use OWNER/NAME, e.g. your-name/taskmaster-adapter "
                       "(letters, digits, '-', '_', '.'; at most 96 characters each)")
    return repo_id


def _endpoint(endpoint: str | None) -> str:
    from huggingface_hub import constants

    return (endpoint or constants.ENDPOINT).rstrip("/")


@contextlib.contextmanager
def hub_errors(action: str, repo_id: str, endpoint: str, token: str | None, repo_type: str = "model"):
    """Map huggingface_hub / network exceptions to a HubError with the fix named (token masked)."""
    from huggingface_hub.errors import (HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError)

    def clean(msg: str) -> str:
        return msg.replace(token, "***") if token else msg

    namespace = repo_id.split("/")[0] if repo_id else ""
    try:
        yield
    except HubError:
        raise
    except OfflineModeIsEnabled:
        raise HubError(f"cannot {action}: HF_HUB_OFFLINE is set, so the Hub client refuses network access; "
                       "unset HF_HUB_OFFLINE and try again. Nothing was published.") from None
    except LocalTokenNotFoundError:
        raise HubError(f"cannot {action}: no Hugging Face token; set HF_TOKEN or use the token field") from None
    except RepositoryNotFoundError:
        raise HubError(f"cannot {action}: {repo_type} repo {repo_id} is not visible to this token: the name is taken "
                       f"by a repo you cannot access, or it was deleted meanwhile; choose another name") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            raise HubError(f"cannot {action}: the Hugging Face token was rejected (401, invalid or expired); create "
                           f"a new write token at {TOKEN_URL} and set HF_TOKEN or paste it in the token field") from None
        if status == 403:
            raise HubError(f"cannot {action}: no write access to the namespace {namespace!r} (403); use a write token "
                           f"of that user or of a member of that organization with write rights, or push to your own "
                           f"namespace (YOUR-NAME/{repo_id.split('/')[-1]})") from None
        if status == 402:
            raise HubError(f"cannot {action}: payment required (402): the requested hardware (or a Gradio Space on "
                           "this account) needs billing; add a payment method on the Hub, or deploy without "
                           "--hardware") from None
        if status == 409:
            raise HubError(f"cannot {action}: the repo name {repo_id} is taken (409); choose another name") from None
        if status == 400:
            raise HubError(f"cannot {action}: the Hub rejected the request (400): {clean(str(exc)).strip()[:300]}") from None
        if status == 429:
            raise HubError(f"cannot {action}: rate-limited by the Hub (429); wait a minute and try again. "
                           "Nothing was published.") from None
        raise HubError(f"cannot {action}: the Hub answered HTTP {status}; try again later. Nothing was published "
                       "(the commit is atomic).") from None
    except ValueError as exc:
        if "Invalid metadata" in str(exc):
            raise HubError(f"cannot {action}: the Hub rejected README.md's metadata: {clean(str(exc))[:300]}; "
                           "rebuild the package") from None
        raise
    except (OSError, RuntimeError) as exc:
        # httpx/httpx2 transport errors, connection refused, DNS, TLS, LFS upload failures.
        text = clean(f"{type(exc).__name__}: {exc}")
        cause = exc.__cause__ or exc.__context__
        if cause is not None:
            text += clean(f" ({type(cause).__name__})")
        raise HubError(f"cannot {action}: network failure talking to {endpoint} ({text[:200]}); check the connection "
                       "(and HF_ENDPOINT), then push again. Nothing was published: the commit is atomic.") from None
    except Exception as exc:  # httpx2 exceptions do not all derive from OSError
        if type(exc).__module__.startswith(("httpx", "httpcore")):
            raise HubError(f"cannot {action}: network failure talking to {endpoint} ({type(exc).__name__}); check "
                           "the connection (and HF_ENDPOINT), then push again. Nothing was published.") from None
        raise


@dataclass
class HubSession:
    api: object
    endpoint: str
    token: str
    user: str
    orgs: dict[str, str]
    token_role: str | None

    def check_namespace(self, repo_id: str) -> None:
        """Refuse early, with the fix, when the token visibly cannot write there (the server
        still has the last word: fine-grained tokens are checked by its 403)."""
        ns = repo_id.split("/")[0]
        if self.token_role == "read":
            raise HubError(f"the token of {self.user!r} is read-only: create a token with write access at {TOKEN_URL}")
        if ns != self.user and ns not in self.orgs:
            where = ", ".join([self.user] + list(self.orgs))
            raise HubError(f"no write access to the namespace {ns!r}: this token belongs to {self.user!r} "
                           f"(can write to: {where}); use one of those as OWNER, or a token of {ns!r}")
        if ns in self.orgs and self.orgs[ns] not in ("write", "admin", "contributor", None):
            raise HubError(f"no write access to the organization {ns!r}: your role there is {self.orgs[ns]!r}; "
                           f"ask an admin of {ns!r} for write rights, or push to {self.user}/{repo_id.split('/')[1]}")


def open_session(token: str, endpoint: str | None = None) -> HubSession:
    from huggingface_hub import HfApi

    ep = _endpoint(endpoint)
    api = HfApi(endpoint=ep, token=token)
    with hub_errors("check the token", "", ep, token):
        who = api.whoami(token=token)
    orgs = {o.get("name"): o.get("roleInOrg") for o in who.get("orgs") or [] if o.get("name")}
    role = ((who.get("auth") or {}).get("accessToken") or {}).get("role")
    return HubSession(api, ep, token, who.get("name", "?"), orgs, role)


def ensure_repo(s: HubSession, repo_id: str, *, repo_type: str = "model", private: bool = True,
                **create_kwargs) -> tuple[bool, list[str]]:
    """Create the repo, or find it to update in place. Returns (created, files already there)."""
    from huggingface_hub.errors import HfHubHTTPError

    with hub_errors(f"create {repo_type} repo {repo_id}", repo_id, s.endpoint, s.token, repo_type):
        try:
            s.api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=False, token=s.token,
                              **create_kwargs)
            return True, []
        except HfHubHTTPError as exc:
            if exc.response is None or exc.response.status_code != 409:
                raise
        # 409: the name exists. Ours (readable) -> update in place; otherwise it is taken.
        try:
            info = s.api.repo_info(repo_id, repo_type=repo_type, token=s.token)
        except HfHubHTTPError:
            raise HubError(f"the {repo_type} repo name {repo_id} is taken by a repo this token cannot see; "
                           "choose another name") from None
        return False, [x.rfilename for x in (info.siblings or [])]


def commit_files(s: HubSession, repo_id: str, files: dict[str, Path | bytes], *, repo_type: str = "model",
                 message: str, description: str = "", existing: list[str] = (), keep: tuple[str, ...] = (".gitattributes",)):
    """One atomic commit: add/replace `files`, delete what a previous push left that is not in
    `files` (so the repo mirrors the package). Returns huggingface_hub's CommitInfo."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(src) if isinstance(src, Path) else src)
           for p, src in sorted(files.items())]
    ops += [CommitOperationDelete(path_in_repo=p) for p in existing if p not in files and p not in keep]
    with hub_errors(f"upload to {repo_id}", repo_id, s.endpoint, s.token, repo_type):
        return s.api.create_commit(repo_id, operations=ops, commit_message=message, commit_description=description,
                                   repo_type=repo_type, token=s.token)


def repo_url(s: HubSession, repo_id: str, repo_type: str = "model") -> str:
    prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}[repo_type]
    return f"{s.endpoint}/{prefix}{repo_id}"


# ---- the push stage ----------------------------------------------------------------------------

def _folder_files(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and "/." not in p.relative_to(folder).as_posix()}


def dataset_card(data_card: str, *, model_repo: str, license: str) -> str:
    meta = {"license": license if license != "other" else "other", "task_categories": ["text-generation"],
            "language": ["en"], "tags": ["persona", "conversational", "lora-training-data"],
            "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "train.jsonl"}]}]}
    return ("---\n" + yaml.safe_dump(meta, sort_keys=False).strip() + "\n---\n\n" + data_card.strip()
            + f"\n\nThe adapter trained on this data: [{model_repo}](https://huggingface.co/{model_repo}).\n")


def push_package(cfg: PushConfig, settings: Settings, *, token: str | None = None, report=None) -> PushResult:
    """Validate, then publish the package in one commit (see the module docstring)."""
    from .package import refresh_card, validate_package
    from .package.manifest import read_manifest
    from .package.secrets_scan import scan_folder

    folder = Path(cfg.package)
    repo_id = check_repo_id(cfg.repo_id)
    dataset_repo = check_repo_id(cfg.dataset_repo, "--dataset-repo") if cfg.dataset_repo else None
    if not (folder / "MANIFEST.json").is_file():
        raise HubError(f"{folder} is not a package (no MANIFEST.json): build one with "
                       "`python -m pipeline package --run runs/<id>` (or the Publish tab's Package button)")
    token = resolve_token(token, settings)

    rep = report or validate_package(folder, settings, load_check=cfg.load_check)
    if not rep.ok and not cfg.override_validation:
        raise HubError("the package failed validation, so it was not pushed:\n"
                       + "\n".join(f"  - {f}" for f in rep.errors)
                       + "\nFix these (rebuild the package), or push anyway with --override-validation "
                         "(the Publish tab's override box); the override is recorded in the model card.")
    secrets = [f for f in rep.errors if "possible secret" in f.problem]
    if secrets:  # never overridable: a leaked token cannot be unpublished
        raise HubError("the package contains what looks like a secret, so it was not pushed (an override does not "
                       "cover secrets):\n" + "\n".join(f"  - {f}" for f in secrets))

    s = open_session(token, cfg.endpoint)
    s.check_namespace(repo_id)
    manifest = read_manifest(folder) or {}
    card = manifest.get("card") or {}
    data_path = None
    if dataset_repo:
        s.check_namespace(dataset_repo)
        tc = yaml.safe_load((folder / "training_config.yaml").read_text(encoding="utf-8")) or {}
        data_path = Path(tc.get("data") or "")
        if not data_path.is_absolute():  # packages record it relative to the project (package/portable.py)
            data_path = next((r / data_path for r in (settings.root, settings.work_dir) if (r / data_path).is_file()),
                             data_path)
        if not data_path.is_file():
            raise HubError(f"the training data {data_path} is not on this machine, so --dataset-repo cannot push it; "
                           "push without it, or from the machine that trained the run")
        leaks = scan_folder(data_path.parent, settings, files=[data_path.name])
        if leaks:
            raise HubError("the training data contains what looks like a secret, so it was not pushed:\n"
                           + "\n".join(f"  - {f}" for f in leaks))

    # Preflight both repos before any commit, so a refusal leaves nothing behind.
    created, existing = ensure_repo(s, repo_id, private=cfg.private)
    ds_existing: list[str] = []
    if dataset_repo:
        _, ds_existing = ensure_repo(s, dataset_repo, repo_type="dataset", private=cfg.private)

    override = None
    if not rep.ok:
        override = {"findings": [f"{f.file}: {f.problem}" for f in rep.errors], "by": s.user,
                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    # The card as published: usage code loads the repo id; dataset link; override record.
    refresh_card(folder, adapter_ref=repo_id, dataset_repo=dataset_repo, override=override)

    result_ds_url = result_ds_commit = None
    if dataset_repo:
        data_card = (folder / "DATA_CARD.md").read_text(encoding="utf-8")
        ds_commit = commit_files(s, dataset_repo, {
            "train.jsonl": data_path,
            "README.md": dataset_card(data_card, model_repo=repo_id, license=card.get("license", "other")).encode(),
        }, repo_type="dataset", existing=ds_existing,
            message=f"Training data of {card.get('persona', 'persona')} run {manifest.get('run_id', '?')}")
        result_ds_url, result_ds_commit = repo_url(s, dataset_repo, "dataset"), ds_commit.commit_url

    decision = rep.decision or "not evaluated"
    message = f"Publish run {manifest.get('run_id', '?')}: {decision}" + (" (validation override)" if override else "")
    gates = ((card.get("evaluation") or {}).get("gates")) or []
    description = "\n".join([f"Package built by TaskMaster Persona Studio from run {manifest.get('run_id', '?')}.",
                             f"Decision: {decision}."]
                            + [f"- {g.get('name')}: {'PASS' if g.get('passed') else 'FAIL'} ({g.get('value')} vs {g.get('threshold')})"
                               for g in gates if isinstance(g, dict)]
                            + ([f"Validation override by {s.user}: {len(override['findings'])} open finding(s)."] if override else []))
    commit = commit_files(s, repo_id, _folder_files(folder), message=message, description=description,
                          existing=existing)
    log.info("pushed %s to %s: %s", folder, repo_id, commit.commit_url)
    return PushResult(repo_id, repo_url(s, repo_id), commit.commit_url, commit.oid, created, cfg.private,
                      rep.decision, bool(override), result_ds_url, result_ds_commit)
