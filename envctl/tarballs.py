"""What an image tarball holds, read from the tarball itself: the config digest (the image ID
on Docker's classic store), the manifest digests an OCI layout names (the image ID on the
containerd image store), and the tags it was saved under.

Accepted is what `docker load` accepts:
- compression: none, gzip, bzip2, xz, zstd (told by the first bytes, never by the file name;
  moby's pkg/archive `DetectCompression` uses the same magic numbers);
- the legacy layout (`manifest.json` naming `<hex>.json` and `<id>/layer.tar`), the layout of
  Docker 25 and later (`manifest.json` beside `index.json`, `oci-layout` and `blobs/sha256/`),
  and a bare OCI layout (`index.json` without `manifest.json`);
- member names as any tar writes them: `./manifest.json` (`tar -C dir -cf out.tar .`) is
  `manifest.json`, as Docker's loader reads the unpacked directory;
- `docker save <image ID>`: `RepoTags` is null, the tarball names no image;
- several images in one tarball (`docker save a b`, `skopeo copy --additional-tag`): each is
  read, and the manifest's image is the one tagged `image.ref` (`TarballIdentity.image_for`);
- multi-platform images (an image index, or indexes nested in one, naming one manifest per
  platform, beside buildx's attestation manifests of platform unknown/unknown, which are
  skipped): every platform's config digest is read, and the image step picks the engine's
  platform (`TarballIdentity.for_platform`, envctl/image_platforms.py);
- an OCI layout named by `org.opencontainers.image.ref.name` (skopeo's and podman's
  oci-archive) when it has no `io.containerd.image.name`: Docker 28 names the loaded image
  after it (checked: ref.name `envctl-review/a:1` loads as `envctl-review/a:1`, `1` as
  `1:latest`), as containerd's archive importer does.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import posixpath
import tarfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Callable

from envctl import image_platforms, references
from envctl.errors import EnvctlError, EXIT_HOST_NOT_READY
from envctl.file_digest import FileChanged, FileSha256, changed_since

SMALL = 4 << 20  # manifests, indexes and configs are a few KB; anything larger is a layer
# The pieces in which a streamed read skips over layers. tarfile's default (10 KiB) makes a GiB a
# hundred thousand Python calls; 1 MiB pieces leave the cache on every copy. Measured on a 1 GiB
# tarball (CPU seconds for 10 KiB / 64 KiB / 1 MiB): gzip 2.3 / 1.7 / 1.9, zstd 0.78 / 0.77 / 1.03.
STREAM_BUFSIZE = 64 << 10

# First bytes of each compressed format (moby pkg/archive/archive.go, magicNumbers).
MAGIC = {
    "gzip": b"\x1f\x8b\x08",
    "bzip2": b"BZh",
    "xz": b"\xfd7zXZ\x00",
    "zstd": b"\x28\xb5\x2f\xfd",
}

# The annotation containerd and Docker write on index.json entries with the full image name,
# and the OCI one other tools write (image-spec annotations.md); the first wins, as in
# containerd's archive importer.
NAME_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")


class ImageError(EnvctlError):
    exit_code = EXIT_HOST_NOT_READY


@dataclass(frozen=True)
class SavedImage:
    """One image of a tarball (a `docker save a b` tarball holds two)."""

    image_id: str  # the config digest
    repo_tags: tuple[str, ...]
    manifest_digests: tuple[str, ...] = ()
    # For a multi-platform image: (platform as text, its config digest) for each platform, in the
    # index's order; empty for an image of one platform.
    platforms: tuple[tuple[str, str], ...] = ()

    def for_platform(self, platform: image_platforms.Platform) -> "SavedImage":
        """This image as an engine of `platform` runs it: its config digest is that platform's.
        Raises ImageError when the image has no manifest for it."""
        if not self.platforms:
            return self
        for text, config in self.platforms:
            if image_platforms.parse(text) == platform:
                return replace(self, image_id=config)
        held = ", ".join(text for text, _ in self.platforms)
        raise ImageError(f"{', '.join(self.repo_tags) or 'the image'} is a multi-platform image of {held}; "
                         f"this engine runs {platform}, which it has no image for; nothing was loaded",
                         hint=f"get a tarball built for {platform} (docker buildx build --platform {platform} ...)")


@dataclass(frozen=True)
class TarballIdentity:
    """What a tarball holds. Its image_id, repo_tags and manifest_digests are those of one image:
    the first, or after `image_for(ref)` the one tagged `ref`; `images` lists every image."""

    image_id: str  # the config digest, sha256:<hex of the image config>
    repo_tags: tuple[str, ...]  # as written in the tarball; empty when it was saved by image ID
    size: int
    mtime_ns: int
    sha256: str | None = None  # of the tarball file, when it was computed
    # The image ID on the containerd store: what index.json names, or for a tarball without one
    # the digest of the manifest the store writes for it (see _containerd_manifest_digest).
    manifest_digests: tuple[str, ...] = ()
    compression: str = "none"  # none | gzip | bzip2 | xz | zstd
    images: tuple[SavedImage, ...] = ()  # every image in the tarball, in its order
    # Whether it has manifest.json: Docker's classic store before 25 loads nothing else (a bare
    # OCI layout fails there with "open .../blobs/json: no such file or directory").
    docker_manifest: bool = True

    @property
    def ids(self) -> tuple[str, ...]:
        """Every digest an engine may call this image by: the config digest (classic store) and
        the manifest digests (containerd store)."""
        return (self.image_id, *self.manifest_digests)

    def image_for(self, ref: str, pinned: str | None = None) -> "TarballIdentity":
        """This identity narrowed to the image `docker load` tags `ref` (Docker's normalised
        names compared), else to the one whose ID is `pinned`. With several images and none of
        them that one, repo_tags lists every image's tags, so that the caller can say what the
        tarball holds."""
        if len(self.images) <= 1:
            return self
        chosen = [i for i in self.images if any(references.same(tag, ref) for tag in i.repo_tags)]
        chosen = chosen or [i for i in self.images if pinned and pinned in (i.image_id, *i.manifest_digests)]
        if chosen:
            one = chosen[0]
            return replace(self, image_id=one.image_id, repo_tags=one.repo_tags, manifest_digests=one.manifest_digests)
        return replace(self, repo_tags=tuple(t for i in self.images for t in i.repo_tags))

    @property
    def multi_platform(self) -> bool:
        return any(i.platforms for i in self.images)

    def for_platform(self, platform: image_platforms.Platform) -> "TarballIdentity":
        """This identity as an engine of `platform` loads it from the OCI layout (the containerd
        image store): each multi-platform image's config digest is `platform`'s. Its image IDs
        there stay the index digests. Raises ImageError when an image has no manifest for it:
        narrow with image_for first, so that only the manifest's image must have one."""
        images = tuple(i.for_platform(platform) if i.manifest_digests[:1] == self.manifest_digests[:1] else i
                       for i in self.images)
        chosen = next((i for i in images if i.manifest_digests[:1] == self.manifest_digests[:1]), None)
        if chosen is None:
            return replace(self, images=images)
        return replace(self, image_id=chosen.image_id, images=images)


