"""Fetching a manifest's artifacts into the cache and placing them for the container.

Each artifact is fetched under a lock of its own (two `fetch`es or `up`s of the same artifact
download it once), and appears in the cache only when complete and verified. `offline` uses the
cache alone and says what is missing.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable
from urllib.parse import unquote, urlsplit, urlunsplit

from envctl import mirror_routes
from envctl.artifacts import urls
from envctl.artifacts.cache import Cache, PlacedFile, check_free_space, sha256_of, tree_of
from envctl.artifacts.lockfile import Locked
from envctl.artifacts.sources import Source, artifact_identity, artifact_key
from envctl.errors import EnvctlError, FetchError
from envctl.fs_errors import explain_os_error, is_path_error
from envctl.manifest.loader import Loaded
from envctl.manifest.model import Artifact
from envctl.mirror_routes import Routes
from envctl.user_config import shown_url

if TYPE_CHECKING:  # the downloader imports requests: a plan or an `up` that fetches nothing never needs it (issue 14)
    from envctl.artifacts.download import Downloader


@dataclass(frozen=True)
class Fetched:
    name: str
    path: Path  # the placed file or tree in the cache
    revision: str | None  # the commit a ref resolved to, for git and hub sources
    files: tuple[PlacedFile, ...]
    action: str  # cached | fetched


def fetch_all(loaded: Loaded, cache: Cache, offline: bool = False, progress=None, echo: Callable[[str], None] = lambda _: None,
              names: list[str] | None = None, routes: Routes | None = None) -> list[Fetched]:
    """Fetch the artifacts (`names`, default all) into `cache`. `routes`: the mirrors this
    machine downloads through (default: the caller's environment over the user config file,
    read once here for every artifact; envctl.mirror_routes). Raises FetchError naming every
    artifact that failed (what arrived is kept), ManifestError for a bad config file."""
    manifest = loaded.manifest
    wanted = [n for n in manifest.artifacts if names is None or n in names]
    missing = [n for n in wanted if loaded.sources.get(n) is None]
    if missing:
        notes = "\n".join(f"- {n}: {manifest.artifacts[n].obtain}" for n in missing)
        raise FetchError(f"{len(missing)} artifact(s) have no source yet:\n{notes}")
    from envctl.artifacts.download import Downloader  # requests: imported once something is to be fetched

    routes = mirror_routes.here() if routes is None else routes
    downloader = Downloader(cache, progress=progress)
    # A few artifacts at once: small files are latency-bound, large ones use several
    # connections each inside the downloader.
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {n: pool.submit(fetch_one, n, loaded.sources[n], manifest.artifacts[n], cache, downloader, offline,
                                  loaded.locks.get(n), routes)
                   for n in wanted}
        results, errors, hints = [], [], []
        for name, future in futures.items():
            try:
                fetched = future.result()
                results.append(fetched)
                echo(f"artifact   {name}: {fetched.action}" + (f" ({fetched.revision})" if fetched.revision else ""))
            except (EnvctlError, OSError) as exc:  # fetch, archive and source errors alike: report them all
                if not isinstance(exc, EnvctlError):
                    if not is_path_error(exc):
                        raise
                    # the cache's disk is full, read-only or not ours: name the path (a write to a
                    # full disk names none: the cache then); the partial download stays to resume
                    exc = explain_os_error(exc, exc.filename or cache.root, doing=f"fetching {name}")
                errors.append(f"{name}: {exc.message}")
                if exc.hint and exc.hint not in hints:
                    hints.append(exc.hint)
    if errors:
        # Each failure's own advice (an expired signed link, a mirror that redirects away) first.
        raise FetchError("\n".join(errors), hint="; ".join(hints + ["fix what is named and run again: what was fetched is kept"]))
    return results


def fetch_one(name: str, source: Source, artifact: Artifact, cache: Cache, downloader: Downloader, offline: bool,
              locked: Locked | None = None, routes: Routes | None = None) -> Fetched:
    key = artifact_key(source, artifact.subpath, artifact.include)
    identity = artifact_identity(source, artifact.subpath, artifact.include)
    expected = pinned_sha256(artifact, locked)
    with cache.locked(key):
        record = cache.placed_record(key)
        placed = cache.placed(key)
        if record is not None and placed.exists() and record_matches(record, expected, locked, identity) \
                and cache.intact_at(key, record) and source_unchanged(source, record):
            files = tuple(PlacedFile(**f) for f in record["files"])
            return Fetched(name, placed, record.get("revision"), files, "cached")
        if offline:
            raise FetchError(f"not in the cache ({source.display}) and --offline was given")
        if source.kind in ("http", "ftp"):
            fetched = _fetch_single(name, source, artifact, expected, key, cache, downloader, identity)
        elif source.kind == "file":
            fetched = _fetch_file(name, source, artifact, expected, key, cache, identity)
        elif source.kind == "git":
            fetched = _fetch_git(name, source, artifact, key, cache, identity, routes)
        elif source.kind in ("hf", "hf-dataset"):
            fetched = _fetch_hub(name, source, artifact, key, cache, downloader, locked, identity, _environ(routes))
        elif source.kind == "modelscope":
            fetched = _fetch_modelscope(name, source, artifact, key, cache, downloader, locked, identity, _environ(routes))
        else:
            raise FetchError(f"{source.display}: fetching {source.kind} sources is not supported yet")
        if locked is not None:
            check_drift(fetched, locked)
        return fetched


def _environ(routes: Routes | None) -> dict[str, str]:
    """What hub code reads (HF_ENDPOINT, MODELSCOPE_ENDPOINT, tokens): the caller's environment
    with the mirrors in effect laid under it."""
    return dict(routes.environ) if routes is not None else dict(os.environ)


def pinned_sha256(artifact: Artifact, locked: Locked | None) -> str | None:
    """The digest a single-file artifact must have: the manifest's, else the lock's."""
    if artifact.sha256 is None and locked is not None and len(locked.files) == 1 and locked.files[0].path == "":
        return locked.files[0].sha256
    return artifact.sha256


def record_matches(record: dict, expected: str | None, locked: Locked | None, identity: str) -> bool:
    """A cached artifact is used only when its record states the very source it stands for
    (`identity`, from sources.artifact_identity) and it still has the digests the manifest and
    lock pin. A record without an identity (an older envctl's) is not trusted either."""
    if record.get("identity") != identity:
        return False
    try:
        files = [PlacedFile(**f) for f in record.get("files", [])]
    except TypeError:
        return False
    if locked is not None and sorted(files, key=lambda f: f.path) != sorted(locked.files, key=lambda f: f.path):
        return False
    return expected is None or [f.sha256 for f in files] == [expected]


def check_drift(fetched: Fetched, locked: Locked) -> None:
    now = {f.path: f for f in fetched.files}
    then = {f.path: f for f in locked.files}
    changes = [f"added {p or 'the file'}" for p in sorted(set(now) - set(then))]
    changes += [f"removed {p or 'the file'}" for p in sorted(set(then) - set(now))]
    changes += [f"changed {p or 'the file'} (sha256 {then[p].sha256[:12]} → {now[p].sha256[:12]})"
                for p in sorted(set(now) & set(then)) if now[p].sha256 != then[p].sha256]
    if changes:
        shown = "; ".join(changes[:5]) + (f"; and {len(changes) - 5} more" if len(changes) > 5 else "")
        raise FetchError(f"differs from manifest.lock: {shown}",
                         hint="if the change is wanted, run `envctl lock` again and commit the lock file")


def with_credentials(source: Source) -> tuple[str, tuple | None]:
    """The URL to request (as written: signed query values included, no fragment, which is
    never sent) without its userinfo, and (user, password) for HTTP auth, when it had a password
    or a token as its user name (urls.credential_user: the password then empty); a login name
    alone stays in the URL, for ~/.netrc. Neither may reach a message: show `source.display`."""
    full = source.request_url or source.location
    parts = urlsplit(full)._replace(fragment="")
    if parts.password is None and not urls.credential_user(full):
        # A login name alone stays in the URL: requests then takes ~/.netrc's entry for the host
        # (explicit auth here would pass over it).
        return urlunsplit(parts), None
    # A password, or a token written as the user name: sent as that user with an empty password.
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=netloc)), (unquote(parts.username or ""), unquote(parts.password or ""))


