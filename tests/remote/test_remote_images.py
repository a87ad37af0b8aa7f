"""Image tarballs on a lab host's own engine (Debian 12's Docker 20.10, which refuses zstd):
a compressed format the engine may not take is decompressed here and streamed to the host's
engine; a tarball saved by image ID is loaded and tagged there when image.id pins it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import docker
import pytest
import zstandard

from testimages import _rootfs_tar

REF = "envctl-it/remote-images:1"

BODY = """\
device: {{kind: cpu}}
image:
  ref: {ref}
  id: {pin}
  tarball: {{source: {tarball}}}
entrypoints:
  hello:
    run: cat /etc/remote-images
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(zstd tarball, tarball saved by ID, config digest) of an image made here and removed again."""
    client = docker.from_env()
    client.api.import_image_from_data(_rootfs_tar({"etc/remote-images": b"from afar\n"}), repository="envctl-it/remote-images",
                                      tag="1")
    image = client.images.get(REF)
    directory = tmp_path_factory.mktemp("remote-images")
    plain, by_id = directory / "image.tar", directory / "by-id.tar"
    for path, chunks in ((plain, image.save(named=True)), (by_id, client.api.get_image(image.id))):
        with open(path, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
    client.images.remove(REF, force=True)
    packed = directory / "image.tar.zst"
    packed.write_bytes(zstandard.ZstdCompressor().compress(plain.read_bytes()))
    return packed, by_id, image.id


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("which", ["zstd", "by_id"])
def test_a_tarball_the_host_engine_cannot_take_as_it_is_is_loaded_there(world, lab, saved, which):
    packed, by_id, config_digest = saved
    tarball = packed if which == "zstd" else by_id
    lab.docker("lab2", "rmi", "-f", REF, config_digest)  # neither tagged nor kept untagged by an earlier test
    manifest = world.write(BODY.format(ref=REF, pin=config_digest, tarball=tarball))
    up = world.run("up", str(manifest), "--host", "lab2")
    assert up.returncode == 0, up.stderr
    assert f"image      {REF}: loaded" in up.stderr
    inspected = lab.docker("lab2", "image", "inspect", "--format", "{{.Id}}", REF)
    assert inspected.stdout.strip() == config_digest
    ran = world.run("exec", "hello", "--host", "lab2", "--env", world.container)
    assert ran.returncode == 0 and ran.stdout == "from afar\n", ran.stderr
    again = world.run("up", str(manifest), "--host", "lab2")
    assert again.returncode == 0 and f"image      {REF}: present" in again.stderr, again.stderr
    if which == "zstd":  # streamed decompressed through the engine's socket: no copy of the zstd file on the host
        assert not world.remote("lab2", f"{world.data_dir()}/cache/blobs/sha256/{_sha(packed)}").exists()


def test_a_host_that_downloads_a_zstd_tarball_itself_decompresses_it_for_its_engine(world, lab, saved, monkeypatch):
    from servers.http_files import FileServer

    packed, _, config_digest = saved
    lab.docker("lab1", "rmi", "-f", REF, config_digest)
    monkeypatch.setattr(FileServer, "address", lab.gateway)  # served on the lab network
    with FileServer(files={"image.tar.zst": packed.read_bytes()}) as mirror:
        manifest = world.write(BODY.format(ref=REF, pin=config_digest, tarball=mirror.url_for("image.tar.zst")))
        world.write_inventory(lab1={"fetch": "remote"})
        up = world.run("up", str(manifest), "--host", "lab1")
    assert up.returncode == 0, up.stderr
    assert f"image      {REF}: loaded" in up.stderr
    assert lab.docker("lab1", "image", "inspect", "--format", "{{.Id}}", REF).stdout.strip() == config_digest
    assert world.remote("lab1", f"{world.data_dir()}/cache/blobs/sha256/{_sha(packed)}").is_file()  # downloaded there
    assert not (Path(world.base) / "cache" / "blobs" / "sha256" / _sha(packed)).exists()  # not through this machine


def test_a_tarball_on_the_host_whose_bytes_changed_since_it_arrived_is_sent_again_and_loaded(world, lab, tmp_path):
    # The host's copy is checked when it arrives; later only its size is: one of the right size
    # but other bytes was found "present" and docker load refused it, on every up after.
    from engines import CLASSIC, connect
    from testimages import save_image

    tarball = tmp_path / "image.tar"
    save_image(connect(CLASSIC).client, {"etc/remote-images": b"changed on the host\n"}, tarball, REF)
    lab.docker("lab1", "rmi", "-f", REF)
    world.cleanups.append(lambda: lab.docker("lab1", "rmi", "-f", REF))
    blob = world.remote("lab1", f"{world.data_dir()}/cache/blobs/sha256/{_sha(tarball)}")
    blob.parent.mkdir(parents=True)
    damaged = bytearray(tarball.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # inside the layer: docker load says its diffID is wrong
    blob.write_bytes(bytes(damaged))
    manifest = world.write("device: {kind: cpu}\n" f"image: {{ref: {REF}, tarball: {{source: {tarball}}}}}\n")
    up = world.run("up", str(manifest), "--host", "lab1")
    assert up.returncode == 0, up.stderr
    assert f"image      {REF}: loaded" in up.stderr
    assert _sha(blob) == _sha(tarball)