def compression_of(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(8)
    for name, magic in MAGIC.items():
        if head.startswith(magic):
            return name
    return "none"


def decompressing(raw: BinaryIO, compression: str) -> BinaryIO:
    """A sequential reader of the uncompressed bytes of `raw` (nothing is written to disk).
    gzip is inflated by ISA-L (python-isal): 2.5x the standard library's zlib (0.45 s against
    1.1 s for a 1 GiB tar, measured here), the same format and errors; the standard library's
    reader where isal is not installed."""
    if compression == "gzip":
        try:
            from isal import igzip
        except ImportError:
            return gzip.GzipFile(fileobj=raw, mode="rb")
        return igzip.IGzipFile(fileobj=raw, mode="rb")
    if compression == "bzip2":
        return bz2.BZ2File(raw, mode="rb")
    if compression == "xz":
        return lzma.LZMAFile(raw, mode="rb")
    if compression == "zstd":
        import zstandard

        # read_across_frames: pzstd and `zstd -T` may write several frames; `docker load` reads them all.
        return zstandard.ZstdDecompressor().stream_reader(_ZstdFrames(raw), read_across_frames=True)
    return raw


class _ZstdFrames:
    """A reader of zstd frames that raises ZstdError at the end of the file when its last frame
    is incomplete. zstandard's stream_reader (0.25) ends without an error when its input ends
    inside a frame, so a truncated .tar.zst read as a shorter archive: one cut in its end-of-archive
    zeros was loaded whole where `docker load` says 'unexpected EOF'. Only the 3-byte block headers
    are read here (RFC 8878 3.1: frame header, blocks, optional checksum; skippable frames); the
    bytes between them are counted and skipped."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.head = b""  # the bytes of a header not yet whole
        self.need, self.state = 4, "magic"  # header bytes awaited, and what they are
        self.skip = 0  # bytes of a block (or a skippable frame) still to pass
        self.after_skip = "magic"
        self.checksum = False

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        if not data:
            if self.state != "magic" or self.head or self.skip:
                import zstandard

                raise zstandard.ZstdError("the file ends inside a zstd frame (truncated)")
            return data
        self._walk(data)
        return data

    def readable(self) -> bool:
        return True

    def _walk(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            if self.skip:
                step = min(self.skip, len(data) - pos)
                self.skip -= step
                pos += step
                if not self.skip:
                    self.state, self.need = self.after_skip, (4 if self.after_skip == "magic" else 3)
                continue
            take = data[pos:pos + self.need - len(self.head)]
            self.head += take
            pos += len(take)
            if len(self.head) < self.need:
                return
            head, self.head = self.head, b""
            self._header(head)

    def _header(self, head: bytes) -> None:
        if self.state == "magic":
            magic = int.from_bytes(head, "little")
            if magic & 0xFFFFFFF0 == 0x184D2A50:  # a skippable frame: its size, then that many bytes
                self.state, self.need = "skippable", 4
            else:  # a zstd frame (anything else the decompressor refuses itself)
                self.state, self.need = "descriptor", 1
        elif self.state == "skippable":
            self._skip(int.from_bytes(head, "little"), "magic")
        elif self.state == "descriptor":
            d = head[0]
            single = (d >> 5) & 1
            self.checksum = bool((d >> 2) & 1)
            rest = (0 if single else 1) + (0, 1, 2, 4)[d & 3] + ((1 if single else 0), 2, 4, 8)[d >> 6]
            self._skip(rest, "block")
        elif self.state == "block":
            value = int.from_bytes(head, "little")
            last, kind, size = value & 1, (value >> 1) & 3, value >> 3
            if not last:
                self._skip(1 if kind == 1 else size, "block")
            else:
                self._skip((1 if kind == 1 else size) + (4 if self.checksum else 0), "magic")

    def _skip(self, count: int, then: str) -> None:
        self.after_skip = then
        if count:
            self.skip, self.state = count, "skipping"
        else:
            self.state, self.need = then, (4 if then == "magic" else 3)


def member_name(name: str) -> str:
    """A member's path as Docker's loader sees it after unpacking: `./manifest.json` and
    `manifest.json` are one file."""
    clean = posixpath.normpath(name)
    while clean.startswith("./"):
        clean = clean[2:]
    return clean.lstrip("/")


class CountingReader:
    """A file wrapper that reports every byte read through it as progress (sequential reads only)."""

    def __init__(self, handle, progress: Callable[[int], None] | None):
        self.handle = handle
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        if self.progress:
            self.progress(len(data))
        return data

    def readinto(self, buffer) -> int:  # bz2/lzma/zstandard readers call this
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True


@dataclass
class _Members:
    """What was seen of the small members: their sha256 and, for JSON ones, their content."""

    digests: dict
    documents: dict
    links: dict  # symlink or hardlink name → the name it points at
    sizes: dict  # every regular file's size
    heads: dict  # every regular file's first bytes (to tell a compressed layer)

    def resolve(self, name: str) -> str:
        seen = set()
        while name in self.links and name not in seen:
            seen.add(name)
            name = self.links[name]
        return name


def _collect(archive: tarfile.TarFile) -> _Members:
    members = _Members({}, {}, {}, {}, {})
    for member in archive:
        name = member_name(member.name)
        if member.issym():
            members.links[name] = member_name(posixpath.join(posixpath.dirname(name), member.linkname))
            continue
        if member.islnk():
            members.links[name] = member_name(member.linkname)
            continue
        if not member.isfile():
            continue
        members.sizes[name] = member.size
        if member.size > SMALL:
            members.heads[name] = archive.extractfile(member).read(8)
            continue
        data = archive.extractfile(member).read()
        members.heads[name] = data[:8]
        members.digests[name] = hashlib.sha256(data).hexdigest()
        if data[:1] in (b"{", b"["):
            members.documents[name] = data
    return members


def _blob(digest: str) -> str:
    return "blobs/" + digest.replace(":", "/", 1)


def _document(members: _Members, name: str, path: Path):
    data = members.documents.get(members.resolve(name))
    if data is None:
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ImageError(f"{path}: {name} is not valid JSON; nothing was loaded",
                         hint="download the tarball again; a corrupt file cannot be loaded") from None


def _identity(members: _Members, path: Path) -> list[SavedImage]:
    """Every image of the tarball, from manifest.json, else from index.json."""
    manifest = _document(members, "manifest.json", path)
    index = _document(members, "index.json", path)
    descriptors = [m for m in (index or {}).get("manifests") or [] if isinstance(m, dict) and "digest" in m]
    if manifest is not None:
        if not isinstance(manifest, list) or not manifest or not all(isinstance(e, dict) and "Config" in e for e in manifest):
            raise ImageError(f"{path} is not a `docker save` tarball (its manifest.json has no image entry)")
        return [_saved_image(members, entry, descriptors, index is not None, path) for entry in manifest]
    if index is not None:
        return _images_from_index(members, descriptors, path)
    raise ImageError(f"{path} has neither manifest.json nor index.json: it is not an image tarball "
                     "(`docker save` or an OCI layout); nothing was loaded")


def _saved_image(members: _Members, entry: dict, descriptors: list, has_index: bool, path: Path) -> SavedImage:
    """One manifest.json entry, with the manifest digests of the index.json entries naming its
    config (Docker 25 and later), or the one the containerd store writes for it (legacy layout)."""
    config = members.resolve(member_name(entry["Config"]))
    if config not in members.digests:
        raise ImageError(f"{path} is incomplete: manifest.json names {entry['Config']}, which is not in the tarball")
    config_digest = "sha256:" + members.digests[config]
    platforms: tuple = ()
    if has_index:
        # Docker 28's save of a multi-platform image names the index in index.json and the
        # saving engine's platform's config in manifest.json (checked on 28.5.2).
        trees = {d["digest"]: _platform_configs(members, d["digest"], path) or [] for d in descriptors}
        manifest_digests = tuple(d for d, tree in trees.items() if config_digest in (c for _, c in tree))
        if not manifest_digests and len(descriptors) == 1:
            manifest_digests = (descriptors[0]["digest"],)
        tree = trees.get(manifest_digests[0], []) if manifest_digests else []
        platforms = _platforms_field(tree)
    else:  # the legacy layout: the containerd store writes a manifest for it on loading
        predicted = _containerd_manifest_digest(members, entry, config, path)
        manifest_digests = (predicted,) if predicted else ()
    return SavedImage(config_digest, tuple(entry.get("RepoTags") or ()), manifest_digests, platforms)


def _platforms_field(tree: list) -> tuple:
    """SavedImage.platforms from _platform_configs' answer: empty for one platform."""
    if len(tree) <= 1:
        return ()
    return tuple((str(platform) if platform else "unknown", config) for platform, config in tree)


DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"


def _containerd_manifest_digest(members: _Members, entry: dict, config: str, path: Path) -> str | None:
    """The manifest digest Docker's containerd image store gives a legacy-layout tarball.

    Such a tarball has no manifest of its own; containerd's archive importer
    (images/archive/importer.go, `ImportIndex`) writes one on loading: a Docker schema 2 manifest
    naming the config and the layer blobs as they are in the tarball, serialised by Go's
    encoding/json (no spaces, fields in declaration order). `docker save` writes uncompressed
    layers, whose sha256 is the config's diff ID. Checked against Docker 28.5.2 (containerd
    store): the digest computed here is the image's .Id after `docker load`. None when a layer is
    compressed (its digest would need the whole layer hashed): the engine is then asked."""
    document = _document(members, config, path)
    diff_ids = ((document or {}).get("rootfs") or {}).get("diff_ids") if isinstance(document, dict) else None
    layers = [members.resolve(member_name(name)) for name in entry.get("Layers") or []]
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
        return None
    descriptors = []
    for name, diff_id in zip(layers, diff_ids):
        head = members.heads.get(name)
        if name not in members.sizes or head is None or any(head.startswith(magic) for magic in MAGIC.values()):
            return None
        descriptors.append({"mediaType": DOCKER_LAYER, "digest": diff_id, "size": members.sizes[name]})
    manifest = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                "config": {"mediaType": DOCKER_CONFIG, "digest": "sha256:" + members.digests[config], "size": members.sizes[config]},
                "layers": descriptors}
    return "sha256:" + hashlib.sha256(json.dumps(manifest, separators=(",", ":")).encode()).hexdigest()


