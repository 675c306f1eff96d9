"""Studio-wide settings, read once from the environment.

One object carries every app-wide dependency (paths, endpoints, secrets) so that the UI,
the CLI and the tests pass it around explicitly instead of reading globals.
Secrets are kept as `SecretStr`-like private fields: `repr()` and `public_summary()` never
show them, because the header of the studio and the logs are built from those.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, TGI, LM Studio...)."""

    base_url: str | None
    model: str
    api_key: str | None = field(default=None, repr=False)

    @property
    def configured(self) -> bool:
        # A local server (vLLM, Ollama) often needs no key, but then it needs a base_url.
        return bool(self.api_key) or bool(self.base_url)

    def describe(self) -> str:
        """For pages, headers and logs: the URL without credentials (see `redact_url`)."""
        where = redact_url(self.base_url) if self.base_url else "api.openai.com"
        return f"{self.model} @ {where}" if self.configured else "not configured"


# Every variable Settings.from_env reads (and to_env writes).
SETTINGS_VARS = ("TASKMASTER_ROOT", "TASKMASTER_WORK_DIR", "TASKMASTER_CACHE_DIR", "TASKMASTER_PERSONA",
                 "TASKMASTER_BASE_MODEL", "TASKMASTER_GENERATOR_MODEL", "TASKMASTER_JUDGE_MODEL", "OPENAI_BASE_URL",
                 "OPENAI_API_KEY", "TASKMASTER_JUDGE_BASE_URL", "TASKMASTER_JUDGE_API_KEY",
                 "TASKMASTER_ADMIN_PASSWORD", "HF_TOKEN", "SPACE_ID")


# Query parameters that carry a credential in the wild (Azure's `api-key`, `?key=` of Google's
# APIs, `token`, `sig` of signed URLs...): their values are replaced, other parameters stay.
_SECRET_PARAM = re.compile(r"(?i)(?:^|[-_])(key|token|secret|password|passwd|pwd|auth|sig|signature|credential)s?$|^api[-_]?key$")


