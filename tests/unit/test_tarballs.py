"""Reading image tarballs as `docker load` reads them: every compression, member names written
`./manifest.json`, saved by ID (RepoTags null), Docker 25's layout (manifest.json beside an OCI
layout with symlinked legacy paths) and a bare OCI layout. The tarballs are written here in the
layouts `docker save` writes (moby image/tarexport/save.go: legacy `<id>/layer.tar` +
`<hex>.json`; from Docker 25 `blobs/sha256/<hex>` + index.json + oci-layout); the integration
tests load real `docker save` output into real engines (tests/integration/test_image_tarballs.py)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import subprocess
import tarfile
import threading

import pytest
import zstandard

from envctl import references
from envctl.tarballs import ImageError, compression_of, read_identity
from support import moves_mtime_once


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _layer() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as layer:
        info = tarfile.TarInfo("etc/hello")
        info.size = 6
        layer.addfile(info, io.BytesIO(b"hello\n"))
    return buffer.getvalue()


LAYER = _layer()
CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                     "rootfs": {"type": "layers", "diff_ids": ["sha256:" + _sha(LAYER)]}}).encode()
CONFIG_DIGEST = "sha256:" + _sha(CONFIG)


def _add(archive: tarfile.TarFile, name: str, data: bytes | None = None, link: str | None = None) -> None:
    info = tarfile.TarInfo(name)
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
        archive.addfile(info)
    elif data is None:
        info.type = tarfile.DIRTYPE
        archive.addfile(info)
    else:
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))


def legacy(tags=("envctl-ut/busybox:1",), prefix: str = "") -> bytes:
    """Docker 20.10's `docker save` layout."""
    buffer = io.BytesIO()
    layer_id = "a" * 64
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        if prefix:
            _add(archive, ".")
        _add(archive, f"{prefix}{layer_id}")
        _add(archive, f"{prefix}{layer_id}/layer.tar", LAYER)
        _add(archive, f"{prefix}{_sha(CONFIG)}.json", CONFIG)
        manifest = [{"Config": f"{_sha(CONFIG)}.json", "RepoTags": list(tags) if tags is not None else None,
                     "Layers": [f"{layer_id}/layer.tar"]}]
        _add(archive, f"{prefix}manifest.json", json.dumps(manifest).encode())
    return buffer.getvalue()