def _platform_configs(members: _Members, digest: str, path: Path, platform=None, depth: int = 0) -> list | None:
    """[(platform or None, config digest)] of the manifest `digest` names, or of every platform's
    manifest below it when it is an image index (indexes nested in indexes are followed;
    attestation manifests skipped). None when a manifest below is not in the tarball (a
    platform saved without its blobs is left out, as `docker save --platform` writes them)."""
    document = _document(members, _blob(digest), path)
    if isinstance(document, dict) and isinstance(document.get("manifests"), list) and depth < 8:
        found, missing = [], False
        for child in document["manifests"]:
            if not isinstance(child, dict) or "digest" not in child or image_platforms.is_attestation(child):
                continue
            below = _platform_configs(members, child["digest"], path, image_platforms.of_descriptor(child) or platform, depth + 1)
            if below is None:
                missing = True
            else:
                found += below
        return found or (None if missing else [])
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict) or not document["config"].get("digest"):
        return None
    return [(platform, document["config"]["digest"])]


def _images_from_index(members: _Members, descriptors: list, path: Path) -> list[SavedImage]:
    """A bare OCI layout: index.json → image manifest (or an index of them) → config."""
    if not descriptors:
        raise ImageError(f"{path}: its index.json names no image; nothing was loaded")
    images = []
    for descriptor in descriptors:
        annotations = descriptor.get("annotations") or {}
        name = next((annotations[key] for key in NAME_ANNOTATIONS if annotations.get(key)), None)
        tree = _platform_configs(members, descriptor["digest"], path, image_platforms.of_descriptor(descriptor))
        if not tree:
            raise ImageError(f"{path} is incomplete: index.json names {descriptor['digest']}, whose manifest is not in the tarball")
        for _, config in tree:
            if _blob(config) not in members.digests:
                raise ImageError(f"{path} is incomplete: its manifest names the config {config}, which is not in the tarball")
        config = tree[0][1]  # of the first platform, until for_platform picks the engine's
        images.append(SavedImage("sha256:" + members.digests[_blob(config)], (name,) if name else (), (descriptor["digest"],),
                                 _platforms_field(tree)))
    return images


