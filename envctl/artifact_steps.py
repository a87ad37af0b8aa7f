"""The artifact steps of `up`, on any host: each artifact's planned action, and nothing else.

- cached: nothing moves; it must still be complete in the host's cache, else `up` stops
  (WorldChanged): a plan that said "cached" is never quietly turned into a download.
- fetch: into this machine's cache, which is the host's own when the host is this machine; on
  an SSH host with `fetch: remote`, the host downloads it itself (envctl/remote/remote_fetch.py).
- push, fetch+push: fetched here when it is not yet, then sent to the host's cache, only what
  the host lacks (envctl/remote/place.py over the Host's put_blob).
- copy, fetch+copy: the writable copy in the workspace (`mode: rw`).

Writable copies follow one rule on every host: made again only when the artifact's files
changed, which a stamp beside the copy records (the same stamp observe_cache reads).
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Callable

from envctl.artifacts.cache import Cache
from envctl.artifacts.sources import artifact_key
from envctl.hosts.base import WritableHost
from envctl.errors import WorldChanged
from envctl.manifest.loader import Loaded
from envctl.paths import cache_dir
from envctl.plan import FetchArtifact, Plan

FETCHED_HERE = frozenset({"fetch", "fetch+copy", "copy", "push", "fetch+push"})


def local_cache(host: WritableHost) -> Cache:
    """The cache on this machine, where artifacts are fetched before they are pushed (the
    host's own cache when the host is this machine)."""
    return Cache(Path(host.cache_root) if host.fetch_mode is None else cache_dir())


def host_records(host: WritableHost, loaded: Loaded, fresh: bool = False,
                 seen: dict | None = None) -> Callable[[str], dict | None] | None:
    """`name → record` of an artifact complete in an SSH host's cache, for observe_cache.view;
    None for this machine (whose cache is read directly). `seen`: receives cache path → record
    for each one read."""
    if host.fetch_mode is None:
        return None

    def records(name: str) -> dict | None:
        path = _host_cache_path(host, loaded, name)
        record = host.artifact_record(path, fresh=fresh)
        if seen is not None:
            seen[path] = record
        return record

    return records


def _host_cache_path(host: WritableHost, loaded: Loaded, name: str) -> str:
    artifact, source = loaded.manifest.artifacts[name], loaded.sources[name]
    return posixpath.join(host.cache_root, "artifacts", artifact_key(source, artifact.subpath, artifact.include))


def open_sessions_ahead(host: WritableHost, loaded: Loaded) -> None:
    """Before `up` plans on an SSH host that is sent its artifacts from here: a session opened
    ahead (envctl/remote/standby.py) for each artifact whose entry the host's cache lacked when
    the host was opened (its probe round read the entries an earlier command asked for; an
    entry not read counts as lacking: a host seen for the first time), and one for the image
    tarball beside them, at most standby.MOST. A push the plan then decides starts its bytes at
    once; a session not taken ends unused. A guess only: the plan decides what is sent."""
    if getattr(host, "fetch_mode", None) != "push" or not loaded.manifest.artifacts:
        return
    lacking = sum(1 for name in loaded.manifest.artifacts
                  if not host.known_complete(_host_cache_path(host, loaded, name)))
    if lacking:
        from envctl.remote import standby

        tarball = loaded.manifest.image.tarball is not None
        standby.open(host.connection, lacking + tarball)


def host_copies(host: WritableHost, loaded: Loaded) -> Callable[[str, dict], bool] | None:
    """`(name, record) → bool`: whether an SSH host's writable copy of an artifact is current,
    for observe_cache.view; None for this machine (whose workspace is read directly)."""
    if host.fetch_mode is None:
        return None
    workspace = posixpath.join(host.workspace_root, loaded.manifest.container_name)

    def current(name: str, record: dict) -> bool:
        return copy_current(host, posixpath.join(workspace, "artifacts", name), record)

    return current


def in_host_cache(host: WritableHost, loaded: Loaded, plan: Plan, seen: dict | None = None,
                  fresh: bool = True) -> frozenset[str]:
    """The artifacts complete and verified in the host's cache now (checked as `plan` checks).
    `seen`: as for host_records. `fresh`: read on the host again (what the plan read may have
    left the cache since); False: as the plan read it, where nothing ran on the host since."""
    from envctl.observe_cache import view

    now = view(loaded, local_cache(host).root, Path(plan.workspace), host_records(host, loaded, fresh=fresh, seen=seen))
    return now.remote_cached if now.remote_cached is not None else now.cached


def check(host: WritableHost, loaded: Loaded, plan: Plan) -> dict:
    """What the artifact steps rest on, read again before any of them acts: raises WorldChanged
    when an artifact planned as cached (or copied from the cache) left the host's cache.
    Returns the records read (an SSH host's cache path → record or None), which the steps
    then go by: a command run on the host meanwhile by another step (the workspace's mkdir,
    the image tarball's push) changes nothing in the artifacts' cache entries."""
    seen: dict = {}
    # An artifact sharing its cache entry with one the plan fetches or sends arrives with it.
    arriving = {a.cache_path for a in plan.artifacts if a.action not in ("cached", "copy", "missing")}
    # Only an artifact the plan found in the cache (and that does not arrive with another) can
    # have left it. With none (a fresh host: each is sent), the plan's reading is what the steps
    # go by, not a round trip more before any of them starts (issue 14): an entry another `up`
    # completed meanwhile is sent again and put in place again, never taken half-made.
    rests_on_cache = any(a.action in ("cached", "copy") and a.cache_path not in arriving for a in plan.artifacts)
    now = in_host_cache(host, loaded, plan, seen, fresh=rests_on_cache)
    gone = [a.name for a in plan.artifacts
            if a.action in ("cached", "copy") and a.name not in now and a.cache_path not in arriving]
    if gone:
        raise WorldChanged(f"artifact(s) {', '.join(gone)} left the cache of {host.name} since the plan was made",
                           hint="run `envctl plan` again to see what up would do now")
    return seen


def pushes(host: WritableHost, plan: Plan) -> bool:
    """Whether the artifact steps send bytes to an SSH host from this machine."""
    return host.fetch_mode is not None and any(a.action in ("push", "fetch+push") for a in plan.artifacts)


def place(host: WritableHost, loaded: Loaded, plan: Plan, echo: Callable[[str], None], progress=None,
          offline: bool = False, checked: dict | None = None) -> list[tuple[str, str, str]]:
    """Execute the artifact steps; returns what was executed, ("artifact", name, action) in
    the plan's words. Raises WorldChanged when an artifact planned as cached left the host's
    cache (`check`, unless the caller ran it and gives what it returned: `checked`),
    FetchError when a fetch or transfer fails (what arrived is kept)."""
    if checked is None:
        checked = check(host, loaded, plan)
    local = local_cache(host)
    by_host = [a for a in plan.artifacts if a.action == "fetch" and host.fetch_mode == "remote"]
    downloaded = {}
    if by_host:
        from envctl.remote.remote_fetch import fetch_on_remote

        downloaded = fetch_on_remote(host, loaded, tuple(by_host), local, echo, progress, offline)
    # "missing" (no source yet) goes to fetch_all too, which refuses it naming how to obtain it.
    # On an SSH host, "copy" copies what its own cache holds: nothing is fetched here for it.
    here = FETCHED_HERE | {"missing"} if host.fetch_mode is None else FETCHED_HERE - {"copy"} | {"missing"}
    wanted = [a.name for a in plan.artifacts if a.action in here and a.name not in downloaded]
    fetched = {}
    if wanted:
        from envctl.artifacts.fetch import fetch_all  # the fetchers: only when something is to be fetched or copied

        fetched = {f.name: f for f in fetch_all(loaded, local, offline, progress, echo, names=wanted)}
    executed = []
    for artifact in plan.artifacts:
        if artifact.name in downloaded:
            record, done = downloaded[artifact.name]
        elif artifact.name in fetched:
            record, done = _placed(host, artifact, fetched[artifact.name], local, echo, progress, checked)
        else:
            record, done = _cached(host, artifact, local, echo)
        if artifact.mode == "rw" and artifact.host_path and writable_copy(host, artifact, record, echo):
            done = "copy" if done == "cached" else f"{done}+copy" if host.fetch_mode is None else done
        executed.append(("artifact", artifact.name, done))
    return executed


def _placed(host: WritableHost, artifact: FetchArtifact, item, local: Cache, echo, progress,
            checked: dict) -> tuple[dict | None, str]:
    """An artifact now in this machine's cache: sent to an SSH host's cache when it lacks it
    (`checked`: the records `check` read)."""
    key = str(Path(item.path).relative_to(local.root / "artifacts"))
    record = local.placed_record(key) or {}
    here = "fetch" if item.action == "fetched" else "cached"
    if host.fetch_mode is None:
        return record, here
    from envctl.remote.place import push_artifact

    sent = push_artifact(host, item, record, artifact.cache_path, progress, checked)
    echo(f"artifact   {artifact.name}: {sent} on {host.name}")
    if sent == "present":  # the host had it meanwhile: nothing was sent
        return record, here
    return record, "fetch+push" if here == "fetch" else "push"


def _cached(host: WritableHost, artifact: FetchArtifact, local: Cache, echo) -> tuple[dict | None, str]:
    if host.fetch_mode is None or artifact.cache_path is None:
        record = local.placed_record(str(Path(artifact.cache_path).relative_to(local.root / "artifacts"))) \
            if artifact.cache_path else None
        echo(f"artifact   {artifact.name}: cached")
        return record, "cached"
    echo(f"artifact   {artifact.name}: present on {host.name}")
    return host.artifact_record(artifact.cache_path), "cached"


def writable_copy(host: WritableHost, artifact: FetchArtifact, record: dict | None, echo: Callable[[str], None]) -> bool:
    """The `mode: rw` copy of a placed artifact in the workspace, for setup steps to modify;
    made again only when the artifact's files changed. Returns whether it was (re)made."""
    placed = artifact.cache_path + ("/" + artifact.subpath.strip("/") if artifact.subpath else "")
    if copy_current(host, artifact.host_path, record):
        return False
    host.copy_tree(placed, artifact.host_path)
    host.write_file(artifact.host_path + ".source.json", _stamp(record).encode())
    echo(f"artifact   {artifact.name}: writable copy at {artifact.host_path}")
    return True


def copy_current(host: WritableHost, destination: str, record: dict | None) -> bool:
    """Whether the writable copy at `destination` was made from the artifact `record`
    describes: its stamp beside it lists the same files (as artifacts.fetch.workspace_copy_current
    reads it on this machine)."""
    return host.exists(destination) and host.read_text(destination + ".source.json") == _stamp(record)


def _stamp(record: dict | None) -> str:
    return json.dumps(record.get("files") if record else None, sort_keys=True)
