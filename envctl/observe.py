"""What a host looks like, as far as a plan needs to know: cards, driver, paths.

Observing only reads (files below the host root, vendor tools' output); it changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from envctl.containers import LABEL_BAKE_KEY, LABEL_BAKED_FOR
from envctl.devices import family
from envctl.devices.base import DriverInfo, Snapshot, snapshot
from envctl.hosts.base import Host
from envctl.manifest.loader import Loaded


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


def observe(host: Host, loaded: Loaded, engine=None) -> Observed:
    """Read the host. With an engine client, also whether the manifest's image is there."""
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
    image_present, image_id, image_config, baked = None, None, None, {}
    if engine is not None:
        from envctl.image_identity import RECORDS, EngineImages
        from envctl.paths import cache_dir

        images = EngineImages(engine, cache_dir() / "state" / RECORDS)
        image = images.get(manifest.image.ref)
        image_present = image is not None and (manifest.image.id is None or images.matches(image, manifest.image.id))
        if image is not None:
            image_id, image_config = image.id, images.config_digest(image)
        for candidate in engine.images.list(filters={"label": f"{LABEL_BAKED_FOR}={manifest.name}"}):
            key = (candidate.labels or {}).get(LABEL_BAKE_KEY)
            if key and candidate.tags:
                baked[key] = candidate.tags[0]
    return Observed(host.name, host.root, tuple(fam.discover(devices)), driver, devices, frozenset(missing), image_present,
                    image_id, image_config, baked)
