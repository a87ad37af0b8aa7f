"""ModelScope sources (`modelscope://org/repo@revision`, datasets `modelscope://datasets/org/name@revision`):
the mirror most Chinese labs reach.

ModelScope accepts a branch or tag as revision (not a commit), so reproducibility comes from
the sha256 of every file, which its file listing publishes and `envctl lock` records. Models:
listing `GET <endpoint>/api/v1/models/<repo>/repo/files?Revision=<rev>&Recursive=true`; each file
`GET <endpoint>/api/v1/models/<repo>/repo?Revision=<rev>&FilePath=<path>`. Datasets, as the
modelscope SDK's HubApi asks for them (get_dataset_id_and_type, list_repo_tree,
get_dataset_file_url): `GET <endpoint>/api/v1/datasets/<org>/<name>` gives the dataset's numeric
`Data.Id`; the listing is `GET <endpoint>/api/v1/datasets/<Id>/repo/tree?Revision=<rev>&Root=
&Recursive=True&PageNumber=<n>&PageSize=<m>`, in pages (the same `Data.Files` entries); each
file `GET <endpoint>/api/v1/datasets/<org>/<name>/repo?Source=SDK&Revision=<rev>&FilePath=<path>`.
Files come through envctl's own resumable, verified downloader. MODELSCOPE_ENDPOINT (or
MODELSCOPE_DOMAIN) selects a mirror; MODELSCOPE_API_TOKEN is sent as a bearer token and never printed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Mapping
from urllib.parse import quote, urlencode

import requests

from envctl.artifacts import urls
from envctl.artifacts.cache import PlacedFile
from envctl.artifacts.download import TIMEOUT, Downloader, FetchError, RemoteFile
from envctl.artifacts.hub_network import NETWORK_HINT, network_failure
from envctl.artifacts.hf import HubFile, select
from envctl.artifacts.sources import MODELSCOPE_DATASET, Source

DEFAULT_ENDPOINT = "https://www.modelscope.cn"
PAGE_SIZE = 500  # dataset listing entries asked per page
MAX_PAGES = 10_000


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


def _dataset(source: Source) -> str | None:
    """`org/name` of a dataset source, None for a model."""
    return source.location[len(MODELSCOPE_DATASET):] if source.location.startswith(MODELSCOPE_DATASET) else None


def _get(url: str, where: str, environ: Mapping[str, str], hint: str) -> dict:
    """The `Data` of a hub answer; FetchError naming `where` for a refusal or an error answer."""
    try:
        response = requests.get(url, headers=_headers(environ), timeout=TIMEOUT)
    except requests.RequestException as exc:
        failed = network_failure(exc, url)
        if failed:
            raise FetchError(f"{where}: {failed}", hint=NETWORK_HINT) from None
        raise FetchError(f"{where}: {type(exc).__name__}: {urls.redact_text(str(exc))[:200]}",
                         hint="check MODELSCOPE_ENDPOINT and the network") from None
    if response.status_code in (401, 403):
        raise FetchError(f"{where}: access refused ({response.status_code})", hint="set MODELSCOPE_API_TOKEN")
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict) or response.status_code != 200 or body.get("Code") not in (200, None) \
            or not isinstance(body.get("Data"), dict):
        message = (body.get("Message") if isinstance(body, dict) else None) or f"HTTP {response.status_code}"
        raise FetchError(f"{where}: {message}", hint=hint)
    return body["Data"]


def _files(entries) -> list[HubFile]:
    return [HubFile(e["Path"], int(e.get("Size") or 0), e.get("Sha256") or None, "")
            for e in entries or [] if isinstance(e, dict) and e.get("Path") and e.get("Type") != "tree"]


def resolve(source: Source, environ: Mapping[str, str]) -> list[HubFile]:
    base = endpoint(environ)
    where = f"{source.display} (endpoint {urls.redact_text(base)})"  # a mirror's password never shown
    dataset = _dataset(source)
    if dataset is not None:
        return _resolve_dataset(source, dataset, base, where, environ)
    url = f"{base}/api/v1/models/{quote(source.location)}/repo/files?" + urlencode(
        {"Revision": source.revision, "Recursive": "true"})
    data = _get(url, where, environ, "check the repository and the revision (a branch or tag); a dataset is "
                                     f"modelscope://datasets/{source.location}@{source.revision}")
    return _files(data.get("Files"))


def _resolve_dataset(source: Source, dataset: str, base: str, where: str, environ: Mapping[str, str]) -> list[HubFile]:
    hint = "check the dataset and the revision (a branch or tag); a model is " \
           f"modelscope://{dataset}@{source.revision}"
    found = _get(f"{base}/api/v1/datasets/{quote(dataset)}", where, environ, hint)
    if found.get("Id") in (None, ""):
        raise FetchError(f"{where}: the hub named no dataset ID", hint=hint)
    seen: set[str] = set()
    files: list[HubFile] = []
    for number in range(1, MAX_PAGES + 1):
        url = f"{base}/api/v1/datasets/{quote(str(found['Id']))}/repo/tree?" + urlencode(
            {"Revision": source.revision, "Root": "", "Recursive": "True", "PageNumber": number, "PageSize": PAGE_SIZE})
        entries = _get(url, where, environ, hint).get("Files") or []
        # The listing ends at a page with nothing new: an empty one, or page 1 again from a server
        # that ignores PageNumber. (A short page is no end: a server may cap PageSize lower.)
        fresh = [e for e in entries if isinstance(e, dict) and e.get("Path") not in seen]
        seen.update(e.get("Path") for e in fresh)
        files += _files(fresh)
        if not fresh:
            break
    return files


def file_url(source: Source, path: str, environ: Mapping[str, str]) -> str:
    dataset = _dataset(source)
    if dataset is not None:
        return f"{endpoint(environ)}/api/v1/datasets/{quote(dataset)}/repo?" + urlencode(
            {"Source": "SDK", "Revision": source.revision, "FilePath": path})
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