def oci(with_manifest_json: bool = True, name: str | None = "docker.io/envctl-ut/busybox:1") -> tuple[bytes, str]:
    """Docker 25's layout (manifest.json, index.json, oci-layout, blobs/sha256, legacy paths as
    symlinks into blobs), or a bare OCI layout. Returns the tarball and the manifest digest."""
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": CONFIG_DIGEST,
                                      "size": len(CONFIG)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + _sha(LAYER),
                                       "size": len(LAYER)}]}).encode()
    annotations = {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "1"} if name else {}
    index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                           "digest": "sha256:" + _sha(manifest), "size": len(manifest),
                                                           "annotations": annotations}]}).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for data in (LAYER, CONFIG, manifest):
            _add(archive, f"blobs/sha256/{_sha(data)}", data)
        if with_manifest_json:
            _add(archive, "b" * 64 + "/layer.tar", link=f"../blobs/sha256/{_sha(LAYER)}")
            _add(archive, "manifest.json", json.dumps([{"Config": f"blobs/sha256/{_sha(CONFIG)}", "RepoTags": ["envctl-ut/busybox:1"],
                                                        "Layers": [f"blobs/sha256/{_sha(LAYER)}"]}]).encode())
        _add(archive, "index.json", index)
        _add(archive, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    return buffer.getvalue(), "sha256:" + _sha(manifest)


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def _zstd_frames(data: bytes) -> bytes:
    """Two frames, as pzstd writes them."""
    half = len(data) // 2
    return _zstd(data[:half]) + _zstd(data[half:])


COMPRESSORS = {
    "none": lambda data: data,
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": _zstd,
}


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
@pytest.mark.parametrize("with_sha256", [False, True])
def test_every_compression_gives_the_same_identity(tmp_path, compression, with_sha256):
    path = tmp_path / "image.tar.whatever"  # the name says nothing: the bytes do
    path.write_bytes(COMPRESSORS[compression](legacy()))
    identity = read_identity(path, with_sha256=with_sha256)
    assert identity.compression == compression == compression_of(path)
    assert identity.image_id == CONFIG_DIGEST
    assert identity.repo_tags == ("envctl-ut/busybox:1",)
    # A compressed tarball is read whole anyway, so its sha256 comes with it.
    assert identity.sha256 == (_sha(path.read_bytes()) if with_sha256 or compression != "none" else None)


def test_multi_frame_zstd_and_multi_member_gzip_are_read_to_the_end(tmp_path):
    data = legacy()
    for name, packed in (("frames.tar.zst", _zstd_frames(data)),
                         ("members.tar.gz", gzip.compress(data[:5000]) + gzip.compress(data[5000:]))):
        path = tmp_path / name
        path.write_bytes(packed)
        assert read_identity(path, with_sha256=True).image_id == CONFIG_DIGEST


def test_the_zstd_binary_output_is_read(tmp_path):
    plain = tmp_path / "image.tar"
    plain.write_bytes(legacy())
    subprocess.run(["zstd", "-q", "-T2", "--long", str(plain), "-o", str(tmp_path / "image.tar.zst")], check=True)
    assert read_identity(tmp_path / "image.tar.zst").image_id == CONFIG_DIGEST


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_members_written_dot_slash_are_the_same_members(tmp_path, compression):
    path = tmp_path / "repacked.tar"
    path.write_bytes(COMPRESSORS[compression](legacy(prefix="./")))
    identity = read_identity(path)
    assert identity.image_id == CONFIG_DIGEST and identity.repo_tags == ("envctl-ut/busybox:1",)


def test_a_tarball_saved_by_id_names_no_image(tmp_path):
    path = tmp_path / "by-id.tar"
    path.write_bytes(legacy(tags=None))
    identity = read_identity(path)
    assert identity.image_id == CONFIG_DIGEST and identity.repo_tags == ()


def test_docker_25_layout_gives_config_and_manifest_digests(tmp_path):
    data, manifest_digest = oci()
    path = tmp_path / "oci.tar"
    path.write_bytes(data)
    identity = read_identity(path)
    assert identity.image_id == CONFIG_DIGEST
    assert identity.manifest_digests == (manifest_digest,)
    assert identity.ids == (CONFIG_DIGEST, manifest_digest)


def test_a_bare_oci_layout_is_read_through_its_index(tmp_path):
    data, manifest_digest = oci(with_manifest_json=False)
    path = tmp_path / "bare.tar.xz"
    path.write_bytes(lzma.compress(data))
    identity = read_identity(path)
    assert identity.image_id == CONFIG_DIGEST and identity.manifest_digests == (manifest_digest,)
    assert identity.repo_tags == ("docker.io/envctl-ut/busybox:1",)


def test_the_legacy_layout_gets_the_manifest_digest_the_containerd_store_writes(tmp_path):
    # The manifest containerd's importer writes for a tarball without index.json, with the layer
    # uncompressed as `docker save` writes it (the integration tests check it against Docker 28).
    path = tmp_path / "legacy.tar"
    path.write_bytes(legacy())
    expected = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": CONFIG_DIGEST,
                                      "size": len(CONFIG)},
                           "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar",
                                       "digest": "sha256:" + _sha(LAYER), "size": len(LAYER)}]}, separators=(",", ":"))
    assert read_identity(path).manifest_digests == ("sha256:" + _sha(expected.encode()),)


@pytest.mark.parametrize("compression", ["gzip", "bzip2", "xz", "zstd"])
def test_a_truncated_compressed_tarball_is_refused_with_its_format(tmp_path, compression):
    packed = COMPRESSORS[compression](legacy())
    path = tmp_path / "cut"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ImageError, match=f"is not a readable {compression}-compressed image tarball"):
        read_identity(path)


