"""`fetch: remote`: the remote host downloads artifacts from its own mirror — metadata here,
bytes there.

envctl resolves what to fetch on this machine (the Hub's or ModelScope's file listing and
digests, the lock's pins), with the host's own settings (its inventory `env`, e.g. HF_ENDPOINT,
and `mirrors`, over this machine's; envctl.mirror_routes), and the remote downloads each large
file with curl, resumable, verified by sha256 there. Small files (configs, tokenizers, code —
the Hub checks those by git blob id, not sha256) come through this machine, like sources only
it can reach (git, local files, FTP): pushed from the local cache.
"""

from __future__ import annotations

from typing import Callable

from envctl import mirror_routes
from envctl.artifacts import urls
from envctl.artifacts.cache import Cache, PlacedFile
from envctl.artifacts.download import Downloader
from envctl.artifacts.fetch import Fetched, check_drift, pinned_sha256, record_matches, with_credentials
from envctl.artifacts.sources import artifact_identity
from envctl.errors import FetchError
from envctl.manifest.loader import Loaded
from envctl.plan import FetchArtifact
from envctl.remote.place import LARGE, assemble

REMOTE_KINDS = frozenset({"http", "hf", "hf-dataset", "modelscope"})


def fetch_on_remote(host, loaded: Loaded, artifacts: tuple[FetchArtifact, ...], local: Cache,
                    echo: Callable[[str], None], progress=None, offline: bool = False) -> dict[str, tuple[dict, str]]:
    """Place every artifact the SSH host can download itself; returns name → (its record there,
    "cached" or "fetch") for those (the caller pushes the others)."""
    # The host's inventory env and mirrors, over the caller's environment and the config file
    # (envctl.mirror_routes): the host downloads from the mirrors it reaches.
    environ = mirror_routes.of_host(host).environ
    done = {}
    for artifact in artifacts:
        source = loaded.sources.get(artifact.name)
        if source is None or source.kind not in REMOTE_KINDS or artifact.cache_path is None:
            continue
        locked = loaded.locks.get(artifact.name)
        expected = pinned_sha256(loaded.manifest.artifacts[artifact.name], locked)
        identity = artifact_identity(source, artifact.subpath, artifact.include)
        record = host.artifact_record(artifact.cache_path)
        if record is not None and record_matches(record, expected, locked, identity):
            echo(f"artifact   {artifact.name}: present on {host.name}")
            done[artifact.name] = (record, "cached")
        elif offline:
            raise FetchError(f"{artifact.name}: not on {host.name} ({source.display}) and --offline was given")
        else:
            record = _fetch(host, artifact, source, expected, locked, local, environ, progress, identity)
            echo(f"artifact   {artifact.name}: downloaded by {host.name}")
            done[artifact.name] = (record, "fetch")
    return done


def _fetch(host, artifact: FetchArtifact, source, expected, locked, local: Cache, environ, progress,
           identity: str) -> dict:
    blobs = f"{host.cache_root}/blobs/sha256"
    connection = host.connection
    if source.kind == "http":
        url, auth = with_credentials(source)
        sha = host.download(url, source.display, expected, auth=auth)
        size = int(connection.check(["sh", "-c", 'wc -c < "$1"', "sh", f"{blobs}/{sha}"], "measuring").strip())
        name = urls.file_name(source.location, artifact.name)
        files = [PlacedFile("", size, sha)]
        record = {"source": source.display, "identity": identity, "revision": None, "files": [f.__dict__ for f in files]}
        _drift(artifact, record, locked)
        assemble(connection, artifact.name, artifact.cache_path, blobs, [(sha, name)], [], record, single=True)
        return record

    listing, revision, url_of, headers, fetch_small = _hub(source, environ)
    from envctl.artifacts import hf

    chosen = hf.select(listing, artifact.subpath, list(artifact.include))
    if not chosen:
        raise FetchError(f"{source.display}: no files match")
    pins = {f.path: f.sha256 for f in locked.files} if locked else None
    remote_files = [f for f in chosen if f.sha256 and f.size >= LARGE]
    local_files = [f for f in chosen if f not in remote_files]
    placed_here = fetch_small(local_files, local, pins) if local_files else []
    files, links = [], []
    for file in remote_files:
        if pins and pins.get(file.path) not in (None, file.sha256):
            raise FetchError(f"{artifact.name}: differs from manifest.lock: changed {file.path}",
                             hint="if the change is wanted, run `envctl lock` again and commit the lock file")
        sha = host.download(url_of(file.path), f"{source.display}/{file.path}", file.sha256, headers=headers)
        files.append(PlacedFile(file.path, file.size, sha))
        links.append((sha, file.path))
    files += placed_here
    order = {f.path: i for i, f in enumerate(chosen)}
    files.sort(key=lambda f: order[f.path])
    record = {"source": source.display, "identity": identity, "revision": revision, "files": [f.__dict__ for f in files]}
    _drift(artifact, record, locked)
    small = [(local.blob(f.sha256), f.path) for f in placed_here]
    assemble(connection, artifact.name, artifact.cache_path, blobs, links, small, record, single=False)
    return record


def _hub(source, environ):
    """The listing, revision, URL builder, auth headers and small-file fetcher of a hub source."""
    from envctl.artifacts import hf, modelscope

    if source.kind in ("hf", "hf-dataset"):
        commit, listing = hf.resolve(source, environ)

        def small(files, cache, pins):
            return hf.download(source, commit, files, cache, Downloader(cache), environ, pins)

        return listing, commit, lambda path: hf.file_url(source, commit, path, environ), hf.headers(environ), small
    listing = modelscope.resolve(source, environ)

    def small(files, cache, pins):
        return modelscope.download(source, files, Downloader(cache), environ, pins)

    return listing, source.revision, lambda path: modelscope.file_url(source, path, environ), \
        modelscope.headers(environ), small


def _drift(artifact: FetchArtifact, record: dict, locked) -> None:
    if locked is None:
        return
    files = tuple(PlacedFile(**f) for f in record["files"])
    try:
        check_drift(Fetched(artifact.name, None, record.get("revision"), files, "fetched"), locked)
    except FetchError as exc:
        raise FetchError(f"{artifact.name}: {exc.message}", hint=exc.hint) from None