def _fetch_single(name: str, source: Source, artifact: Artifact, expected: str | None, key: str, cache: Cache,
                  downloader: Downloader, identity: str) -> Fetched:
    if source.kind == "ftp":
        from envctl.artifacts.ftp import fetch_ftp

        sha, size = fetch_ftp(source, expected, cache)
    else:
        from envctl.artifacts.download import RemoteFile  # with the downloader: requests, only to fetch

        url, auth = with_credentials(source)
        sha, size = downloader.fetch(RemoteFile("", url, source.display, None, expected, auth=auth,
                                                identity=source.identity()))
    files = [PlacedFile("", size, sha)]
    record = {"source": source.display, "identity": identity, "revision": None}
    if artifact.extract:
        staging = cache.placed(key).parent / f".{Path(key).name}.{os.getpid()}.extract"
        shutil.rmtree(staging, ignore_errors=True)
        from envctl.artifacts.archive import extract  # unpacking is needed only once an archive arrived

        extract(cache.blob(sha), staging, source.display)
        record = {**record, "extracted": True, "tree": tree_of(staging)}
        return Fetched(name, cache.publish(key, staging, files, record), None, tuple(files), "fetched")
    return Fetched(name, cache.place(key, files, single_file=True, record=record), None, tuple(files), "fetched")