@pytest.mark.parametrize("frames", ["one", "zeros alone", "with checksum"])
def test_a_zstd_tarball_cut_anywhere_in_its_last_frame_is_refused(tmp_path, frames):
    """python-zstandard's reader ends without an error where its input ends inside a frame: cut
    in the end-of-archive zeros, the shorter archive read as whole (tarfile stops at the end of
    its input as at those zeros). Each cut from the last frame's header to its last byte."""
    data = legacy()
    assert data[-1024:] == bytes(1024)
    if frames == "one":
        head, last = b"", _zstd(data)
    elif frames == "zeros alone":
        head, last = _zstd(data[:-1024]), _zstd(data[-1024:])
    else:
        head, last = b"", zstandard.ZstdCompressor(write_checksum=True).compress(data)
    path = tmp_path / "cut.tar.zst"
    # A file of the first frame's magic alone or less is no zstd file (compression_of); a later
    # frame may be cut anywhere.
    for keep in sorted({1, 3, 4, 5, 6, len(last) // 2, len(last) - 5, len(last) - 4, len(last) - 1} - (set() if head else {1, 3, 4})):
        path.write_bytes(head + last[:keep])
        with pytest.raises(ImageError, match="zstd-compressed image tarball .ZstdError: the file ends inside a zstd frame"):
            read_identity(path)
    path.write_bytes(head + last)
    assert read_identity(path).image_id == CONFIG_DIGEST


def test_a_skippable_zstd_frame_is_passed_over(tmp_path):
    """RFC 8878 3.1.2: a skippable frame (magic 0x184D2A5?, a 4-byte size, that many bytes) may
    come between frames or after them; the zstd tool passes over it (one first is no zstd file to
    docker, which tells zstd by the frame magic)."""
    skippable = (0x184D2A5A).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"envct"
    path = tmp_path / "skip.tar.zst"
    path.write_bytes(_zstd(legacy()[:5000]) + skippable + _zstd(legacy()[5000:]) + skippable)
    assert read_identity(path).image_id == CONFIG_DIGEST


def test_corrupt_deflate_data_is_refused_with_its_format(tmp_path):
    """A gzip whose deflate data is damaged (its first block of the reserved type 3, RFC 1951
    3.2.3): whichever library inflates it (ISA-L's errors are not zlib's), the answer is the same
    clear error."""
    packed = bytearray(gzip.compress(legacy(), mtime=0))
    packed[10] |= 0b110  # the byte after the 10-byte header (no name written by gzip.compress): BTYPE 11
    path = tmp_path / "damaged.tar.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(ImageError, match="is not a readable gzip-compressed image tarball"):
        read_identity(path)


def test_a_tarball_without_manifest_or_index_is_not_an_image(tmp_path):
    path = tmp_path / "files.tar"
    with tarfile.open(path, "w") as archive:
        _add(archive, "etc/hello", b"hi\n")
    with pytest.raises(ImageError, match="has neither manifest.json nor index.json"):
        read_identity(path)


@pytest.mark.parametrize("written, same_as", [
    ("docker.io/library/busybox:1", "busybox:1"),
    ("index.docker.io/library/busybox:1", "busybox:1"),
    ("library/busybox:1", "busybox:1"),
    ("busybox", "busybox:latest"),
    ("docker.io/library/busybox", "busybox:latest"),
    ("docker.io/envctl/sdk:2.1", "envctl/sdk:2.1"),
    ("localhost:5000/sdk", "localhost:5000/sdk:latest"),
])
def test_names_written_in_full_are_the_names_docker_prints(written, same_as):
    assert references.same(written, same_as)


@pytest.mark.parametrize("a, b", [
    ("busybox:1", "busybox:2"),
    ("localhost/sdk:1", "sdk:1"),  # localhost is a registry
    ("registry.example.com/library/busybox:1", "busybox:1"),  # another registry's library
    ("myorg/sdk:1", "library/sdk:1"),
])
def test_different_names_stay_different(a, b):
    assert not references.same(a, b)


def test_normal_forms():
    assert references.normalize("busybox") == "docker.io/library/busybox:latest"
    assert references.normalize("localhost:5000/a/b") == "localhost:5000/a/b:latest"
    digest = "sha256:" + "0" * 64
    assert references.normalize(f"busybox@{digest}") == f"docker.io/library/busybox@{digest}"


def _legacy_images(entries: list[tuple[bytes, list[str] | None]]) -> bytes:
    """`docker save a b`: one manifest.json entry per image (moby image/tarexport/save.go)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        manifest = []
        for number, (config, tags) in enumerate(entries):
            layer_id = str(number) * 64
            _add(archive, f"{layer_id}/layer.tar", LAYER)
            _add(archive, f"{_sha(config)}.json", config)
            manifest.append({"Config": f"{_sha(config)}.json", "RepoTags": tags, "Layers": [f"{layer_id}/layer.tar"]})
        _add(archive, "manifest.json", json.dumps(manifest).encode())
    return buffer.getvalue()


OTHER_CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["true"]},
                           "rootfs": {"type": "layers", "diff_ids": ["sha256:" + _sha(LAYER)]}}).encode()


def test_a_tarball_of_several_images_gives_the_one_tagged_the_manifest_ref(tmp_path):
    # `docker save a:1 b:1` loads both; the manifest's image.ref says which one it runs.
    path = tmp_path / "two.tar"
    path.write_bytes(_legacy_images([(CONFIG, ["envctl-ut/a:1"]), (OTHER_CONFIG, ["envctl-ut/b:1", "envctl-ut/b:2"])]))
    identity = read_identity(path)
    assert [i.repo_tags for i in identity.images] == [("envctl-ut/a:1",), ("envctl-ut/b:1", "envctl-ut/b:2")]
    b = identity.image_for("docker.io/envctl-ut/b:2")
    assert b.image_id == "sha256:" + _sha(OTHER_CONFIG) and b.repo_tags == ("envctl-ut/b:1", "envctl-ut/b:2")
    assert len(b.manifest_digests) == 1 and b.manifest_digests != identity.image_for("envctl-ut/a:1").manifest_digests
    assert identity.image_for("envctl-ut/a:1").image_id == CONFIG_DIGEST
    neither = identity.image_for("envctl-ut/c:1")  # the caller says what the tarball holds
    assert neither.repo_tags == ("envctl-ut/a:1", "envctl-ut/b:1", "envctl-ut/b:2")


def test_a_tarball_of_several_images_saved_by_id_gives_the_pinned_one(tmp_path):
    path = tmp_path / "two-by-id.tar"  # `docker save <ID> <ID>`
    path.write_bytes(_legacy_images([(CONFIG, None), (OTHER_CONFIG, None)]))
    pinned = "sha256:" + _sha(OTHER_CONFIG)
    assert read_identity(path).image_for("envctl-ut/x:1", pinned).image_id == pinned


def _oci_layout(names: list[dict]) -> bytes:
    """An OCI layout as `skopeo copy ... oci-archive:FILE:NAME` and `podman save --format
    oci-archive` write it: no manifest.json, one index.json entry per name with the OCI
    `org.opencontainers.image.ref.name` annotation (containers/image oci/layout)."""
    manifest = json.dumps({"schemaVersion": 2, "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                                          "digest": CONFIG_DIGEST, "size": len(CONFIG)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + _sha(LAYER),
                                       "size": len(LAYER)}]}).encode()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                "digest": "sha256:" + _sha(manifest), "size": len(manifest),
                                                **({"annotations": a} if a else {})} for a in names]}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        _add(archive, "blobs")
        _add(archive, "blobs/sha256")
        for data in (LAYER, CONFIG, manifest):
            _add(archive, f"blobs/sha256/{_sha(data)}", data)
        _add(archive, "index.json", json.dumps(index).encode())
        _add(archive, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    return buffer.getvalue()


def test_an_oci_archive_is_named_by_its_ref_name_annotation(tmp_path):
    path = tmp_path / "skopeo-oci.tar"
    path.write_bytes(_oci_layout([{"org.opencontainers.image.ref.name": "envctl-ut/busybox:1"}]))
    identity = read_identity(path)
    assert identity.repo_tags == ("envctl-ut/busybox:1",) and identity.image_id == CONFIG_DIGEST


def test_the_containerd_name_wins_over_the_ref_name(tmp_path):
    path = tmp_path / "both.tar"
    path.write_bytes(_oci_layout([{"io.containerd.image.name": "docker.io/envctl-ut/busybox:1",
                                   "org.opencontainers.image.ref.name": "1"}]))
    assert read_identity(path).repo_tags == ("docker.io/envctl-ut/busybox:1",)


def test_an_oci_archive_with_several_names_gives_the_one_asked_for(tmp_path):
    path = tmp_path / "two-names.tar"
    path.write_bytes(_oci_layout([{"org.opencontainers.image.ref.name": "envctl-ut/busybox:1"},
                                  {"org.opencontainers.image.ref.name": "envctl-ut/busybox:stable"}]))
    chosen = read_identity(path).image_for("envctl-ut/busybox:stable")
    assert chosen.repo_tags == ("envctl-ut/busybox:stable",) and chosen.image_id == CONFIG_DIGEST


def test_an_oci_archive_without_a_name_names_no_image(tmp_path):
    path = tmp_path / "noname.tar"
    path.write_bytes(_oci_layout([{}]))
    assert read_identity(path).repo_tags == ()


def test_every_image_of_a_tarball_is_remembered(tmp_path):
    from envctl.images import IdentityCache, identify

    path = tmp_path / "two.tar"
    path.write_bytes(_legacy_images([(CONFIG, ["envctl-ut/a:1"]), (OTHER_CONFIG, ["envctl-ut/b:1"])]))
    cache = IdentityCache(tmp_path / "tarballs.json")
    first = identify(path, cache, need_sha256=False)
    again = identify(path, cache, need_sha256=False)  # from the cache file
    assert again == first and again.image_for("envctl-ut/b:1").image_id == "sha256:" + _sha(OTHER_CONFIG)


# -- multi-platform images ------------------------------------------------------------------
from multiplatform import multi_platform  # noqa: E402  (the layouts buildx and Docker 28 write)
from envctl.image_platforms import Platform, normalize, of_engine, parse  # noqa: E402
from envctl.images import IdentityCache, identify  # noqa: E402

AMD64, ARM64 = Platform("linux", "amd64"), Platform("linux", "arm64")


@pytest.mark.parametrize("nest, attest", [(1, False), (1, True), (2, True), (3, False)])
def test_a_multi_platform_index_gives_each_platform_its_config(tmp_path, nest, attest):
    """amd64 + arm64 under one index, an index inside an index, buildx attestations beside."""
    data, made = multi_platform(oci(with_manifest_json=False)[0], nest=nest, attest=attest)
    path = tmp_path / "multi.tar"
    path.write_bytes(data)
    identity = read_identity(path)
    assert identity.multi_platform and identity.manifest_digests == (made["index"],)
    assert dict(identity.images[0].platforms) == {"linux/amd64": made["configs"]["linux/amd64"],
                                                  "linux/arm64": made["configs"]["linux/arm64/v8"]}
    assert identity.for_platform(AMD64).image_id == made["configs"]["linux/amd64"]
    arm = identity.for_platform(ARM64)
    assert arm.image_id == made["configs"]["linux/arm64/v8"] and arm.ids == (arm.image_id, made["index"])
    assert arm.repo_tags == ("docker.io/envctl-ut/busybox:1",)


def test_a_multi_platform_image_without_the_engines_platform_is_refused(tmp_path):
    data, _ = multi_platform(oci(with_manifest_json=False)[0], platforms=(("arm64", "v8"), ("s390x", "")))
    path = tmp_path / "multi.tar"
    path.write_bytes(data)
    with pytest.raises(ImageError) as caught:
        read_identity(path).for_platform(AMD64)
    assert "multi-platform image of linux/arm64, linux/s390x; this engine runs linux/amd64" in caught.value.message
    assert "nothing was loaded" in caught.value.message


def test_docker_28_save_of_a_multi_platform_image_keeps_manifest_json_s_config(tmp_path):
    """manifest.json names the saving engine's platform's config, index.json the index: the
    classic store loads the former (ID = that config), the containerd store the latter."""
    data, made = multi_platform(oci(with_manifest_json=False)[0], attest=True, manifest_json=True, tags=["envctl-ut/busybox:1"])
    path = tmp_path / "saved.tar"
    path.write_bytes(data)
    identity = read_identity(path)
    assert identity.image_id == made["configs"]["linux/amd64"] and identity.manifest_digests == (made["index"],)
    assert identity.docker_manifest and identity.repo_tags == ("envctl-ut/busybox:1",)
    assert identity.for_platform(ARM64).image_id == made["configs"]["linux/arm64/v8"]


def test_a_multi_platform_index_with_a_platform_left_out_reads_the_rest(tmp_path):
    """`docker save --platform` and a partial pull leave other platforms' manifests out."""
    data, made = multi_platform(oci(with_manifest_json=False)[0])
    members = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive if m.isfile()}
    members.pop("blobs/sha256/" + made["manifests"]["linux/arm64/v8"][7:])
    path = tmp_path / "partial.tar"
    with tarfile.open(path, "w") as archive:
        for name, body in members.items():
            _add(archive, name, body)
    identity = read_identity(path)
    assert not identity.multi_platform and identity.image_id == made["configs"]["linux/amd64"]


def test_a_missing_config_of_any_platform_is_an_incomplete_tarball(tmp_path):
    data, made = multi_platform(oci(with_manifest_json=False)[0])
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive if m.isfile()}
    members.pop("blobs/sha256/" + made["configs"]["linux/arm64/v8"][7:])
    path = tmp_path / "broken.tar"
    with tarfile.open(path, "w") as archive:
        for name, body in members.items():
            _add(archive, name, body)
    with pytest.raises(ImageError, match="is incomplete: its manifest names the config"):
        read_identity(path)