_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError, OSError, ValueError)


def read_errors() -> tuple:
    """The errors a damaged tarball raises, with those of the decompression libraries installed."""
    errors = _READ_ERRORS
    try:
        import zstandard

        errors += (zstandard.ZstdError,)
    except ImportError:
        pass
    try:
        from isal import isal_zlib

        errors += (isal_zlib.error,)
    except ImportError:
        pass
    return errors


class Sha256Mismatch(ImageError):
    """A tarball whose sha256 is not the pinned one; nothing was loaded."""


def unreadable_tarball(path: Path, compression: str, exc: Exception) -> ImageError:
    """The error for a tarball that a decompressor or tarfile found damaged (`exc`)."""
    what = f"{compression}-compressed " if compression != "none" else ""
    return ImageError(f"{path} is not a readable {what}image tarball ({type(exc).__name__}: {exc}); nothing was loaded",
                      hint="download it again; a truncated or corrupt file cannot be loaded")


def changed_while_read(path: Path, doing: str = "read") -> ImageError:
    """The error for a file that changed while envctl `doing` it ("read", "loaded"): a download
    or copy still under way, its bytes not those checked; nothing was loaded."""
    return ImageError(f"{path} changed while envctl {doing} it (a download or copy still under way?); nothing was loaded",
                      hint="run the command again once the file is complete")


