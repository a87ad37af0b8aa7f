"""`ModelScopeEndpoint`: the two ModelScope hub calls a fetcher makes, on loopback.

- GET /api/v1/models/{org}/{name}/repo/files?Revision=<branch or tag>&Recursive=true →
  `{"Code": 200, "Data": {"Files": [{"Name", "Path", "Revision", "Sha256", "Size", "Type"}]}}`
  (directories as Type "tree"); an unknown repo or revision → `{"Code": 10010205001, "Message": ...}`
  with HTTP 404, as the hub answers.
- GET/HEAD /api/v1/models/{org}/{name}/repo?Revision=<rev>&FilePath=<path> → the file, with every
  FileServer knob (ranges, throttling, truncation, counters).
- `token=`: requests without `Authorization: Bearer <token>` get 401.

Datasets, as the modelscope SDK's HubApi asks for them (hub/api.py: get_dataset_id_and_type,
list_repo_tree, get_dataset_file_url):

- GET /api/v1/datasets/{org}/{name} → `{"Code": 200, "Data": {"Id": <number>, "Name", "Namespace",
  "Type": 0}}`; an unknown dataset → HTTP 404 `{"Code": 10010205001, "Message": ...}`.
- GET /api/v1/datasets/{Id}/repo/tree?Revision=&Root=&Recursive=True&PageNumber=<n>&PageSize=<m> →
  one page of `Data.Files` (the entries of the model listing), at most `page_limit` entries
  whatever PageSize asks (the service caps it too); past the last page, no entries.
  `ignore_paging=True` answers page 1 for every PageNumber (a mirror that drops the parameter).
- GET/HEAD /api/v1/datasets/{org}/{name}/repo?Source=SDK&Revision=<rev>&FilePath=<path> → the file.
- `listing_requests` counts the tree pages asked.

Repos: `add_repo("org/name", {"master": {"path": bytes}, "v1.0.0": {...}})`, revision → files;
`add_dataset("org/name", {...})` likewise.
"""

from __future__ import annotations

import hashlib
import json
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote

from .http_files import FileServer


class ModelScopeEndpoint(FileServer):
    def __init__(self, *, token: str | None = None, page_limit: int = 100, ignore_paging: bool = False, **knobs) -> None:
        super().__init__(**knobs)
        self.repos: dict[str, dict[str, dict[str, bytes]]] = {}
        self.datasets: dict[str, dict[str, dict[str, bytes]]] = {}
        self.dataset_ids: dict[str, int] = {}
        self.token = token
        self.page_limit = page_limit
        self.ignore_paging = ignore_paging
        self.listing_requests = 0

    def add_dataset(self, dataset_id: str, revisions: dict[str, dict[str, bytes]]) -> None:
        self.datasets[dataset_id] = {rev: dict(files) for rev, files in revisions.items()}
        self.dataset_ids.setdefault(dataset_id, 40000 + len(self.dataset_ids))

    def add_repo(self, repo_id: str, revisions: dict[str, dict[str, bytes]]) -> None:
        self.repos[repo_id] = {rev: dict(files) for rev, files in revisions.items()}

    def _answer(self, handler, status: int, payload: dict, method: str) -> None:
        self.reply(handler, status, json.dumps(payload).encode(), content_type="application/json", head=method == "HEAD")

    def route(self, handler: BaseHTTPRequestHandler, method: str, path: str, query: str, body: bytes) -> None:
        if self.token and handler.headers.get("Authorization") != f"Bearer {self.token}":
            self._answer(handler, 401, {"Code": 10010205002, "Message": "Unauthorized"}, method)
            return
        parts = path.strip("/").split("/")
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if parts[:3] == ["api", "v1", "datasets"]:
            self._dataset_route(handler, method, parts[3:], params)
            return
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
            self._answer(handler, 200, {"Code": 200, "Data": {"Files": _listing(files, revision)}, "Success": True}, method)
            return
        name = params.get("FilePath")
        if name not in files:
            self._answer(handler, 404, {"Code": 10010205001, "Message": f"file {name} not found"}, method)
            return
        self.send_content(handler, method, path, files[name])

    def _dataset_route(self, handler: BaseHTTPRequestHandler, method: str, rest: list[str], params: dict) -> None:
        if len(rest) == 2:  # /api/v1/datasets/{org}/{name}
            dataset_id = unquote("/".join(rest))
            if dataset_id not in self.datasets:
                self._answer(handler, 404, {"Code": 10010205001, "Message": f"dataset {dataset_id} not found"}, method)
                return
            org, name = dataset_id.split("/")
            self._answer(handler, 200, {"Code": 200, "Data": {"Id": self.dataset_ids[dataset_id], "Name": name,
                                                               "Namespace": org, "Type": 0}, "Success": True}, method)
            return
        revision = params.get("Revision", "master")
        if len(rest) == 3 and rest[1:] == ["repo", "tree"]:  # /api/v1/datasets/{Id}/repo/tree
            self.listing_requests += 1
            by_number = {str(number): repo for repo, number in self.dataset_ids.items()}
            files = self.datasets.get(by_number.get(rest[0], ""), {}).get(revision)
            if files is None:
                self._answer(handler, 404, {"Code": 10010205001, "Message": f"dataset {rest[0]} revision {revision} "
                                                                            "not found"}, method)
                return
            size = min(int(params.get("PageSize") or self.page_limit), self.page_limit)
            number = 1 if self.ignore_paging else int(params.get("PageNumber") or 1)
            page = _listing(files, revision)[(number - 1) * size:number * size]
            self._answer(handler, 200, {"Code": 200, "Data": {"Files": page}, "Success": True}, method)
            return
        if len(rest) == 3 and rest[2] == "repo":  # /api/v1/datasets/{org}/{name}/repo?FilePath=
            files = self.datasets.get(unquote("/".join(rest[:2])), {}).get(revision)
            name = params.get("FilePath")
            if files is None or name not in files:
                self._answer(handler, 404, {"Code": 10010205001, "Message": f"file {name} not found"}, method)
                return
            self.send_content(handler, method, "/".join(rest), files[name])
            return
        self._answer(handler, 404, {"Code": 404, "Message": "not found"}, method)


def _listing(files: dict[str, bytes], revision: str) -> list[dict]:
    """The hub's file entries: every file (Type blob, with its size and sha256), then every
    directory above one (Type tree)."""
    listing, directories = [], set()
    for name, data in sorted(files.items()):
        pieces = name.split("/")
        directories.update("/".join(pieces[:i]) for i in range(1, len(pieces)))
        listing.append({"Name": pieces[-1], "Path": name, "Revision": revision, "Size": len(data),
                        "Sha256": hashlib.sha256(data).hexdigest(), "Type": "blob"})
    return listing + [{"Name": d.split("/")[-1], "Path": d, "Revision": revision, "Size": 0, "Sha256": "", "Type": "tree"}
                      for d in sorted(directories)]