def test_every_platform_is_remembered(tmp_path):
    data, made = multi_platform(oci(with_manifest_json=False)[0])
    path = tmp_path / "multi.tar"
    path.write_bytes(data)
    cache = IdentityCache(tmp_path / "identities.json")
    first = identify(path, cache, need_sha256=False)
    again = identify(path, cache, need_sha256=False)
    assert again == first and again.for_platform(ARM64).image_id == made["configs"]["linux/arm64/v8"]


@pytest.mark.parametrize("written, same_as", [
    (("linux", "x86_64"), AMD64), (("linux", "aarch64"), ARM64), (("linux", "arm64", "v8"), ARM64),
    (("linux", "arm"), Platform("linux", "arm", "v7")), (("Linux", "AMD64"), AMD64),
])
def test_platforms_are_normalised_as_containerd_does(written, same_as):
    assert normalize(*written) == same_as == parse(str(same_as))


class _Engine:
    """What `GET /version` and `GET /info` answer (docker-py's client.version(), info())."""

    def __init__(self, arch: str, machine: str):
        self.arch, self.machine = arch, machine

    def version(self):
        return {"Os": "linux", "Arch": self.arch, "Version": "28.5.2"}

    def info(self):
        return {"Architecture": self.machine, "OSType": "linux"}