def sha256_mismatch(path: Path, found: str, expected: str) -> Sha256Mismatch:
    """The error for a tarball whose sha256 is not the pinned one (nothing was loaded)."""
    return Sha256Mismatch(
        f"{path} has sha256 {found}, the manifest expects {expected}; nothing was loaded",
        hint="download the tarball again, or update image.tarball.sha256 if the vendor published a new one",
    )


def read_identity(path: Path, with_sha256: bool = False, progress: Callable[[int], None] | None = None) -> TarballIdentity:
    """Read the identity of an image tarball. A compressed one is read whole (its manifest.json
    comes after the layers), and its sha256 (of the file as stored) is computed on the way,
    asked or not: hashing costs a fraction of decompressing, and a later check of a pinned
    sha256 then needs no second read. An uncompressed one is read by its headers only (seeking
    over the layers), unless `with_sha256` asks for the whole file to be read and hashed. Raises
    ImageError for anything that is not a complete, readable image tarball."""
    stat = path.stat()
    compression = compression_of(path)
    # The sha256 on a second thread, reading the file beside this read: the two take two cores
    # instead of adding up (envctl/file_digest.py, with the figures).
    hashing = FileSha256(path, stat, progress) if compression != "none" or with_sha256 else None
    try:
        if compression == "none":
            # tarfile reads the headers and seeks over layer data: a multi-GB tarball is
            # identified in milliseconds.
            with tarfile.open(path, "r:") as archive:
                members = _collect(archive)
        else:
            with open(path, "rb") as raw:
                members, _end = _stream_members(decompressing(raw, compression))
        sha = hashing.result() if hashing is not None else None
    except ImportError as exc:
        raise ImageError(f"{path} is {compression}-compressed and this envctl cannot read it ({exc})",
                         hint="reinstall envctl with its dependencies (pip install envctl)") from None
    except FileChanged:
        raise changed_while_read(path) from None
    except read_errors() as exc:
        if changed_since(path, stat):  # cut short by a writer still at it, not damaged
            raise changed_while_read(path) from None
        if isinstance(exc, OSError) and not isinstance(exc, (gzip.BadGzipFile,)) and exc.errno is not None:
            raise ImageError(f"cannot read {path}: {exc.strerror}") from None
        raise unreadable_tarball(path, compression, exc) from None
    finally:
        if hashing is not None:  # when this read failed, its error is the one reported
            hashing.stop()
    return _from_members(members, path, stat, sha, compression)


def read_stream_identity(stream: BinaryIO, path: Path, stat, compression: str) -> tuple[TarballIdentity, int]:
    """The identity of the tarball at `path` (`stat`: its os.stat_result) from `stream`, a reader
    of its uncompressed bytes, read up to the archive's end-of-archive blocks (the caller reads
    what follows), and the offset of those blocks in the uncompressed bytes. sha256 None: the
    caller hashes the file. Raises what the stream and tarfile raise (read_errors()) and
    ImageError for a tarball that is not an image's."""
    members, end = _stream_members(stream)
    return _from_members(members, path, stat, None, compression), end


def _stream_members(stream: BinaryIO) -> tuple[_Members, int]:
    """The members, and the offset of the first end-of-archive block (tarfile stops there)."""
    with tarfile.open(fileobj=stream, mode="r|", bufsize=STREAM_BUFSIZE) as archive:
        return _collect(archive), archive.offset


def _from_members(members: _Members, path: Path, stat, sha: str | None, compression: str) -> TarballIdentity:
    images = _identity(members, path)
    first = images[0]
    return TarballIdentity(first.image_id, first.repo_tags, stat.st_size, stat.st_mtime_ns, sha, first.manifest_digests, compression,
                           tuple(images), "manifest.json" in members.documents)