def redact_url(url: str) -> str:
    """`http://user:pass@host/v1?api-key=X&model=m` -> `http://host/v1?api-key=***&model=m`.
    Userinfo is dropped, secret-looking query values are masked; never raises on odd input."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        query = [(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="*"), ""))
    except ValueError:  # not a URL we can parse: show nothing of it rather than a secret
        return "<unparseable URL>"


@dataclass(frozen=True)
class Settings:
    root: Path = REPO_ROOT
    work_dir: Path = REPO_ROOT
    cache_dir: Path = REPO_ROOT / ".cache"
    persona: str = "taskmaster"
    base_model: str = "smollm2-135m"
    # set when the production base was the default but is not available here: what the header shows
    base_model_note: str = ""
    generator: Endpoint = field(default_factory=lambda: Endpoint(None, "gpt-4o-mini"))
    judge: Endpoint = field(default_factory=lambda: Endpoint(None, "gpt-4o-mini"))
    admin_password: str | None = field(default=None, repr=False)
    hf_token: str | None = field(default=None, repr=False)
    space_id: str | None = None
    # The header a proxy you trust sets to the client's address (its last entry is what that
    # proxy saw); None: the TCP peer. On a Space the platform's proxy sets X-Forwarded-For.
    trusted_proxy_header: str | None = None

    # ---- derived paths -------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def personas_dir(self) -> Path:
        return self.data_dir / "personas"

    def persona_dir(self, name: str | None = None) -> Path:
        return self.personas_dir / (name or self.persona)

    @property
    def runs_dir(self) -> Path:
        return self.work_dir / "runs"

    @property
    def state_dir(self) -> Path:
        """Mutable studio state: SQLite databases, review decisions, job records."""
        return self.work_dir / "state"

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"

    @property
    def on_space(self) -> bool:
        return bool(self.space_id)

    @property
    def access_restricted(self) -> bool:
        """Admin login is required for everything but the Arena when a password is set or on a Space."""
        return bool(self.admin_password) or self.on_space

    def public_summary(self) -> dict[str, str]:
        """What the page header may show: never a secret."""
        return {
            "base_model": self.base_model,
            "generator": self.generator.describe(),
            "judge": self.judge.describe(),
            "hf_token": "set" if self.hf_token else "not set",
            "access": "admin login required" if self.access_restricted else "open (local)",
        }

    def to_env(self) -> dict[str, str]:
        """The environment variables `from_env` reads, such that `Settings.from_env(s.to_env()) == s`:
        how a job (training, evaluation, a data stage, a `pipeline run` stage) gets the studio's
        settings. Secrets travel only in a child's environment, never in argv or a file."""
        env = {"TASKMASTER_ROOT": str(self.root), "TASKMASTER_WORK_DIR": str(self.work_dir),
               "TASKMASTER_CACHE_DIR": str(self.cache_dir), "TASKMASTER_PERSONA": self.persona,
               "TASKMASTER_BASE_MODEL": self.base_model, "TASKMASTER_GENERATOR_MODEL": self.generator.model,
               "TASKMASTER_JUDGE_MODEL": self.judge.model}
        g, j = self.generator, self.judge
        if g.base_url:
            env["OPENAI_BASE_URL"] = g.base_url
        if g.api_key:
            env["OPENAI_API_KEY"] = g.api_key
        if j.base_url and j.base_url != g.base_url:
            env["TASKMASTER_JUDGE_BASE_URL"] = j.base_url
        if j.api_key and j.api_key != g.api_key:
            env["TASKMASTER_JUDGE_API_KEY"] = j.api_key
        for var, value in (("TASKMASTER_ADMIN_PASSWORD", self.admin_password), ("HF_TOKEN", self.hf_token),
                           ("SPACE_ID", self.space_id)):
            if value:
                env[var] = value
        return env

    def job_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """A child process's whole environment: this process's (PATH, offline flags, ...) without
        any settings variable, then `to_env()`; so a child sees these settings and no others."""
        env = {k: v for k, v in (os.environ if base is None else base).items() if k not in SETTINGS_VARS}
        return {**env, **self.to_env()}

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> "Settings":
        env = dict(os.environ if env is None else env)
        space_id = env.get("SPACE_ID") or None
        root = Path(env.get("TASKMASTER_ROOT", REPO_ROOT))
        # On a Space, /data is the persistent volume (when the Space has storage enabled).
        default_work = Path("/data/taskmaster") if space_id and Path("/data").is_dir() else root
        work_dir = Path(env.get("TASKMASTER_WORK_DIR", default_work))
        api_key = env.get("OPENAI_API_KEY") or None
        base_url = env.get("OPENAI_BASE_URL") or None
        gen_model = env.get("TASKMASTER_GENERATOR_MODEL", "gpt-4o-mini")
        judge_model = env.get("TASKMASTER_JUDGE_MODEL", gen_model)
        values = dict(
            root=root,
            work_dir=work_dir,
            cache_dir=Path(env.get("TASKMASTER_CACHE_DIR", root / ".cache")),
            persona=env.get("TASKMASTER_PERSONA", "taskmaster"),
            base_model=env.get("TASKMASTER_BASE_MODEL") or _default_base_model(),
            generator=Endpoint(base_url, gen_model, api_key),
            judge=Endpoint(env.get("TASKMASTER_JUDGE_BASE_URL") or base_url, judge_model,
                           env.get("TASKMASTER_JUDGE_API_KEY") or api_key),
            admin_password=env.get("TASKMASTER_ADMIN_PASSWORD") or None,
            hf_token=env.get("HF_TOKEN") or None,
            space_id=space_id,
            trusted_proxy_header=(env.get("TASKMASTER_TRUSTED_PROXY_HEADER")
                                  or ("x-forwarded-for" if space_id else None)),
        )
        values.update(overrides)
        settings = cls(**values)
        if not env.get("TASKMASTER_BASE_MODEL") and "base_model" not in overrides:
            settings = _fall_back_to_embedded(settings)
        return settings


def _fall_back_to_embedded(settings: "Settings") -> "Settings":
    """On a GPU the default base is the production target; when its weights are not here (the gated
    repo's licence not accepted, the preload missing) the studio serves the embedded model and
    says so, instead of failing at the first reply."""
    if settings.base_model == "smollm2-135m":
        return settings
    import dataclasses

    from .models import availability, resolve

    try:
        ok, why = availability(resolve(settings.base_model), settings)
    except Exception as exc:  # a broken registry entry must not stop the studio
        ok, why = False, str(exc)
    if ok:
        return settings
    return dataclasses.replace(settings, base_model="smollm2-135m", base_model_note=(
        f"The production base model {settings.base_model} is not available ({why}); the studio runs on the "
        f"embedded SmolLM2-135M-Instruct. Accept the model's licence on the Hub and redeploy (it is preloaded), "
        f"or set TASKMASTER_BASE_MODEL."))


def _default_base_model() -> str:
    """The production target on a GPU, the embedded model on CPU (see pipeline.models)."""
    try:
        import torch

        if torch.cuda.is_available():
            return "llama-3.1-8b-instruct"
    except Exception:  # torch missing or broken: the embedded CPU model still works
        pass
    return "smollm2-135m"
