"""What a host looks like, as far as a plan needs to know: cards, driver, paths, and — with an
engine — the image, the environment's container and its setup markers; the caches.

Observing only reads (files below the host root, vendor tools' output, the engine's inspect
and archive endpoints, cache records); it changes nothing. `plan`, `up --dry-run` and `up` all
observe through `observe`, so they decide from the same facts.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping

from envctl.containers import LABEL_WORKSPACE_MARK
from envctl.devices import family
from envctl.devices.base import DriverInfo, Snapshot, snapshot
from envctl.hosts.base import Host
from envctl.manifest.loader import Loaded
from envctl.observe_cache import CacheView
from envctl.observe_engine import ContainerState, EngineView
from envctl.paths import WORKSPACE_MARK


@dataclass(frozen=True)
class Observed:
    host: str
    root: str
    cards: tuple[int, ...]  # host indices of the manifest's device family present
    driver: DriverInfo
    devices: Snapshot
    missing_mount_sources: frozenset[str] = field(default_factory=frozenset)
    image_present: bool | None = None  # None: the Docker engine was not asked
    image_id: str | None = None  # what the manifest's image ref names on the engine (the engine's .Id)
    image_config: str | None = None  # that image's config digest, the same on both image stores (bake keys use it)
    baked: dict = field(default_factory=dict)  # bake key → ref of images `envctl build` made for this manifest
    engine: EngineView | None = None  # None: the engine was not asked (no decisions about it)
    caches: CacheView = field(default_factory=CacheView)
    fetch_mode: str | None = None  # on a remote host: "push" (bytes go from here) or "remote" (it downloads)
    engine_problem: str | None = None  # why the engine could not be asked, when it could not
    holders: tuple | None = None  # envctl/card_holders.Holder of every container reaching a card; None: not asked
    reading: object | None = None  # the vendor tool's reading (envctl/devices/usage.py) where topology needs it
    registry: object | None = None  # a pulled image: envctl/registry_plan.RegistryView (None: not pulled)
    workspace_gone: str | None = None  # the workspace's path, when the container runs and it is not there
    workspace_replaced: str | None = None  # ... when it is there without the running container's mark
    workspace_in_the_way: str | None = None  # the workspace's path, when a container is and it is not a directory

    @property
    def container(self) -> ContainerState | None:
        return self.engine.container if self.engine else None


def observe(host: Host, loaded: Loaded, engine=None, environ: Mapping[str, str] | None = None,
            remote_records: Callable[[str], dict | None] | None = None, fetch_mode: str | None = None,
            engine_problem: str | None = None, remote_copies: Callable[[str, dict], bool] | None = None,
            holders: bool = True) -> Observed:
    """Read the host. With an engine client, also the image, the container and its markers.
    `environ` gives the cache and workspace roots as seen where the artifacts live (this
    machine); `remote_records(name)` reads an artifact's record in a remote host's cache and
    `remote_copies(name, record)` says whether its writable copy there is current. `holders`:
    also read who holds the cards (every container inspected, the vendor tool run); commands
    that only need an environment's own plan (exec, shell) leave it out."""
    from envctl.observe_cache import view as cache_view
    from envctl.paths import cache_dir, workspace_dir

    manifest = loaded.manifest
    fam = family(manifest.device.kind)
    driver = fam.probe_driver(host) if manifest.device.kind != "cpu" else DriverInfo(None, "")
    missing = set()
    for mount in manifest.container.mounts:
        source = mount.split(":")[0]
        real = source if source.startswith("/") else str(loaded.directory / source)
        if not host.exists(real):
            missing.add(real)
    devices = snapshot(host, fam)
    caches = cache_view(loaded, cache_dir(environ), workspace_dir(manifest.container_name, environ), remote_records,
                        remote_copies)
    seen = None
    present = tuple(fam.discover(devices))
    reading = None
    if holders and manifest.device.kind in ("mlu", "npu") and present:
        from envctl.devices.usage import read

        # cnmon / npu-smi: the processes on each card, and (npu-smi) which chips go together
        reading = read(manifest.device.kind, host)
    held = None
    registry = None
    if manifest.image.pull:
        from envctl.registry_plan import observe_pull

        registry = observe_pull(host, loaded, engine, environ)
    if engine is not None:
        # An engine reached through an SSH forward (SSHHost.forwarded_socket) pays a round trip
        # per request: its plan's requests go out together (observe_engine.view `together`).
        together = getattr(host, "forwarded_socket", None) is not None
        # The container's ID an earlier command on that host saw: its reads go in the first round.
        known_id = host.container_hint(manifest.container_name) if together else None
        seen = _engine_view(engine, loaded, environ, caches.tarball_path, registry, together, known_id)
        seen_id = seen.container.id if seen.container else None
        if together and seen_id != known_id:  # the file is read once per plan: written only when it changes
            host.note_container(manifest.container_name, seen_id)
    gone = replaced = in_the_way = None
    if seen is not None and seen.container is not None:
        # Deleted on the host (by hand, a cleanup script): up makes it again, but the running
        # container's bind mount still holds the deleted directory. Deleted and made again (by
        # hand, or by a command writing a log there), or a symlink to another directory put in
        # its place: it lacks the mark of the container that mounted it. On an SSH host the
        # probe round said both already (the workspace is among the directories noted, its mark
        # among the texts read: SSHHost.make_workspace, probe_arguments).
        workspace = str(workspace_dir(manifest.container_name, host.environ() if environ is None else environ))
        running = seen.container.status == "running"
        state = workspace_state(host, workspace, seen.container.labels.get(LABEL_WORKSPACE_MARK) if running else None)
        in_the_way = workspace if state == "not a directory" else None  # a file put there: up cannot make it
        if running:
            gone = workspace if state == "gone" else None
            replaced = workspace if state == "replaced" else None
    if engine is not None and holders:
        from envctl.card_holders import node_path_for, read_holders, with_processes

        held = with_processes(read_holders(engine, manifest.device.kind, node_path_for(manifest.device.kind, host.under_root),
                                              present, host), reading)
    return Observed(host.name, host.root, present, driver, devices, frozenset(missing),
                    seen.image_present if seen else None, seen.image_id if seen else None,
                    seen.image_config if seen else None, dict(seen.baked) if seen else {}, seen, caches, fetch_mode,
                    engine_problem, held, reading, registry, gone, replaced, in_the_way)


