"""Which image an engine holds, told the same way on both of Docker's image stores.

An image has two digests: its config digest (sha256 of the image config) and its manifest
digest (sha256 of the manifest, or of the index above it, which names the config). Docker's
classic store calls an image by its config digest: `docker inspect` .Id, what users pin as
`image.id`. The containerd image store (the default from Docker 29, an option in 24–28) calls
it by the manifest or index digest — its .Id, `docker images`, and the only digest it finds an
image by (moby daemon/containerd `resolveImage` lists images by `target.digest`). Its API
reports no config digest at all: image inspect gains `Descriptor` (the target, API 1.48) and
`Manifests` (per platform, with `?manifests=1`), neither with the config
(moby/moby#48894, #48264; docker/cli#5526 shows the changed IDs).

So an image matches a pinned ID when either digest equals it. On the containerd store the
config digest is taken from, in this order: envctl's own record (written when it loaded a
tarball whose config digest it had read), then the image's export (`GET /images/{id}/get`,
read only until its manifest is seen, and remembered: a manifest digest names one config
forever, on every engine).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from envctl.atomic import write_text_atomic
from envctl.regular_file import read_regular_text
from envctl.tarballs import SMALL, ImageError, member_name

CONTAINERD_SNAPSHOTTER = "io.containerd.snapshotter.v1"  # `docker info` DriverStatus driver-type
CONTAINERD_STORE_API = (1, 43)  # the Engine API of Docker 24.0, the first with the containerd image store
RECORDS = "image-configs.json"  # manifest digest → config digest, under the cache's state/


@dataclass(frozen=True)
class EngineImage:
    id: str  # the engine's .Id: the config digest (classic store) or the manifest/index digest (containerd)
    tags: tuple[str, ...] = ()
    labels: dict = field(default_factory=dict, compare=False)
    descriptor: dict | None = field(default=None, compare=False)  # the containerd target (API 1.48+)


class EngineImages:
    """Looks up images on one engine and tells their config digests. `records`: the JSON file of
    known manifest → config digests (None: nothing is remembered)."""

    def __init__(self, client, records: Path | None):
        self.client = client
        self.records = records
        self._containerd: bool | None = None
        self._platform = None

    # -- the store -------------------------------------------------------------------------
    def containerd_store(self) -> bool:
        """Whether the engine keeps images in containerd (its IDs are then manifest digests)."""
        if self._containerd is None and _api_below(self.client, CONTAINERD_STORE_API):
            # An engine speaking an API older than Docker 24's has only the classic store: the
            # containerd image store came, experimental, with Docker Engine 24.0 (API 1.43; its
            # release notes: "Introduce experimental support for containerd as the content
            # store", moby/moby#43735; https://docs.docker.com/engine/release-notes/24.0/). So
            # Docker 20.10 (API 1.41) is not asked `/info`, a round trip to an SSH host. This
            # relies on the client's API version being the engine's own, as docker-py
            # negotiates it (version None: the engine's /version ApiVersion).
            self._containerd = False
        if self._containerd is None:
            try:
                info = self.client.info()
            except Exception:  # an engine that cannot say is treated by what its images say
                info = {}
            self.store_from_info(info)
        return self._containerd

    def platform(self):
        """The engine's platform (envctl/image_platforms.py), asked once."""
        if self._platform is None:
            from envctl.image_platforms import of_engine

            self._platform = of_engine(self.client)
        return self._platform

    # -- lookups ---------------------------------------------------------------------------
    def get(self, ref_or_id: str) -> EngineImage | None:
        from docker.errors import APIError, ImageNotFound

        try:
            attrs = self.client.api.inspect_image(ref_or_id)
        except ImageNotFound:
            return None
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise ImageError(f"the engine could not look up {ref_or_id}: {exc.explanation or exc}") from None
        return self.inspected(attrs)

    def inspected(self, attrs: dict) -> EngineImage:
        """The image an inspection (ImageInspect's JSON, as `get` reads it) describes, taken."""
        return self.taken(EngineImage(attrs["Id"], tuple(attrs.get("RepoTags") or ()),
                                      dict((attrs.get("Config") or {}).get("Labels") or {}), attrs.get("Descriptor")))

    def store_unknown(self) -> bool:
        """Whether containerd_store would ask the engine's `/info` (nothing said it yet)."""
        return self._containerd is None and not _api_below(self.client, CONTAINERD_STORE_API)

    def store_from_info(self, info: dict) -> None:
        """What the engine's `/info` (SystemInfo, asked by the caller) says of the image store."""
        status = (info or {}).get("DriverStatus") or []
        self._containerd = any(len(pair) == 2 and pair[1] == CONTAINERD_SNAPSHOTTER for pair in status)

    def taken(self, image: EngineImage) -> EngineImage:
        """`image`, as `get` of this engine found it (here or in another EngineImages), with what
        it says of the image store remembered (so containerd_store asks nothing more)."""
        if image.descriptor and image.descriptor.get("digest") == image.id:
            self._containerd = True  # only the containerd store reports a target descriptor
        return image

    def config_digest(self, image: EngineImage, read_export: bool = True) -> str | None:
        """The image's config digest. On the containerd store, from the records, else (with
        `read_export`) from the image's export; None when it cannot be told."""
        if not self.containerd_store():
            return image.id
        known = self._read_records().get(image.id)
        if known or not read_export:
            return known
        found = self._config_from_export(image.id)
        if found:
            self.remember(image.id, found)
        return found

    def matches(self, image: EngineImage, wanted: str, read_export: bool = True) -> bool:
        """Whether `image` is the image `wanted` names (its manifest or its config digest)."""
        return image.id == wanted or self.config_digest(image, read_export) == wanted

    # -- records ---------------------------------------------------------------------------
    def recorded_config(self, manifest_digest: str) -> str | None:
        """The config digest remembered for a manifest digest pulled here before, or None."""
        return self._read_records().get(manifest_digest)

    def _read_records(self) -> dict:
        if self.records is None:
            return {}
        try:
            return json.loads(read_regular_text(self.records))
        except (OSError, ValueError):
            return {}

    def remember(self, manifest_digest: str, config_digest: str) -> None:
        if self.records is None or manifest_digest == config_digest:
            return
        data = self._read_records()
        if data.get(manifest_digest) == config_digest:
            return
        data[manifest_digest] = config_digest
        self.records.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.records, json.dumps(data, indent=1))

    # -- the export ------------------------------------------------------------------------
    def _config_from_export(self, image_id: str) -> str | None:
        """Read the image's export until its manifest (whose sha256 is `image_id`) or
        manifest.json names the config; the rest of the stream is not read."""
        from docker.errors import APIError

        try:
            chunks = self.client.api.get_image(image_id)
        except APIError as exc:
            raise ImageError(f"the engine could not export {image_id} to read its config digest: {exc.explanation or exc}") from None
        stream = _ChunkReader(chunks)
        try:
            with tarfile.open(fileobj=stream, mode="r|") as archive:
                for member in archive:
                    if not member.isfile() or member.size > SMALL:
                        continue
                    name = member_name(member.name)
                    data = archive.extractfile(member).read()
                    found = _config_named(name, data, image_id)
                    if found:
                        return found
        except (tarfile.TarError, ValueError) as exc:
            raise ImageError(f"the export of {image_id} could not be read ({exc})") from None
        finally:
            stream.close()
        return None


def _api_below(client, version: tuple[int, int]) -> bool:
    """Whether `client` (docker-py) speaks an Engine API older than `version` (major, minor);
    False when its version cannot be told."""
    try:
        major, minor = (int(part) for part in str(client.api.api_version).split(".")[:2])
    except (AttributeError, TypeError, ValueError):
        return False
    return (major, minor) < version


def _config_named(name: str, data: bytes, image_id: str) -> str | None:
    if data[:1] not in (b"{", b"["):
        return None
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if name == "manifest.json" and isinstance(document, list) and len(document) == 1:
        config = member_name(str(document[0].get("Config", "")))
        if config.startswith("blobs/sha256/"):
            return "sha256:" + config.rsplit("/", 1)[1]
    if isinstance(document, dict) and "sha256:" + hashlib.sha256(data).hexdigest() == image_id:
        config = (document.get("config") or {}).get("digest")
        if config:
            return config
    return None


class _ChunkReader:
    """A sequential file over an iterator of byte chunks (a streamed API response)."""

    def __init__(self, chunks):
        self.chunks = iter(chunks)
        self.buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            try:
                self.buffer += next(self.chunks)
            except StopIteration:
                break
        if size < 0:
            size = len(self.buffer)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close:
            close()
