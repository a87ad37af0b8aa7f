"""`doctor`: is this host ready for an environment? Each check says what it found and where."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from envctl.artifacts.cache import free_bytes
from envctl.devices import FAMILIES, family
from envctl.devices.base import snapshot
from envctl.engine import connect
from envctl.errors import EnvctlError
from envctl.local_sources import missing_here
from envctl.hosts.base import Host
from envctl.manifest.loader import Loaded
from envctl.observe import observe
from envctl.paths import cache_dir
from envctl.plan import Options, build_plan

VENDOR_TOOLS = {"mlu": "cnmon", "npu": "npu-smi", "cuda": "nvidia-smi"}


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | info (up will do it) | warn | fail (up cannot start)
    detail: str


# What `up` does about an image the engine lacks, by the plan's image action (decisions.image).
_UP_WILL = {
    "tag": "tag the pinned image, which the engine holds under another name",
    "load": "load it from the tarball {source}",
    "download+load": "download the tarball {source}, then load it",
    "build": "build it from {source}",
    "pull": "pull it from {source}",
    "pull+push": "pull it here from {source}, then send it as a tarball",
}


def _image_check(plan, loaded: Loaded | None = None) -> Check:
    """The image as the plan decided it (the engine was asked): on the engine (ok); not yet,
    and `up` will tag, load, download, build or pull it (info); not there and nothing can
    bring it (fail: `up` stops, as the plan's blocker or need says), among them a tarball
    whose source is a local path that does not exist (it is no download)."""
    image = plan.image
    if image.action == "present":
        return Check("image", "ok", f"{image.ref} present ({image.reason})")
    # "download+load" of a local path: neither the file nor a cached copy of it is here ("load" would be)
    if image.action == "download+load" and loaded is not None and missing_here(loaded.image_source):
        how = image.obtain
        return Check("image", "fail", f"{image.ref}: not on the engine, and the tarball {image.source} does not exist on "
                                      f"this machine; up cannot start without it" + (f": {how}" if how else ""))
    if image.action in _UP_WILL:
        return Check("image", "info", f"{image.ref} not on this host yet: up will "
                                      f"{_UP_WILL[image.action].format(source=image.source)}")
    if image.action == "missing":
        how = image.obtain or "give image.tarball.source (a docker save tarball) or image.build in the manifest, or pull it from its registry (image.pull: true)"
        return Check("image", "fail", f"{image.ref}: {image.reason}; up cannot start without it: {how}")
    return Check("image", "warn", f"{image.ref}: {image.action} ({image.reason})")


def _in_use(holders, name: str, present: int) -> Check:
    """Who holds cards now (informational: the devices check says whether that blocks)."""
    from envctl.card_choice import held_text

    busy: dict[int, list] = {}
    for holder in holders:
        if holder.holds:
            for card in holder.cards:
                busy.setdefault(card, []).append(holder)
    return Check(name, "ok", held_text(busy) if busy else f"none of the {present} card(s) is held")


def _cards_in_use(client, host: Host, kind: str, cards: tuple[int, ...], named: bool) -> Check:
    from envctl.card_holders import node_path_for, read_holders, with_processes
    from envctl.devices.usage import read

    holders = with_processes(read_holders(client, kind, node_path_for(kind, host.under_root), cards, host), read(kind, host))
    return _in_use(holders, f"{kind} cards in use" if named else "cards in use", len(cards))


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def config_file_check() -> Check:
    """The user configuration file (envctl/user_config.py) on this machine, read as every command
    reads it: each problem at its file:line."""
    from envctl.errors import ManifestError
    from envctl.user_config import load

    try:
        config = load(os.environ)
    except ManifestError as exc:
        return Check("config file", "fail", exc.message)
    if config.path is None:
        return Check("config file", "ok", "none: no mirrors configured (envctl config shows where it is looked for)")
    return Check("config file", "ok", f"{config.path}: {len(config.mirrors.origins)} mirror setting(s) (envctl config shows them)")


def diagnose(host: Host, loaded: Loaded | None, options: Options, environ: Mapping[str, str] | None = None,
             engine=None, free_at=None) -> list[Check]:
    """`environ`: path settings as seen on `host`. `engine()`: its Docker client (default: this
    machine's); `free_at(path)`: free bytes there (default: measured here)."""
    environ = os.environ if environ is None else environ
    engine = engine or (lambda: connect(environ))
    free_at = free_at or free_bytes
    checks: list[Check] = []
    client = None
    try:
        client = engine()
        version = client.version().get("Version", "?")
        where = f"on {host.name}" if host.name != "local" else f"at {environ.get('DOCKER_HOST') or 'the local socket'}"
        checks.append(Check("docker engine", "ok", f"Docker {version} {where}"))
    except EnvctlError as exc:
        checks.append(Check("docker engine", "fail", exc.message + (f"; {exc.hint}" if exc.hint else "")))
    checks.append(config_file_check())

    kinds = [loaded.manifest.device.kind] if loaded else [k for k in FAMILIES if k != "cpu"]
    for kind in kinds:
        if kind == "cpu":
            continue
        fam = family(kind)
        cards = fam.discover(snapshot(host, fam))
        driver = fam.probe_driver(host)
        tool = VENDOR_TOOLS.get(kind)
        where = host.which(tool) if tool else None
        if loaded is None:
            if not cards and driver.version is None:
                continue  # this family is simply not in this host
            checks.append(Check(f"{kind} driver", "ok" if driver.version else "warn",
                                f"v{driver.version} from {driver.source}" if driver.version else driver.problem or "not found"))
            checks.append(Check(f"{kind} cards", "ok" if cards else "warn", ", ".join(map(str, cards)) or "none found"))
            if client is not None and cards:
                checks.append(_cards_in_use(client, host, kind, tuple(cards), len(kinds) > 1))
        if tool:
            checks.append(Check(f"{tool}", "ok" if where else "warn", where or f"not found under {host.root}"))

    if loaded is not None:
        observed = observe(host, loaded, client)
        plan = build_plan(loaded, observed, options, environ)
        d = plan.driver
        if d.status == "ok":
            checks.append(Check("driver", "ok", f"v{d.found} satisfies {d.required} (read from {d.source})"))
        elif d.status == "not-required":
            checks.append(Check("driver", "ok", "no driver requirement"))
        elif d.status == "skipped":
            checks.append(Check("driver", "warn", f"check skipped; found {d.found or 'nothing'} ({d.source})"))
        else:
            checks.append(Check("driver", "fail", f"found {d.found or 'nothing'} ({d.source}); requires {d.required}"))
        if plan.devices.kind != "cpu":
            # The selection's own problems and the card choice's; not an image or a mount source
            # whose path or vendor note merely holds the word.
            card_problems = [b for b in plan.blockers if b in plan.devices.problems
                             or ("card" in b and not b.startswith(("image ", "mount source ")))]
            status = "fail" if card_problems else "ok"
            detail = "; ".join(card_problems) or (
                f"cards {','.join(map(str, plan.devices.cards))}: {len(plan.devices.nodes)} device nodes, {len(plan.devices.mounts)} mounts")
            checks.append(Check("devices", status, detail))
            if observed.holders is not None and observed.cards:
                checks.append(_in_use(observed.holders, "cards in use", len(observed.cards)))
        need = 0
        if plan.image.origin == "tarball" and loaded.image_source and loaded.image_source.kind == "file":
            tarball = Path(loaded.image_source.location)
            if tarball.is_file():
                need += tarball.stat().st_size * 2  # the tarball's bytes again as image layers
        free = free_at(cache_dir(environ))
        checks.append(Check("disk", "fail" if free < need else "ok",
                            f"{_gib(free)} free at {cache_dir(environ)}" + (f", {_gib(need)} needed for the image" if need else "")))
        if client is not None:
            checks.append(_image_check(plan, loaded))
        else:
            checks.append(Check("image", "warn", f"{plan.image.ref}: the engine could not be asked whether it holds it"))
        for missing in plan.blockers:
            if missing.startswith("mount source"):
                checks.append(Check("mounts", "fail", missing))
        checks += _missing_local_artifacts(loaded, observed)
    return checks


def _missing_local_artifacts(loaded: Loaded, observed) -> list[Check]:
    """An artifact whose source is a local path that does not exist and that is not in the
    cache: `up` stops at its fetch, which nothing on the network can change (FAIL)."""
    cached = observed.caches.cached | (observed.caches.remote_cached or frozenset())
    return [Check("artifacts", "fail", f"{name}: {source.display} does not exist on this machine, and the cache "
                                       f"does not hold it; up stops at its fetch")
            for name, source in loaded.sources.items() if name not in cached and missing_here(source)]