@pytest.mark.parametrize("arch, machine, platform", [
    ("amd64", "x86_64", "linux/amd64"), ("arm64", "aarch64", "linux/arm64"),
    ("arm", "armv7l", "linux/arm/v7"), ("arm", "armv6l", "linux/arm/v6"),
])
def test_the_engines_platform_is_read_from_version_and_info(arch, machine, platform):
    assert str(of_engine(_Engine(arch, machine))) == platform


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_a_tarball_changed_while_its_identity_is_read_is_refused(tmp_path, compression):
    """The sha256 is read beside the identity by a second read of the file (envctl/file_digest.py):
    a file written meanwhile (its mtime moves, here from the first piece hashed) may have given
    the two reads different bytes, and is said to have changed, not given a digest."""
    path = tmp_path / "image.tar"
    path.write_bytes(COMPRESSORS[compression](legacy()))
    with pytest.raises(ImageError, match="changed while envctl read it"):
        read_identity(path, with_sha256=True, progress=moves_mtime_once(path))


def test_a_corrupt_gzip_tarball_leaves_no_hashing_thread_behind(tmp_path):
    """The identity read fails on the first bytes; the sha256 beside it is stopped, not left
    reading the rest of a large file."""
    path = tmp_path / "image.tar.gz"
    path.write_bytes(gzip.compress(legacy())[:10] + b"\xff" * 20 + os.urandom(16 << 20))
    with pytest.raises(ImageError, match="not a readable gzip-compressed"):
        read_identity(path)
    assert not any(t.name == "envctl-sha256" and t.is_alive() for t in threading.enumerate())