def _source_stats(origin: Path) -> dict[str, list[int]] | None:
    """{relative path ("" for a single file): [size, mtime_ns, inode]} of a local source's files
    as they are now (symlinks followed, as the copy follows them); None when it is gone."""
    try:
        if origin.is_file():
            found = origin.stat()
            return {"": [found.st_size, found.st_mtime_ns, found.st_ino]}
        stats = {}
        for path in sorted(origin.rglob("*")):
            if path.is_file():
                found = path.stat()
                stats[str(path.relative_to(origin))] = [found.st_size, found.st_mtime_ns, found.st_ino]
        return stats if origin.is_dir() else None
    except OSError:
        return None


def source_unchanged(source: Source, record: dict) -> bool:
    """True for every source but a local path (its URL, revision or digests say what it holds:
    record_matches). Whether a local source (a file or a directory the user may edit: code, a NAS copy of
    weights) still has the files it had when it was copied, by their size, mtime and inode. A
    change, an added or removed file, or a record without them (an older envctl's) copies it
    again: the cached copy is never taken for what the path holds now. A change that keeps all
    three (an edit in place within the same nanosecond, or mtime set back by hand) is not seen;
    a pinned sha256 (the manifest's or manifest.lock's) is checked on every copy."""
    if source.kind != "file":
        return True
    recorded = record.get("source_stats")
    return isinstance(recorded, dict) and _source_stats(Path(source.location)) == recorded


def _fetch_file(name: str, source: Source, artifact: Artifact, expected: str | None, key: str, cache: Cache,
                identity: str) -> Fetched:
    origin = Path(source.location)
    if not origin.exists():
        raise FetchError(f"{origin} does not exist")
    stats = _source_stats(origin)  # before reading: an edit during the copy is seen by the next run
    paths = [origin] if origin.is_file() else sorted(p for p in origin.rglob("*") if p.is_file())
    files = []
    for path in paths:
        relative = "" if origin.is_file() else str(path.relative_to(origin))
        digest = sha256_of(path)
        if origin.is_file() and expected and digest != expected:
            raise FetchError(f"{path}: sha256 {digest} does not match the expected {expected}")
        if not cache.has_blob(digest, path.stat().st_size):
            # Copied, not hard-linked: a link would share the user's later edits (and the
            # blob store's read-only mode) with the original. copyfile uses copy_file_range,
            # which shares blocks on filesystems that can.
            staging = cache.partial(f"file:{path}")
            shutil.copyfile(path, staging)
            if sha256_of(staging) != digest:
                staging.unlink(missing_ok=True)
                raise FetchError(f"{path} changed while it was being copied; run again")
            cache.adopt(staging, digest)
        files.append(PlacedFile(relative, path.stat().st_size, digest))
    record = {"source": source.display, "identity": identity, "revision": None, "source_stats": stats}
    if artifact.extract and origin.is_file():
        staging = cache.placed(key).parent / f".{Path(key).name}.{os.getpid()}.extract"
        shutil.rmtree(staging, ignore_errors=True)
        from envctl.artifacts.archive import extract  # unpacking is needed only once an archive arrived

        extract(cache.blob(files[0].sha256), staging, source.display)
        record = {**record, "extracted": True, "tree": tree_of(staging)}
        return Fetched(name, cache.publish(key, staging, files, record), None, tuple(files), "fetched")
    placed = cache.place(key, files, single_file=origin.is_file(), record=record)
    return Fetched(name, placed, None, tuple(files), "fetched")


