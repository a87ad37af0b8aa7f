"""`ModelScopeEndpoint`: the two ModelScope hub calls a fetcher makes, on loopback.

- GET /api/v1/models/{org}/{name}/repo/files?Revision=<branch or tag>&Recursive=true →
  `{"Code": 200, "Data": {"Files": [{"Name", "Path", "Revision", "Sha256", "Size", "Type"}]}}`
  (directories as Type "tree"); an unknown repo or revision → `{"Code": 10010205001, "Message": ...}`
  with HTTP 404, as the hub answers.
- GET/HEAD /api/v1/models/{org}/{name}/repo?Revision=<rev>&FilePath=<path> → the file, with every
  FileServer knob (ranges, throttling, truncation, counters).
- `token=`: requests without `Authorization: Bearer <token>` get 401.

Repos: `add_repo("org/name", {"master": {"path": bytes}, "v1.0.0": {...}})`, revision → files.
"""

from __future__ import annotations

import hashlib
import json
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote

from .http_files import FileServer


class ModelScopeEndpoint(FileServer):
    def __init__(self, *, token: str | None = None, **knobs) -> None:
        super().__init__(**knobs)
        self.repos: dict[str, dict[str, dict[str, bytes]]] = {}
        self.token = token

    def add_repo(self, repo_id: str, revisions: dict[str, dict[str, bytes]]) -> None:
        self.repos[repo_id] = {rev: dict(files) for rev, files in revisions.items()}

    def _answer(self, handler, status: int, payload: dict, method: str) -> None:
        self.reply(handler, status, json.dumps(payload).encode(), content_type="application/json", head=method == "HEAD")

    def route(self, handler: BaseHTTPRequestHandler, method: str, path: str, query: str, body: bytes) -> None:
        if self.token and handler.headers.get("Authorization") != f"Bearer {self.token}":
            self._answer(handler, 401, {"Code": 10010205002, "Message": "Unauthorized"}, method)
            return
        parts = path.strip("/").split("/")
        params = {k: v[0] for k, v in parse_qs(query).items()}
        if parts[:3] != ["api", "v1", "models"] or len(parts) < 6 or parts[5:6] not in (["repo"],):
            self._answer(handler, 404, {"Code": 404, "Message": "not found"}, method)
            return
        repo_id = unquote("/".join(parts[3:5]))
        revision = params.get("Revision", "master")
        files = self.repos.get(repo_id, {}).get(revision)
        if files is None:
            self._answer(handler, 404, {"Code": 10010205001, "Message": f"model {repo_id} revision {revision} not found"}, method)
            return
        if parts[6:7] == ["files"]:
            listing, directories = [], set()
            for name, data in sorted(files.items()):
                pieces = name.split("/")
                directories.update("/".join(pieces[:i]) for i in range(1, len(pieces)))
                listing.append({"Name": pieces[-1], "Path": name, "Revision": revision, "Size": len(data),
                                "Sha256": hashlib.sha256(data).hexdigest(), "Type": "blob"})
            listing += [{"Name": d.split("/")[-1], "Path": d, "Revision": revision, "Size": 0, "Sha256": "", "Type": "tree"}
                        for d in sorted(directories)]
            self._answer(handler, 200, {"Code": 200, "Data": {"Files": listing}, "Success": True}, method)
            return
        name = params.get("FilePath")
        if name not in files:
            self._answer(handler, 404, {"Code": 10010205001, "Message": f"file {name} not found"}, method)
            return
        self.send_content(handler, method, path, files[name])
