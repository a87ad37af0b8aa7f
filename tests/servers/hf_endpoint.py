"""`HFEndpoint`: a minimal Hugging Face Hub-compatible endpoint, for `HF_ENDPOINT=<endpoint.url>`.

It is a `FileServer`, so every download knob and counter of `servers.http_files` (ranges,
`ignore_range`, `rate_per_connection`, `truncate_after`, `fail_after_requests`, `hits`,
`bytes_sent`) applies to it; `bytes_sent` counts file content only, never API JSON.

Repos (one dict per repo type, keyed by repo id, e.g. "org/name"):

    {"revision_sha": "<40 hex>", "branches": {"main": sha}, "files": {"path": bytes}}

optionally with `"tags": {name: sha}`, `"lfs": [paths]` (stored as LFS whatever their size) and
`"commits": {sha: {path: bytes}}` to host several commits (then `revision_sha`/`files` add one
more). `branches` defaults to {"main": revision_sha}; `revision_sha` defaults to a sha derived
from the repo id. A file is LFS when listed in `lfs` or at least `lfs_threshold` bytes.
`add_repo()` returns the `Repo`; its `commits`, `branches` and `tags` dicts may be changed while
the server runs (e.g. add a commit and move "main" to it, as an upstream push would).

HTTP surface (`{t}` is `models` or `datasets`; `{repo}` is "org/name" or "name"; a revision is
a branch, a tag, "refs/heads/<b>", a full commit sha or a unique prefix of at least
`min_short_sha` hex characters; percent-encoded segments such as "refs%2Fpr%2F1" are decoded):

- GET /api/{t}/{repo} and /api/{t}/{repo}/revision/{rev}: repo info JSON (`id`, `sha`,
  `siblings`, ...); with `?blobs=true` siblings carry `size`, `blobId` and `lfs`.
- GET /api/{t}/{repo}/tree/{rev}[/{path}]?recursive=&expand=: list of entries
  `{"type": "file", "oid", "size", "path"[, "lfs": {"oid", "size", "pointerSize"}][, "xetHash"]}`
  and `{"type": "directory", "oid", "size": 0, "path"}`; `expand=true` adds `lastCommit`.
  Paginated like the Hub: at most `tree_page_size` entries (50 with expand), then a
  `Link: <...&cursor=...>; rel="next"` header.
- POST /api/{t}/{repo}/paths-info/{rev} (form `paths`, `expand`): entries for the paths that exist.
- GET /api/{t}/{repo}/refs: `branches`, `tags`, `converts` (and `pullRequests`, always empty).
- GET/HEAD /{repo}/resolve/{rev}/{path} and /datasets/{repo}/resolve/{rev}/{path}: the file,
  with Range support, `X-Repo-Commit`, and `ETag`: the git blob sha1 for a regular file, the
  sha256 for an LFS file, which also gets `X-Linked-Etag` and `X-Linked-Size`. With `cdn=True`
  an LFS file answers 302 to `self.cdn` (a second FileServer, so another origin, as the Hub's
  CDN is) carrying those headers, and the bytes come from there.
- Errors: 404 with JSON `{"error": ...}`, `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`,
  `EntryNotFound`) and `X-Error-Message`; EntryNotFound carries `X-Repo-Commit` as on the Hub.
- `lfs_redirect="http://host:port"`: an LFS resolve answers 302 to
  `<lfs_redirect>/xet-bridge-us/<repo hash>/<xet hash>?X-Amz-...&X-Amz-Signature=...`, as
  hf-mirror.com answers Xet-stored files (its own `cas-bridge.xethub.hf-mirror.com`, and at
  times the upstream `cas-bridge.xethub.hf.co`: github.com/padeoe/hf-mirror-site/issues/50).
  Point it at a port nothing listens on to play a mirror that sends users where they cannot go;
  `LFS_REDIRECT_SIGNATURE` is the signature value the Location carries.
- `token="hf_..."`: every request without `Authorization: Bearer <token>` answers 401 (a missing
  token as the Hub answers anonymous access to a private repo, a wrong one with its
  "Invalid credentials in Authorization header" message).
- `offer_xet=True`: LFS resolve responses carry `X-Xet-Hash`, `X-Xet-Refresh-Route` and
  `Link: <.../xet-read-token/{sha}>; rel="xet-auth", <.../xet-cas/v1/reconstructions/{hash}>;
  rel="xet-reconstruction-info"`, and tree entries carry `xetHash`. Every request to those
  routes (`/api/{t}/{repo}/xet-{read,write}-token/...`, `/xet-cas/...`) is counted in
  `xet_requests` / `xet_paths` and answered 403: a client that stays on the mirror leaves them 0.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from .http_files import FileServer

LFS_THRESHOLD = 1024 * 1024
LFS_REDIRECT_SIGNATURE = "0f3c9a1b7e5d4c2a8b6e0d9f1a3c5e7b9d2f4a6c8e0b1d3f5a7c9e2b4d6f8a0c"
COMMIT_DATE = "2024-01-01T00:00:00.000Z"
_HEX = re.compile(r"[0-9a-f]+")


def fake_sha(seed: str) -> str:
    """A deterministic 40-hex commit sha for tests."""
    return hashlib.sha1(seed.encode()).hexdigest()


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    sha = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()


@dataclass(frozen=True)
class Blob:
    data: bytes
    lfs: bool

    @property
    def size(self) -> int:
        return len(self.data)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @cached_property
    def pointer(self) -> bytes:
        return lfs_pointer(self.data)

    @cached_property
    def oid(self) -> str:
        """The git blob id: of the content, or of the LFS pointer for an LFS file (as git stores it)."""
        return git_blob_oid(self.pointer if self.lfs else self.data)

    @cached_property
    def xet_hash(self) -> str:
        # Any 64-hex value will do: nothing may ever fetch it from a real Xet store.
        return hashlib.sha256(b"xet:" + self.data).hexdigest()


@dataclass
class Repo:
    repo_id: str
    repo_type: str  # "model" or "dataset"
    commits: dict[str, dict[str, bytes]]
    branches: dict[str, str]
    tags: dict[str, str] = field(default_factory=dict)
    lfs: set[str] = field(default_factory=set)


class HubError(Exception):
    """An error answered the way the Hub does: status, `X-Error-Code` (if any), message."""

    def __init__(
        self, code: str | None, message: str, headers: Mapping[str, str] | None = None, status: int = 404
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.headers, self.status = code, message, dict(headers or {}), status


class HFEndpoint(FileServer):
    """See the module docstring for the contract."""

    def __init__(
        self,
        models: Mapping[str, Mapping] | None = None,
        datasets: Mapping[str, Mapping] | None = None,
        *,
        token: str | None = None,
        offer_xet: bool = False,
        tree_page_size: int = 1000,
        lfs_threshold: int = LFS_THRESHOLD,
        min_short_sha: int = 7,
        cdn: bool = False,
        lfs_redirect: str | None = None,
        **file_server_knobs,
    ) -> None:
        super().__init__(**file_server_knobs)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.token = token
        self.offer_xet = offer_xet
        self.tree_page_size = tree_page_size
        self.lfs_threshold = lfs_threshold
        self.min_short_sha = min_short_sha
        # The Hub redirects LFS downloads to a CDN on another host; a second server is another origin.
        self.cdn = FileServer() if cdn else None
        self.lfs_redirect = lfs_redirect
        self.xet_requests = 0
        self.xet_paths: list[str] = []
        for repo_type, specs in (("model", models), ("dataset", datasets)):
            for repo_id, spec in (specs or {}).items():
                self.add_repo(repo_id, repo_type=repo_type, **spec)

    # -- setup -----------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        *,
        repo_type: str = "model",
        files: Mapping[str, bytes] | None = None,
        revision_sha: str | None = None,
        branches: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        commits: Mapping[str, Mapping[str, bytes]] | None = None,
        lfs: Iterable[str] = (),
    ) -> Repo:
        if repo_type not in ("model", "dataset"):
            raise ValueError(f"unsupported repo_type {repo_type!r}")
        all_commits = {sha.lower(): dict(content) for sha, content in (commits or {}).items()}
        if files is not None or not all_commits:
            revision_sha = (revision_sha or fake_sha(f"{repo_type}:{repo_id}")).lower()
            all_commits[revision_sha] = dict(files or {})
        for sha in all_commits:
            if not re.fullmatch(r"[0-9a-f]{40}", sha):
                raise ValueError(f"{repo_id}: commit {sha!r} is not 40 hex characters")
        if branches is None:
            branches = {"main": revision_sha or next(iter(all_commits))}
        repo = Repo(repo_id, repo_type, all_commits, dict(branches), dict(tags or {}), set(lfs))
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def reset_counters(self) -> None:
        super().reset_counters()
        with self._counter_lock:
            self.xet_requests = 0
            self.xet_paths = []

    # -- lifecycle: the CDN lives and dies with the endpoint ---------------------------------

    def start(self):
        if self.cdn is not None:
            self.cdn.start()
        try:
            return super().start()
        except BaseException:
            if self.cdn is not None:
                self.cdn.stop()
            raise

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self.cdn is not None:
                self.cdn.stop()

    # -- model ------------------------------------------------------------------------------

    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError("RepoNotFound", "Repository not found")
        return repo

    def resolve_revision(self, repo: Repo, revision: str | None) -> str:
        rev = revision or "main"
        for prefix, refs in (("refs/heads/", repo.branches), ("refs/tags/", repo.tags)):
            if rev.startswith(prefix) and rev[len(prefix) :] in refs:
                return refs[rev[len(prefix) :]]
        if rev in repo.branches:
            return repo.branches[rev]
        if rev in repo.tags:
            return repo.tags[rev]
        lowered = rev.lower()
        if len(lowered) >= self.min_short_sha and _HEX.fullmatch(lowered):
            matches = [sha for sha in repo.commits if sha.startswith(lowered)]
            if len(matches) == 1:
                return matches[0]
        raise HubError("RevisionNotFound", f"Invalid rev id: {rev}")

    def _blob(self, repo: Repo, path: str, data: bytes) -> Blob:
        return Blob(data, path in repo.lfs or len(data) >= self.lfs_threshold)

    def _file_entry(self, repo: Repo, sha: str, path: str, blob: Blob, expand: bool) -> dict:
        entry: dict = {"type": "file", "oid": blob.oid, "size": blob.size, "path": path}
        if blob.lfs:
            entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": len(blob.pointer)}
            if self.offer_xet:
                entry["xetHash"] = blob.xet_hash
        if expand:
            entry["lastCommit"] = {"id": sha, "title": "Upload", "date": COMMIT_DATE}
        return entry

    def _dir_entry(self, sha: str, path: str, expand: bool) -> dict:
        entry: dict = {"type": "directory", "oid": fake_sha(f"tree:{sha}:{path}"), "size": 0, "path": path}
        if expand:
            entry["lastCommit"] = {"id": sha, "title": "Upload", "date": COMMIT_DATE}
        return entry

    @staticmethod
    def _directories(files: Iterable[str]) -> set[str]:
        dirs = set()
        for path in files:
            parts = path.split("/")[:-1]
            dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return dirs

    def _tree(self, repo: Repo, sha: str, subpath: str, recursive: bool, expand: bool) -> list[dict]:
        files = repo.commits[sha]
        dirs = self._directories(files)
        if subpath and subpath not in dirs:
            raise HubError("EntryNotFound", f'{subpath} does not exist on "{sha}"', {"X-Repo-Commit": sha})
        prefix = subpath + "/" if subpath else ""

        def wanted(path: str) -> bool:
            if not path.startswith(prefix):
                return False
            return recursive or "/" not in path[len(prefix) :]

        entries = [self._dir_entry(sha, d, expand) for d in dirs if wanted(d)]
        entries += [
            self._file_entry(repo, sha, p, self._blob(repo, p, data), expand)
            for p, data in files.items()
            if wanted(p)
        ]
        # Directories first, then by path: a stable order that pagination can slice.
        entries.sort(key=lambda e: (e["type"] != "directory", e["path"]))
        return entries

    def _info(self, repo: Repo, sha: str, blobs: bool) -> dict:
        siblings = []
        for path, data in sorted(repo.commits[sha].items()):
            sibling: dict = {"rfilename": path}
            if blobs:
                blob = self._blob(repo, path, data)
                sibling.update(size=blob.size, blobId=blob.oid)
                if blob.lfs:
                    sibling["lfs"] = {
                        "sha256": blob.sha256,
                        "size": blob.size,
                        "pointerSize": len(blob.pointer),
                    }
            siblings.append(sibling)
        info = {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
            "sha": sha,
            "lastModified": COMMIT_DATE,
            "createdAt": COMMIT_DATE,
            "private": self.token is not None,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(len(d) for d in repo.commits[sha].values()),
        }
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
        return info

    # -- HTTP --------------------------------------------------------------------------------

    def route(self, handler: BaseHTTPRequestHandler, method: str, path: str, query: str, body: bytes) -> None:
        # Routing works on the raw path: a percent-encoded "/" inside one segment (a revision
        # such as "refs%2Fpr%2F1", a tree path) must not split it.
        raw = urlsplit(handler.path).path
        segments = [s for s in raw.split("/")[1:]]
        try:
            if self._is_xet_route(segments):
                with self._counter_lock:
                    self.xet_requests += 1
                    self.xet_paths.append(path)
                self._json(handler, 403, {"error": "Xet storage is not available on this mirror"}, method)
                return
            self._check_token(handler)
            if segments[:1] == ["api"] and len(segments) >= 3 and segments[1] in ("models", "datasets"):
                self._api(handler, method, segments[1][:-1], segments[2:], raw, query, body)
            elif "resolve" in segments and method in ("GET", "HEAD"):
                self._resolve(handler, method, segments, path)
            else:
                self._json(handler, 404, {"error": "Not Found"}, method)
        except HubError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code is not None:
                headers["X-Error-Code"] = err.code
            self._json(handler, err.status, {"error": err.message}, method, headers=headers)

    @staticmethod
    def _is_xet_route(segments: list[str]) -> bool:
        return segments[:1] == ["xet-cas"] or (
            segments[:1] == ["api"] and any(s in ("xet-read-token", "xet-write-token") for s in segments)
        )

    def _check_token(self, handler: BaseHTTPRequestHandler) -> None:
        if self.token is None:
            return
        auth = handler.headers.get("Authorization")
        if auth is None:
            # What the Hub answers anonymous access to a private repo: 401 + RepoNotFound.
            raise HubError("RepoNotFound", "Repository not found", status=401)
        if auth != f"Bearer {self.token}":
            raise HubError(None, "Invalid credentials in Authorization header", status=401)

    def _split_repo(self, repo_type: str, segments: list[str]) -> tuple[Repo, list[str]]:
        """The repo named by the leading segments ("org/name" or "name") and the segments after it."""
        for n in (2, 1):
            repo_id = "/".join(unquote(s) for s in segments[:n])
            if len(segments) >= n and (repo_type, repo_id) in self.repos:
                return self.repos[(repo_type, repo_id)], segments[n:]
        raise HubError("RepoNotFound", "Repository not found")

    def _api(self, handler, method, repo_type, segments, raw_path, query, body) -> None:
        repo, tail = self._split_repo(repo_type, segments)
        params = parse_qs(query)
        op = tail[0] if tail else ""
        if method == "POST" and op == "paths-info":
            sha = self.resolve_revision(repo, unquote(tail[1]) if len(tail) > 1 else None)
            form = parse_qs(body.decode())
            expand = _truthy(form.get("expand"))
            files = repo.commits[sha]
            dirs = self._directories(files)
            entries = []
            for p in form.get("paths", []):
                p = p.strip("/")
                if p in files:
                    entries.append(self._file_entry(repo, sha, p, self._blob(repo, p, files[p]), expand))
                elif p in dirs:
                    entries.append(self._dir_entry(sha, p, expand))
            self._json(handler, 200, entries, method)
            return
        if method not in ("GET", "HEAD"):
            self._json(handler, 405, {"error": "Method not allowed"}, method)
            return
        if op == "" or op == "revision":
            rev = unquote("/".join(tail[1:])) if op == "revision" else None
            sha = self.resolve_revision(repo, rev)
            self._json(handler, 200, self._info(repo, sha, _truthy(params.get("blobs"))), method)
        elif op == "tree":
            sha = self.resolve_revision(repo, unquote(tail[1]) if len(tail) > 1 else None)
            subpath = unquote("/".join(tail[2:])).strip("/")
            expand = _truthy(params.get("expand"))
            entries = self._tree(repo, sha, subpath, _truthy(params.get("recursive")), expand)
            page_size = min(self.tree_page_size, 50) if expand else self.tree_page_size
            cursor = params.get("cursor", [None])[0]
            start = int(base64.urlsafe_b64decode(cursor).decode()) if cursor else 0
            page = entries[start : start + page_size]
            headers = {}
            if start + page_size < len(entries):
                next_params = {k: v[-1] for k, v in params.items() if k != "cursor"}
                next_params["cursor"] = base64.urlsafe_b64encode(str(start + page_size).encode()).decode()
                headers["Link"] = f'<{self.url}{raw_path}?{urlencode(next_params)}>; rel="next"'
            self._json(handler, 200, page, method, headers=headers)
        elif op == "refs":

            def refs(kind: str, names: Mapping[str, str]) -> list[dict]:
                return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": s} for n, s in names.items()]

            self._json(
                handler,
                200,
                {
                    "branches": refs("heads", repo.branches),
                    "tags": refs("tags", repo.tags),
                    "converts": [],
                    "pullRequests": [],
                },
                method,
            )
        else:
            self._json(handler, 404, {"error": "Not Found"}, method)

    def _resolve(self, handler, method, segments, path) -> None:
        repo_type = "model"
        if segments[:1] == ["datasets"]:
            repo_type, segments = "dataset", segments[1:]
        at = segments.index("resolve") if "resolve" in segments else -1
        if at not in (1, 2) or len(segments) < at + 3:
            raise HubError("RepoNotFound", "Repository not found")
        repo = self._repo(repo_type, "/".join(unquote(s) for s in segments[:at]))
        sha = self.resolve_revision(repo, unquote(segments[at + 1]))
        filename = unquote("/".join(segments[at + 2 :]))
        files = repo.commits[sha]
        if filename not in files:
            raise HubError("EntryNotFound", "Entry not found", {"X-Repo-Commit": sha})
        blob = self._blob(repo, filename, files[filename])
        headers = {"X-Repo-Commit": sha}
        if not blob.lfs:
            self.send_content(handler, method, path, blob.data, etag=f'"{blob.oid}"', headers=headers)
            return
        etag = f'"{blob.sha256}"'
        headers.update({"X-Linked-Etag": etag, "X-Linked-Size": str(blob.size)})
        if self.offer_xet:
            refresh = f"{self.url}/api/{repo_type}s/{repo.repo_id}/xet-read-token/{sha}"
            reconstruction = f"{self.url}/xet-cas/v1/reconstructions/{blob.xet_hash}"
            headers.update(
                {
                    "X-Xet-Hash": blob.xet_hash,
                    "X-Xet-Refresh-Route": refresh,
                    "Link": f'<{refresh}>; rel="xet-auth", <{reconstruction}>; rel="xet-reconstruction-info"',
                }
            )
        if self.lfs_redirect is not None:
            query = urlencode({"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD",
                               "X-Amz-Credential": "AKIAXETBRIDGE/20260101/us-east-1/s3/aws4_request",
                               "X-Amz-Date": "20260101T000000Z", "X-Amz-Expires": "3600",
                               "X-Amz-Signature": LFS_REDIRECT_SIGNATURE, "X-Amz-SignedHeaders": "host"})
            repo_hash = hashlib.md5(repo.repo_id.encode()).hexdigest()[:24]
            headers["Location"] = f"{self.lfs_redirect}/xet-bridge-us/{repo_hash}/{blob.xet_hash}?{query}"
            self.reply(handler, 302, b"", headers=headers, head=method == "HEAD")
            return
        if self.cdn is not None:
            cdn_path = self.cdn.put(f"/blobs/{blob.sha256}", blob.data)
            headers["Location"] = self.cdn.url + quote(cdn_path)
            headers["ETag"] = etag
            self.reply(handler, 302, b"", headers=headers, head=method == "HEAD")
            return
        self.send_content(handler, method, path, blob.data, etag=etag, headers=headers)

    def _json(
        self, handler, status: int, payload, method: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        body = json.dumps(payload).encode()
        self.reply(
            handler,
            status,
            body,
            headers=headers or {},
            content_type="application/json; charset=utf-8",
            head=method == "HEAD",
        )


def _truthy(values: list[str] | None) -> bool:
    return bool(values) and values[-1].lower() in ("1", "true", "yes")