def _fetch_git(name: str, source: Source, artifact: Artifact, key: str, cache: Cache, identity: str,
               routes: Routes | None = None) -> Fetched:
    from envctl.artifacts import gitsrc  # git sources only: a plan or an `up` of other sources never imports it

    mirror = gitsrc.mirror_path(cache.root, source)
    staging = cache.placed(key).parent / f".{Path(key).name}.{os.getpid()}.git"
    shutil.rmtree(staging, ignore_errors=True)
    # Artifacts from one repository share its bare mirror, which git does not let two fetches
    # write at once.
    with cache.locked(f"git-mirror:{mirror}"):
        through = routes.git_url(source.location) if routes is not None else None
        try:
            commit = gitsrc.resolve(source, mirror, {p: r.url for p, r in routes.git.items()} if routes else None)
        except FetchError as exc:
            if through is None:
                raise
            # The canonical URL is in the message; say which mirror was asked, and why.
            raise FetchError(f"{exc.message} (through the git mirror {shown_url(through[0])}: mirrors.git "
                             f"'{through[1]}' from {through[2].origin})", hint=exc.hint) from None
        gitsrc.export(mirror, commit, staging, artifact.subpath)
    files = [PlacedFile(str(p.relative_to(staging)), p.stat().st_size, sha256_of(p))
             for p in sorted(staging.rglob("*")) if p.is_file()]
    placed = cache.publish(key, staging, files, {"source": source.display, "identity": identity, "revision": commit})
    return Fetched(name, placed, commit, tuple(files), "fetched")


def _stamp(record: dict | None, destination: Path) -> tuple[Path, str]:
    """The stamp file beside a writable copy, and what it holds for the artifact `record` describes."""
    return (destination.parent / f"{destination.name}.source.json",
            json.dumps(record.get("files") if record else None, sort_keys=True))


def workspace_copy_current(record: dict | None, destination: Path) -> bool:
    """Whether the writable copy at `destination` was made from the cached artifact `record`
    describes (its stamp, written beside it, lists the same files)."""
    stamp, wanted = _stamp(record, destination)
    try:
        return destination.exists() and stamp.read_text() == wanted
    except OSError:
        return False


def workspace_copy(placed: Path, record: dict | None, destination: Path) -> str:
    """A writable copy of a placed artifact for setup steps to modify (`mode: rw`). It is made
    again only when the cached artifact changed. Returns "copied" or "kept"."""
    if workspace_copy_current(record, destination):
        return "kept"
    if destination.is_dir():
        shutil.rmtree(destination)
    elif destination.exists():
        destination.unlink()
    destination.parent.mkdir(parents=True, exist_ok=True)
    if placed.is_dir():
        shutil.copytree(placed, destination, symlinks=True, copy_function=_copy_writable)
    else:
        _copy_writable(placed, destination)
    stamp, wanted = _stamp(record, destination)
    stamp.write_text(wanted)
    return "copied"


def _copy_writable(source, destination) -> None:
    shutil.copyfile(source, destination)
    os.chmod(destination, 0o644 | (os.stat(source).st_mode & 0o111))


def _fetch_hub(name: str, source: Source, artifact: Artifact, key: str, cache: Cache, downloader: Downloader,
               locked: Locked | None, identity: str, environ: dict[str, str]) -> Fetched:
    from envctl.artifacts import hf

    commit, listing = hf.resolve(source, environ)
    chosen = hf.select(listing, artifact.subpath, list(artifact.include))
    if not chosen:
        raise FetchError(f"{source.display}: no files match" + (f" subpath '{artifact.subpath}'" if artifact.subpath else "")
                         + (f" include {artifact.include}" if artifact.include else ""))
    needed = sum(f.size for f in chosen if not (f.sha256 and cache.has_blob(f.sha256)))
    check_free_space(cache.root, needed, source.display)
    files = hf.download(source, commit, chosen, cache, downloader, environ,
                        {f.path: f.sha256 for f in locked.files} if locked else None)
    placed = cache.place(key, files, single_file=False,
                         record={"source": source.display, "identity": identity, "revision": commit})
    return Fetched(name, placed, commit, tuple(files), "fetched")


def _fetch_modelscope(name: str, source: Source, artifact: Artifact, key: str, cache: Cache, downloader: Downloader,
                      locked: Locked | None, identity: str, environ: dict[str, str]) -> Fetched:
    from envctl.artifacts import hf, modelscope

    chosen = hf.select(modelscope.resolve(source, environ), artifact.subpath, list(artifact.include))
    if not chosen:
        raise FetchError(f"{source.display}: no files match")
    check_free_space(cache.root, sum(f.size for f in chosen if not (f.sha256 and cache.has_blob(f.sha256))), source.display)
    files = modelscope.download(source, chosen, downloader, environ, {f.path: f.sha256 for f in locked.files} if locked else None)
    placed = cache.place(key, files, single_file=False,
                         record={"source": source.display, "identity": identity, "revision": source.revision})
    return Fetched(name, placed, None, tuple(files), "fetched")
