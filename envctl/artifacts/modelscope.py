"""ModelScope sources (`modelscope://org/repo@revision`): the mirror most Chinese labs reach.

ModelScope accepts a branch or tag as revision (not a commit), so reproducibility comes from
the sha256 of every file, which its file listing publishes and `envctl lock` records. Listing:
`GET <endpoint>/api/v1/models/<repo>/repo/files?Revision=<rev>&Recursive=true`; each file:
`GET <endpoint>/api/v1/models/<repo>/repo?Revision=<rev>&FilePath=<path>`, through envctl's own
resumable, verified downloader. MODELSCOPE_ENDPOINT (or MODELSCOPE_DOMAIN) selects a mirror;
MODELSCOPE_API_TOKEN is sent as a bearer token and never printed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Mapping
from urllib.parse import quote, urlencode

import requests

from envctl.artifacts.cache import PlacedFile
from envctl.artifacts.download import TIMEOUT, Downloader, FetchError, RemoteFile
from envctl.artifacts.hf import HubFile, select
from envctl.artifacts.sources import Source

DEFAULT_ENDPOINT = "https://www.modelscope.cn"


def endpoint(environ: Mapping[str, str]) -> str:
    if environ.get("MODELSCOPE_ENDPOINT"):
        return environ["MODELSCOPE_ENDPOINT"].rstrip("/")
    if environ.get("MODELSCOPE_DOMAIN"):
        domain = environ["MODELSCOPE_DOMAIN"].rstrip("/")
        return domain if "://" in domain else f"https://{domain}"
    return DEFAULT_ENDPOINT


def _headers(environ: Mapping[str, str]) -> dict:
    token = environ.get("MODELSCOPE_API_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def resolve(source: Source, environ: Mapping[str, str]) -> list[HubFile]:
    base = endpoint(environ)
    url = f"{base}/api/v1/models/{quote(source.location)}/repo/files?" + urlencode(
        {"Revision": source.revision, "Recursive": "true"})
    where = f"{source.display} (endpoint {base})"
    try:
        response = requests.get(url, headers=_headers(environ), timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise FetchError(f"{where}: {type(exc).__name__}", hint="check MODELSCOPE_ENDPOINT and the network") from None
    if response.status_code in (401, 403):
        raise FetchError(f"{where}: access refused ({response.status_code})", hint="set MODELSCOPE_API_TOKEN")
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or body.get("Code") not in (200, None) or "Data" not in body:
        message = body.get("Message") or f"HTTP {response.status_code}"
        raise FetchError(f"{where}: {message}", hint="check the repository and the revision (a branch or tag)")
    files = []
    for entry in body["Data"].get("Files") or []:
        if entry.get("Type") == "tree":
            continue
        files.append(HubFile(entry["Path"], int(entry.get("Size") or 0), entry.get("Sha256") or None, ""))
    return files


def file_url(source: Source, path: str, environ: Mapping[str, str]) -> str:
    return f"{endpoint(environ)}/api/v1/models/{quote(source.location)}/repo?" + urlencode(
        {"Revision": source.revision, "FilePath": path})


def headers(environ: Mapping[str, str]) -> dict:
    """Request headers with the ModelScope token, when one is set."""
    return _headers(environ)


def download(source: Source, files: list[HubFile], downloader: Downloader, environ: Mapping[str, str],
             locked: dict[str, str] | None = None) -> list[PlacedFile]:
    headers = _headers(environ)

    def one(file: HubFile) -> PlacedFile:
        url = file_url(source, file.path, environ)
        expected = file.sha256 or (locked or {}).get(file.path)
        sha, size = downloader.fetch(RemoteFile(file.path, url, f"{source.display}/{file.path}", file.size, expected, headers=headers))
        return PlacedFile(file.path, size, sha)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, files))


__all__ = ["endpoint", "resolve", "download", "select", "file_url", "headers"]
