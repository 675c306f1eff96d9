"""A local Hugging Face Hub for tests: a real HTTP server on 127.0.0.1 that the real
`huggingface_hub` client (2.x, httpx) talks to unmodified once `HF_ENDPOINT` points at it.

It implements the endpoints that `whoami`, `create_repo`, `repo_info`, `create_commit` and
`upload_folder` call (checked against huggingface_hub 2.4's source):

    GET  /api/whoami-v2                                     who the Bearer token belongs to
    POST /api/repos/create                                  {name, organization, type, visibility, sdk, ...}
    GET  /api/{models|datasets|spaces}/{ns}/{name}[/revision/{rev}]   repo info with `siblings`
    POST /api/validate-yaml                                 README front matter check (model-index shape)
    POST /api/{type}s/{ns}/{name}/preupload/{rev}           upload mode per file: "regular" or "lfs"
    POST /[{datasets|spaces}/]{ns}/{name}.git/info/lfs/objects/batch   LFS batch API ("basic" transfer)
    PUT  /_lfs/objects/{oid}                                LFS object upload (sha256 checked)
    POST /_lfs/verify                                       LFS verify action
    POST /api/spaces/{ns}/{name}/hardware                   request Space hardware ({"flavor": ...})
    POST /api/{type}s/{ns}/{name}/commit/{rev}              NDJSON commit: header, file (base64), lfsFile,
                                                            deletedFile, deletedFolder; applied atomically
    GET  /[{datasets|spaces}/]{ns}/{name}/resolve/{rev}/{path}          raw file content

Regular files arrive inline, base64, inside the commit's NDJSON; LFS files (`*.safetensors`,
`*.bin`, `*.gguf`, ... or anything over 10 MB, as the Hub's default .gitattributes) go through
the LFS batch API first. The Xet protocol is not implemented: clients must run with
`HF_HUB_DISABLE_XET=1` (see `client_env()` / `patched_client()`), which makes huggingface_hub
use the legacy LFS path. A commit is all-or-nothing: if any LFS object it names is missing, or
a fault is injected, the repo is left exactly as it was.

Permissions: tokens map to users; users belong to orgs with a role ("read", "write",
"admin"); a token itself can be read-only (`role="read"`). Creating or committing to a
namespace needs write rights there; private repos are invisible (404) to others.

API (also meant for other engineers' dataset-push tests):

    from pipeline.testing.hub_server import FakeHub
    with FakeHub() as hub:                                  # starts on a free port, stops on exit
        hub.add_user("alice", token="hf_alice_write", orgs={"acme": "write", "viewers": "read"})
        hub.add_user("bob", token="hf_bob_read", token_role="read")
        hub.add_repo("carol/taken", owner="carol", private=True)     # pre-existing repo
        with hub.patched_client():                         # in-process: endpoint, offline, xet
            HfApi(endpoint=hub.url, token="hf_alice_write").create_repo("alice/x")
        env = {**os.environ, **hub.client_env()}            # for a subprocess (CLI) instead
        hub.repo("alice/x")            # Repo(repo_type, repo_id, owner, private, sdk, files, commits)
        hub.file("alice/x", "README.md")                    # bytes of a committed file
        hub.commits("alice/x")         # [{"oid", "summary", "description", "files", "deleted"}]
        hub.requests                   # [(method, path, status)] in arrival order
        hub.fail("POST", r"/commit/", status=500)           # next matching request fails once
        hub.fail("POST", r"/commit/", drop=True)            # ... or the connection is dropped
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

import yaml

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".onnx", ".msgpack",
                ".parquet", ".arrow", ".zip", ".tar", ".gz", ".npz", ".pkl")
LFS_MIN_BYTES = 10 * 1024 * 1024  # the Hub stores bigger files in LFS whatever their name
TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
SPACE_SDKS = ("gradio", "docker", "static", "streamlit")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class User:
    name: str
    token: str
    orgs: dict[str, str] = field(default_factory=dict)  # org -> role (read/write/admin)
    token_role: str = "write"


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    owner: str
    private: bool = False
    sdk: str | None = None
    hardware: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    lfs: set[str] = field(default_factory=set)  # paths stored as LFS
    commits: list[dict] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)

    @property
    def sha(self) -> str:
        return self.commits[-1]["oid"] if self.commits else "0" * 40


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern
    status: int
    drop: bool
    times: int


class FakeHub:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.users: dict[str, User] = {}
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_store: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, int]] = []
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer((host, port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeHub":
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-hub")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def client_env(self) -> dict[str, str]:
        """Environment for a subprocess whose huggingface_hub should talk to this server."""
        return {"HF_ENDPOINT": self.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0",
                "TRANSFORMERS_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1"}

    @contextlib.contextmanager
    def patched_client(self):
        """In-process: huggingface_hub reads HF_ENDPOINT, HF_HUB_OFFLINE and HF_HUB_DISABLE_XET at
        import time, so patch its constants for the duration (tests set offline mode globally)."""
        from huggingface_hub import constants

        saved = {k: getattr(constants, k) for k in ("ENDPOINT", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_XET")}
        constants.ENDPOINT = self.url
        constants.HF_HUB_OFFLINE = False
        constants.HF_HUB_DISABLE_XET = True
        try:
            yield self
        finally:
            for k, v in saved.items():
                setattr(constants, k, v)

    # ---- set-up and inspection ------------------------------------------------------
    def add_user(self, name: str, token: str, *, orgs: dict[str, str] | None = None,
                 token_role: str = "write") -> User:
        user = User(name, token, dict(orgs or {}), token_role)
        with self._lock:
            self.users[token] = user
        return user

    def add_repo(self, repo_id: str, *, owner: str | None = None, repo_type: str = "model",
                 private: bool = False, files: dict[str, bytes] | None = None) -> Repo:
        repo = Repo(repo_type, repo_id, owner or repo_id.split("/")[0], private)
        if files:
            repo.files.update(files)
            repo.commits.append({"oid": _new_oid(repo_id, 0), "summary": "initial", "description": "",
                                 "files": sorted(files), "deleted": []})
        with self._lock:
            self.repos[(repo_type, repo_id)] = repo
        return repo

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo | None:
        return self.repos.get((repo_type, repo_id))

    def file(self, repo_id: str, path: str, repo_type: str = "model") -> bytes:
        return self.repos[(repo_type, repo_id)].files[path]

    def commits(self, repo_id: str, repo_type: str = "model") -> list[dict]:
        return list(self.repos[(repo_type, repo_id)].commits)

    def fail(self, method: str, path_regex: str, *, status: int = 500, drop: bool = False, times: int = 1) -> None:
        with self._lock:
            self._faults.append(_Fault(method.upper(), re.compile(path_regex), status, drop, times))

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for f in self._faults:
                if f.method == method and f.pattern.search(path) and f.times > 0:
                    f.times -= 1
                    return f
        return None

    # ---- permissions ----------------------------------------------------------------
    def can_write(self, user: User, namespace: str) -> bool:
        if user.token_role == "read":
            return False
        return namespace == user.name or user.orgs.get(namespace) in ("write", "admin")

    def can_read(self, user: User | None, repo: Repo) -> bool:
        if not repo.private:
            return True
        return user is not None and (repo.owner == user.name or repo.owner in user.orgs)


def _new_oid(repo_id: str, n: int) -> str:
    return hashlib.sha1(f"{repo_id}:{n}:{time.time_ns()}".encode()).hexdigest()


def _is_lfs(path: str, size: int) -> bool:
    return path.lower().endswith(LFS_SUFFIXES) or size >= LFS_MIN_BYTES


def _validate_front_matter(content: str) -> list[str]:
    """The part of the Hub's metadata check that matters here: YAML parses to a mapping and a
    `model-index` has the shape the Hub turns into evaluation results."""
    m = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
    if not m:
        return []
    try:
        meta = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError as exc:
        return [f"YAML front matter does not parse: {exc}"]
    if not isinstance(meta, dict):
        return ["YAML front matter must be a mapping"]
    errors = []
    mi = meta.get("model-index")
    if mi is not None:
        if not isinstance(mi, list):
            return ['"model-index" must be a list']
        for i, entry in enumerate(mi):
            if not isinstance(entry, dict) or not entry.get("name"):
                errors.append(f'"model-index[{i}].name" is required')
                continue
            for j, res in enumerate(entry.get("results") or []):
                where = f"model-index[{i}].results[{j}]"
                if not (res.get("task") or {}).get("type"):
                    errors.append(f'"{where}.task.type" is required')
                ds = res.get("dataset") or {}
                if not ds.get("name") or not ds.get("type"):
                    errors.append(f'"{where}.dataset" needs "name" and "type"')
                for k, metric in enumerate(res.get("metrics") or []):
                    if not metric.get("type") or "value" not in metric:
                        errors.append(f'"{where}.metrics[{k}]" needs "type" and "value"')
    for key in ("tags", "datasets"):
        if key in meta and not isinstance(meta[key], (list, str)):
            errors.append(f'"{key}" must be a list of strings')
    return errors


def _make_handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: tests read hub.requests instead
            pass

        # ---- plumbing ----------------------------------------------------------------
        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _send(self, status: int, obj=None, *, raw: bytes | None = None, headers: dict | None = None):
            data = raw if raw is not None else json.dumps(obj if obj is not None else {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            hub.requests.append((self.command, self.path, status))

        def _error(self, status: int, message: str, code: str | None = None):
            self._send(status, {"error": message}, headers={"X-Error-Code": code} if code else None)

        def _user(self) -> User | None:
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer "):
                return None
            return hub.users.get(auth[len("Bearer "):].strip())

        def _handle(self):
            path = urlparse(self.path).path
            body = self._body()
            fault = hub._take_fault(self.command, path)
            if fault is not None:
                if fault.drop:
                    hub.requests.append((self.command, self.path, 0))
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(2)
                    return
                return self._error(fault.status, "injected fault")
            try:
                self._route(self.command, path, body)
            except Exception as exc:  # a bug in the fake hub: make it visible to the test
                self._error(500, f"fake hub error: {type(exc).__name__}: {exc}")

        do_GET = do_POST = do_PUT = do_DELETE = _handle

        # ---- routes ------------------------------------------------------------------
        def _route(self, method: str, path: str, body: bytes):
            if path == "/api/whoami-v2" and method == "GET":
                return self._whoami()
            if path == "/api/repos/create" and method == "POST":
                return self._create(json.loads(body or b"{}"))
            if path == "/api/validate-yaml" and method == "POST":
                errors = _validate_front_matter(json.loads(body or b"{}").get("content", ""))
                return self._send(400 if errors else 200, {"errors": [{"message": e} for e in errors], "warnings": []})
            if path == "/_lfs/verify" and method == "POST":
                oid = json.loads(body or b"{}").get("oid")
                return self._send(200 if oid in hub.lfs_store else 404, {})
            m = re.match(r"^/_lfs/objects/([0-9a-f]{64})$", path)
            if m and method == "PUT":
                if hashlib.sha256(body).hexdigest() != m.group(1):
                    return self._error(400, "LFS object does not match its sha256")
                with hub._lock:
                    hub.lfs_store[m.group(1)] = body
                return self._send(200, {})
            m = re.match(r"^/api/spaces/([^/]+/[^/]+)/hardware$", path)
            if m and method == "POST":
                return self._hardware(unquote(m.group(1)), json.loads(body or b"{}"))
            m = re.match(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/revision/([^/]+))?$", path)
            if m and method == "GET":
                return self._info(TYPES[m.group(1)], unquote(m.group(2)))
            m = re.match(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)/(preupload|commit)/([^/]+)$", path)
            if m and method == "POST":
                rtype, rid = TYPES[m.group(1)], unquote(m.group(2))
                if m.group(3) == "preupload":
                    return self._preupload(rtype, rid, json.loads(body or b"{}"))
                return self._commit(rtype, rid, body)
            m = re.match(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch$", path)
            if m and method == "POST":
                return self._lfs_batch(TYPES.get(m.group(1) or "models"), unquote(m.group(2)), json.loads(body))
            m = re.match(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
            if m and method in ("GET", "HEAD"):
                return self._resolve(TYPES.get(m.group(1) or "models"), unquote(m.group(2)), unquote(m.group(4)))
            return self._error(404, f"fake hub: no route for {method} {path}")

        def _whoami(self):
            user = self._user()
            if user is None:
                return self._error(401, "Invalid credentials in Authorization header")
            return self._send(200, {
                "type": "user", "name": user.name, "fullname": user.name,
                "orgs": [{"type": "org", "name": o, "roleInOrg": r} for o, r in user.orgs.items()],
                "auth": {"type": "access_token",
                         "accessToken": {"displayName": "test token", "role": user.token_role}},
            })

        def _writer(self, namespace: str) -> User | None:
            """The authenticated user allowed to write in `namespace`, or None after answering."""
            user = self._user()
            if user is None:
                self._error(401, "Invalid credentials in Authorization header")
                return None
            if not hub.can_write(user, namespace):
                self._error(403, f'You don\'t have the rights to write in the namespace "{namespace}"')
                return None
            return user

        def _create(self, payload: dict):
            rtype = payload.get("type") or "model"
            name, org = payload.get("name"), payload.get("organization")
            user = self._user()
            if user is None:
                return self._error(401, "Invalid credentials in Authorization header")
            namespace = org or user.name
            repo_id = f"{namespace}/{name}"
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}", name or ""):
                return self._error(400, f"Invalid repo name {name!r}")
            if not hub.can_write(user, namespace):
                return self._error(403, f'You don\'t have the rights to create a {rtype} under the namespace "{namespace}"')
            if rtype == "space" and payload.get("sdk") not in SPACE_SDKS:
                return self._error(400, "A space needs an sdk (gradio, docker, static)")
            with hub._lock:
                if (rtype, repo_id) in hub.repos or any(
                        k[0] == rtype and k[1].lower() == repo_id.lower() for k in hub.repos):
                    return self._error(409, f"You already created this {rtype} repo", code=None)
                private = payload.get("visibility") == "private" or bool(payload.get("private"))
                repo = Repo(rtype, repo_id, namespace, private, payload.get("sdk"), payload.get("hardware"))
                hub.repos[(rtype, repo_id)] = repo
            url = f"{hub.url}/{URL_PREFIX[rtype]}{repo_id}"
            return self._send(200, {"url": url, "name": repo_id, "id": repo_id})

        def _visible(self, rtype: str, rid: str) -> Repo | None:
            repo = hub.repos.get((rtype, rid))
            if repo is None or not hub.can_read(self._user(), repo):
                self._error(404, "Repository not found", code="RepoNotFound")
                return None
            return repo

        def _info(self, rtype: str, rid: str):
            repo = self._visible(rtype, rid)
            if repo is None:
                return
            info = {"id": rid, "author": repo.owner, "sha": repo.sha, "private": repo.private,
                    "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                    "siblings": [{"rfilename": p, "size": len(b)} for p, b in sorted(repo.files.items())],
                    "tags": []}
            if rtype == "space":
                info.update(sdk=repo.sdk, runtime={"stage": "BUILDING", "hardware": {"current": None,
                                                                                    "requested": repo.hardware}})
            return self._send(200, info)

        def _hardware(self, rid: str, payload: dict):
            repo = self._visible("space", rid)
            if repo is None or self._writer(repo.owner) is None:
                return
            repo.hardware = payload.get("flavor")
            return self._send(200, {"stage": "BUILDING", "hardware": {"current": None, "requested": repo.hardware}})

        def _preupload(self, rtype: str, rid: str, payload: dict):
            repo = self._visible(rtype, rid)
            if repo is None or self._writer(repo.owner) is None:
                return
            out = []
            for f in payload.get("files", []):
                path, size = f["path"], int(f.get("size", 0))
                lfs = _is_lfs(path, size)
                old = repo.files.get(path)
                oid = None
                if old is not None:
                    oid = hashlib.sha256(old).hexdigest() if path in repo.lfs else git_blob_sha1(old)
                out.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                            "oid": oid})
            return self._send(200, {"files": out, "commitOid": repo.sha})

        def _lfs_batch(self, rtype: str, rid: str, payload: dict):
            repo = self._visible(rtype, rid)
            if repo is None or self._writer(repo.owner) is None:
                return
            objects = []
            for obj in payload.get("objects", []):
                oid, size = obj["oid"], int(obj["size"])
                entry = {"oid": oid, "size": size}
                if oid not in hub.lfs_store:  # already stored objects need no upload (no "actions")
                    entry["actions"] = {"upload": {"href": f"{hub.url}/_lfs/objects/{oid}"},
                                        "verify": {"href": f"{hub.url}/_lfs/verify"}}
                objects.append(entry)
            return self._send(200, {"transfer": "basic", "objects": objects})

        def _commit(self, rtype: str, rid: str, body: bytes):
            repo = self._visible(rtype, rid)
            if repo is None:
                return
            user = self._writer(repo.owner)
            if user is None:
                return
            lines = [json.loads(x) for x in body.splitlines() if x.strip()]
            header = next((x["value"] for x in lines if x.get("key") == "header"), None)
            if not header or not header.get("summary"):
                return self._error(400, "commit needs a header with a summary")
            files = dict(repo.files)
            lfs = set(repo.lfs)
            changed, deleted = [], []
            for item in lines:
                key, v = item.get("key"), item.get("value", {})
                if key == "file":
                    files[v["path"]] = base64.b64decode(v["content"])
                    lfs.discard(v["path"])
                    changed.append(v["path"])
                elif key == "lfsFile":
                    data = hub.lfs_store.get(v["oid"])
                    if data is None or len(data) != int(v["size"]):
                        return self._error(400, f"LFS object for {v['path']} was not uploaded")
                    files[v["path"]] = data
                    lfs.add(v["path"])
                    changed.append(v["path"])
                elif key == "deletedFile":
                    if v["path"] not in files:
                        return self._error(404, "A file with this name doesn't exist", code="EntryNotFound")
                    del files[v["path"]]
                    lfs.discard(v["path"])
                    deleted.append(v["path"])
                elif key == "deletedFolder":
                    prefix = v["path"].rstrip("/") + "/"
                    for p in [p for p in files if p.startswith(prefix)]:
                        del files[p]
                        lfs.discard(p)
                        deleted.append(p)
                elif key != "header":
                    return self._error(400, f"unknown commit operation {key!r}")
            with hub._lock:  # the swap: readers see the old state or the new one, never a mix
                oid = _new_oid(rid, len(repo.commits) + 1)
                repo.files, repo.lfs = files, lfs
                repo.commits.append({"oid": oid, "summary": header["summary"],
                                     "description": header.get("description", ""), "author": user.name,
                                     "files": sorted(changed), "deleted": sorted(deleted)})
            url = f"{hub.url}/{URL_PREFIX[rtype]}{rid}/commit/{oid}"
            return self._send(200, {"commitUrl": url, "commitOid": oid, "pullRequestUrl": None,
                                    "success": True})

        def _resolve(self, rtype: str, rid: str, path: str):
            repo = self._visible(rtype, rid)
            if repo is None:
                return
            if path not in repo.files:
                return self._error(404, "Entry not found", code="EntryNotFound")
            data = repo.files[path]
            return self._send(200, raw=data, headers={"X-Repo-Commit": repo.sha, "ETag": f'"{git_blob_sha1(data)}"'})

    return Handler


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Run the local fake Hugging Face Hub (for manual tries).")
    ap.add_argument("--port", type=int, default=8098)
    ap.add_argument("--user", default="me")
    ap.add_argument("--token", default="hf_local_test_token")
    a = ap.parse_args(argv)
    hub = FakeHub(port=a.port)
    hub.add_user(a.user, a.token)
    hub.start()
    print(f"fake Hub on {hub.url}; user {a.user!r}, token {a.token!r}. Use:\n"
          f"  HF_ENDPOINT={hub.url} HF_HUB_DISABLE_XET=1 HF_TOKEN=<token> python -m pipeline publish ...")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hub.stop()


if __name__ == "__main__":
    main()
