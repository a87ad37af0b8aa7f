"""The two test engines are what they stand for: the machine's Docker 20.10 with the classic image
store, and a newer Docker with the containerd image store (tests/engines.py), where the same
`docker save` tarball gets a different image ID. Plus `up` of a tarball as each engine itself
writes it with `docker save` (Docker 25+ writes an OCI layout with blobs/sha256/ and index.json).

Facts used: `docker info` shows `driver-type: io.containerd.snapshotter.v1` under the Storage
Driver when the containerd image store is on, and the image ID there is the digest of the image's
manifest (or index), not of its config (docs.docker.com/engine/storage/containerd/)."""

import hashlib
import json
import subprocess
import tarfile
import uuid

import docker
import pytest

from engines import CLASSIC, CONTAINERD, SNAPSHOTTER_DRIVER_TYPE, connect, storage_driver_type
from support import IMAGE
from testimages import save_image


def _major(version: str) -> int:
    return int(version.split(".")[0])


def test_the_second_engine_is_a_newer_docker_on_the_containerd_image_store():
    classic, containerd = connect(CLASSIC).client, connect(CONTAINERD).client
    assert classic.info()["Driver"] == "overlay2" and storage_driver_type(classic) is None
    assert containerd.info()["Driver"] == "overlayfs"
    assert storage_driver_type(containerd) == SNAPSHOTTER_DRIVER_TYPE
    classic_version, containerd_version = classic.version()["Version"], containerd.version()["Version"]
    assert _major(classic_version) == 20 and _major(containerd_version) >= 28, (classic_version, containerd_version)
    # Two engines, not one seen twice; and the machine's engine keeps its bridge (a dockerd with
    # "bridge": "none" that could see it would delete it).
    assert classic.info()["ID"] != containerd.info()["ID"]
    assert subprocess.run(["ip", "link", "show", "docker0"], capture_output=True).returncode == 0


def test_the_same_tarball_is_its_config_digest_on_one_store_and_its_manifest_digest_on_the_other(saved_tarballs):
    plain = saved_tarballs["plain"]
    with tarfile.open(plain) as archive:
        config_name = json.load(archive.extractfile("manifest.json"))[0]["Config"]
        config_digest = "sha256:" + hashlib.sha256(archive.extractfile(config_name).read()).hexdigest()
    assert saved_tarballs["config_digest"] == config_digest
    ids = {}
    for kind in (CLASSIC, CONTAINERD):
        client = connect(kind).client
        client.images.load(plain.read_bytes())
        try:
            image = client.images.get(IMAGE)
            ids[kind.store] = image.id
            if kind is CONTAINERD:  # the descriptor the store keeps for the image: its manifest
                descriptor = image.attrs["Descriptor"]
                assert descriptor["digest"] == image.id and "manifest" in descriptor["mediaType"], descriptor
                assert image.attrs["Config"] is not None
        finally:
            client.images.remove(IMAGE, force=True)
    assert ids["classic"] == config_digest
    assert ids["containerd"] != config_digest and ids["containerd"].startswith("sha256:")


@pytest.mark.both_engines
def test_up_loads_a_tarball_this_engine_saved(make_env, engine, tmp_path):
    ref = f"envctl-it/own-{uuid.uuid4().hex[:8]}:1"  # its own tag: other tests move IMAGE's
    tarball = tmp_path / "own.tar"
    image_id = save_image(engine, {"etc/unique": uuid.uuid4().hex.encode()}, tarball, ref)
    with tarfile.open(tarball) as archive:  # Docker 25+ writes an OCI layout beside manifest.json
        assert ("index.json" in archive.getnames()) == (_major(engine.version()["Version"]) >= 25)
    env = make_env("cpu")
    env.write(f"""\
        device: {{kind: cpu}}
        image: {{ref: {ref}, tarball: {{source: {tarball}}}}}
        entrypoints:
          ok: {{run: cat /etc/unique}}
        """)
    try:
        done = env.run("up", str(env.manifest))
        assert done.returncode == 0, done.stderr
        assert f"image      {ref}: loaded" in done.stderr
        assert engine.images.get(ref).id == image_id
        again = env.run("up", str(env.manifest))
        assert again.returncode == 0 and f"image      {ref}: present" in again.stderr, again.stderr
    finally:
        env.run("down", env.container)
        try:
            engine.images.remove(ref, force=True)
        except docker.errors.ImageNotFound:
            pass
