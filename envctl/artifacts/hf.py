"""Hugging Face Hub sources (`hf://org/repo@revision`, `hf://datasets/org/repo@revision`).

The metadata (the commit a revision names, the file list, each large file's sha256) comes from
huggingface_hub. The bytes do not: the hub client checks only sizes, deletes partial files on
failure and, when a server offers Xet storage, downloads from there instead of the mirror a user
chose. So every file is fetched from `<endpoint>/<repo>/resolve/<commit>/<path>` by envctl's own
downloader (resumable, verified by sha256, or by git blob id for small files), and HF_ENDPOINT
(hf-mirror.com, a lab mirror) and HF_TOKEN are honoured.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import quote

from envctl.artifacts import urls
from envctl.artifacts.cache import Cache, PlacedFile
from envctl.artifacts.download import Downloader, FetchError, RemoteFile
from envctl.artifacts.hub_network import NETWORK_HINT, network_failure
from envctl.artifacts.sources import Source

DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class HubFile:
    path: str
    size: int
    sha256: str | None  # large (LFS) files only
    git_blob: str  # the git blob id: sha1 of "blob <size>\0" + content


def endpoint(environ: Mapping[str, str]) -> str:
    return (environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _api(environ: Mapping[str, str]):
    # Only metadata goes through the hub client, with the endpoint passed explicitly (it reads
    # HF_ENDPOINT once, at import); no bytes, so its Xet routing never comes into play.
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint(environ), token=environ.get("HF_TOKEN") or False)


def resolve(source: Source, environ: Mapping[str, str]) -> tuple[str, list[HubFile]]:
    """The full commit of the source's revision and the files at that commit."""
    repo_type = "dataset" if source.kind == "hf-dataset" else "model"
    api = _api(environ)
    where = f"{source.display} (endpoint {urls.redact_text(endpoint(environ))})"  # a mirror's password never shown
    try:
        info = api.repo_info(source.location, revision=source.revision, repo_type=repo_type)
        commit = info.sha
        entries = api.list_repo_tree(source.location, revision=commit, repo_type=repo_type, recursive=True)
        files = [
            HubFile(e.path, e.size, e.lfs.sha256 if getattr(e, "lfs", None) else None, e.blob_id)
            for e in entries if hasattr(e, "blob_id")
        ]
    except Exception as exc:  # noqa: BLE001 — the hub client raises many types; all become one message
        failed = network_failure(exc, endpoint(environ))
        if failed:
            raise FetchError(f"{where}: {failed}", hint=NETWORK_HINT) from None
        raise FetchError(f"{where}: {_hub_reason(exc)}",
                         hint="check the repository and revision, HF_ENDPOINT and HF_TOKEN") from None
    return commit, files


def _hub_reason(exc: Exception) -> str:
    name = type(exc).__name__
    if "RepositoryNotFound" in name:
        return "no such repository (or it is private: set HF_TOKEN)"
    if "RevisionNotFound" in name:
        return "no such revision"
    if "GatedRepo" in name:
        return "the repository is gated: accept its terms on the hub and set HF_TOKEN"
    text = str(exc).strip().splitlines()
    return f"{name}: {text[0][:200]}" if text else name


def select(files: list[HubFile], subpath: str | None, include: list[str]) -> list[HubFile]:
    prefix = subpath.strip("/") + "/" if subpath else ""
    chosen = [f for f in files if f.path.startswith(prefix)]
    if include:
        chosen = [f for f in chosen if any(fnmatch.fnmatch(f.path, p) or fnmatch.fnmatch(f.path.rsplit("/", 1)[-1], p) for p in include)]
    return chosen


def git_blob_id(path) -> str:
    size = os.path.getsize(path)
    digest = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_url(source: Source, commit: str, path: str, environ: Mapping[str, str]) -> str:
    """Where the endpoint serves one file of the repository at a commit."""
    prefix = "datasets/" if source.kind == "hf-dataset" else ""
    return f"{endpoint(environ)}/{prefix}{source.location}/resolve/{commit}/{quote(path)}"


def headers(environ: Mapping[str, str]) -> dict:
    """Request headers with HF_TOKEN, when one is set."""
    token = environ.get("HF_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def download(source: Source, commit: str, files: list[HubFile], cache: Cache, downloader: Downloader,
             environ: Mapping[str, str], locked: dict[str, str] | None = None) -> list[PlacedFile]:
    """Fetch every file as a verified blob. `locked` maps paths to the sha256 the lock recorded."""
    auth = headers(environ)
    # Through a mirror, a redirect elsewhere that cannot be followed is the mirror's doing.
    mirror = ("HF_ENDPOINT", endpoint(environ)) if environ.get("HF_ENDPOINT") else None

    def one(file: HubFile) -> PlacedFile:
        url = file_url(source, commit, file.path, environ)
        expected = file.sha256 or (locked or {}).get(file.path)
        remote = RemoteFile(file.path, url, f"{source.display}/{file.path}", file.size, expected, headers=auth,
                            stay_within=mirror)
        sha, size = downloader.fetch(remote)
        if file.sha256 is None and git_blob_id(cache.blob(sha)) != file.git_blob:
            cache.blob(sha).unlink(missing_ok=True)
            raise FetchError(f"{file.path}: content does not match the hub's git blob id {file.git_blob} "
                             f"(source {source.display}); the download was discarded")
        return PlacedFile(file.path, size, sha)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, files))