def workspace_state(host: Host, workspace: str, label: str | None) -> str | None:
    """What is wrong with a container's workspace on `host`: "not a directory" (something else
    stands at its path), "gone", "replaced" (a directory without the container's mark `label`:
    deleted and made again, or another one; None, as for a container made before marks: not
    compared), else None."""
    if host.is_dir(workspace):
        return "replaced" if label and read_mark(host, workspace) != label else None
    return "not a directory" if host.exists(workspace) else "gone"


def read_mark(host: Host, workspace: str) -> str | None:
    """The mark in `workspace` (paths.WORKSPACE_MARK: 32 hex digits), None when it has none
    (absent, unreadable, or not a mark envctl wrote)."""
    text = host.read_text(posixpath.join(workspace, WORKSPACE_MARK))
    mark = text.strip() if text else ""
    return mark if is_mark(mark) else None


def is_mark(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def _engine_view(engine, loaded: Loaded, environ, tarball: Path | None, registry=None, together: bool = False,
                 known_id: str | None = None) -> EngineView:
    """`tarball`: the image tarball when it is on this machine (a file source, a cached blob).
    `together`, `known_id`: as for observe_engine.view."""
    from envctl.image_identity import RECORDS
    from envctl.observe_engine import view
    from envctl.paths import cache_dir

    manifest = loaded.manifest
    digest = None
    if manifest.image.build is not None:
        from envctl.images import context_digest
        from envctl.manifest.loader import build_context

        state = cache_dir(environ) / "state"
        digest = context_digest(Path(build_context(manifest.image.build, loaded.directory)), state / "contexts.json")
    wanted = (manifest.image.id,) if manifest.image.id else ()
    if tarball is not None:
        from envctl.image_step import read_while_loading
        from envctl.images import IdentityCache

        identities = IdentityCache(cache_dir(environ) / "state" / "tarballs.json")
        if registry is None and not together and read_while_loading(tarball, identities):
            # A compressed tarball not read before: the engine is asked first. Without the ref's
            # image and the pinned one it loads the tarball whatever it holds, and the image step
            # reads what it holds in the same read as the load (image_step.read_while_loading).
            seen = view(engine, manifest.image.ref, wanted, digest, manifest.name, manifest.container_name,
                        cache_dir(environ) / "state" / RECORDS, together, known_id)
            if seen.image_id is None and seen.pinned_id is None:
                return replace(seen, tarball_unread=True)
        wanted = _with_tarball_ids(wanted, loaded, tarball, identities)
    if registry is not None:  # pulled: held when its manifest digest is the pinned one (envctl/registry_plan.py)
        seen = view(engine, registry.image.tagged, (), None, manifest.name, manifest.container_name,
                    cache_dir(environ) / "state" / RECORDS, together, known_id)
        return replace(seen, image_present=registry.present_id is not None, pinned_id=registry.found_id)
    return view(engine, manifest.image.ref, wanted, digest, manifest.name, manifest.container_name,
                cache_dir(environ) / "state" / RECORDS, together, known_id)


def _with_tarball_ids(wanted: tuple[str, ...], loaded: Loaded, tarball: Path, identities) -> tuple[str, ...]:
    """`wanted` and the IDs of the image the tarball holds: its own manifest.json says which
    (cached by size and mtime); of several (`docker save a b`), the one tagged image.ref, as
    the image step takes it."""
    from envctl.images import identify

    image = loaded.manifest.image
    identity = identify(tarball, identities, need_sha256=False).image_for(image.ref, image.id)
    return tuple(dict.fromkeys([*wanted, *identity.ids]))


def engine_round_ahead(host, loaded: Loaded, environ: Mapping[str, str] | None = None) -> None:
    """On an SSH host: send the plan's first engine round now, behind the engine's API version
    (SSHHost.ask_ahead), with what `observe` will ask in it (observe_engine.first_round of the
    same image ref, wanted IDs, names and the container's noted ID), so that the plan finds
    it answered. Nothing for this machine, or for a pulled image (its ref is the registry's
    answer). A guess: a plan that asks anything else asks it itself."""
    ask_ahead = getattr(host, "ask_ahead", None)
    manifest = loaded.manifest
    if ask_ahead is None or manifest.image.pull:
        return
    from envctl.artifacts.cache import Cache
    from envctl.errors import EnvctlError
    from envctl.images import IdentityCache
    from envctl.observe_cache import tarball_here
    from envctl.observe_engine import first_round
    from envctl.paths import cache_dir

    wanted = (manifest.image.id,) if manifest.image.id else ()
    tarball = tarball_here(loaded, Cache(cache_dir(environ)))
    if tarball is not None:
        try:
            wanted = _with_tarball_ids(wanted, loaded, tarball, IdentityCache(cache_dir(environ) / "state" / "tarballs.json"))
        except (EnvctlError, OSError, ValueError):  # an unreadable tarball is the plan's to say: nothing sent ahead
            return
    ask_ahead(first_round(manifest.image.ref, wanted, manifest.name, manifest.container_name,
                          host.container_hint(manifest.container_name)))
