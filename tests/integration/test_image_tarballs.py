"""Whatever `docker load` takes, envctl takes, with the same identity, on both image stores.

Real `docker save` tarballs of a small local image: saved by Debian 12's Docker 20.10 (the
legacy layout), recompressed in every format `docker load` reads (gzip, bzip2, xz, zstd —
20.10 itself refuses zstd: "invalid tar header"), repacked with `tar -C dir -cf out.tar .`
(members `./manifest.json`), saved by image ID (RepoTags null), with names written in full; and
saved by Docker 28 (index.json + oci-layout beside manifest.json). Each goes through the CLI
(`envctl image`, `up --dry-run`, `up`) on the classic store (ID = config digest) and the containerd store
(ID = manifest digest), and the image ends up with the ID that engine's own `docker load` gives.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import subprocess
import tarfile
import uuid
from pathlib import Path

import docker
import pytest
import zstandard

from engines import CLASSIC, CONTAINERD, connect
from testimages import _rootfs_tar

pytestmark = pytest.mark.both_engines

REF = "envctl-it/tarballs:1"  # this module's own image: other tests use IMAGE

MANIFEST = """\
device: {{kind: cpu}}
image:
  ref: {ref}
{pin}  tarball: {{source: {tarball}}}
entrypoints:
  hello:
    run: cat /etc/tarballs
"""


def _save(client, ref: str, path: Path, by_id: bool = False) -> str:
    image = client.images.get(ref)
    chunks = client.api.get_image(image.id) if by_id else image.save(named=True)
    with open(path, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
    return image.id


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict:
    """Tarballs of one image (unique content), written by the engines that users have."""
    directory = tmp_path_factory.mktemp("tarballs")
    classic = connect(CLASSIC).client
    classic.api.import_image_from_data(_rootfs_tar({"etc/tarballs": uuid.uuid4().hex.encode() + b"\n"}),
                                       repository="envctl-it/tarballs", tag="1")
    plain, by_id = directory / "image.tar", directory / "by-id.tar"
    config_digest = _save(classic, REF, plain)
    _save(classic, REF, by_id, by_id=True)
    classic.images.remove(REF, force=True)

    packed = {"none": plain}
    data = plain.read_bytes()
    for name, compress in (("gzip", gzip.compress), ("bzip2", bz2.compress), ("xz", lzma.compress),
                           ("zstd", lambda d: zstandard.ZstdCompressor().compress(d))):
        packed[name] = directory / f"image.tar.{name}"
        packed[name].write_bytes(compress(data))

    # Unpacked to edit, packed again: members are ./manifest.json, ./<id>/layer.tar, ...
    unpacked = directory / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "-C", str(unpacked), "-xf", str(plain)], check=True)
    dotted = directory / "dotted.tar"
    subprocess.run(["tar", "-C", str(unpacked), "-cf", str(dotted), "."], check=True)

    # The names written in full, as tools other than Docker write them.
    manifest = json.loads((unpacked / "manifest.json").read_text())
    manifest[0]["RepoTags"] = ["docker.io/envctl-it/tarballs:1"]
    (unpacked / "manifest.json").write_text(json.dumps(manifest))
    full_names = directory / "full-names.tar"
    subprocess.run(["tar", "-C", str(unpacked), "-cf", str(full_names), "."], check=True)

    # Docker 28 writes an OCI layout (index.json, oci-layout, blobs/sha256) beside manifest.json.
    current = connect(CONTAINERD).client
    current.images.load(data)
    oci, oci_by_id = directory / "docker28.tar", directory / "docker28-by-id.tar"
    _save(current, REF, oci)
    _save(current, REF, oci_by_id, by_id=True)
    current.images.remove(REF, force=True)
    return {"packed": packed, "dotted": dotted, "by_id": by_id, "full_names": full_names, "oci": oci,
            "oci_by_id": oci_by_id, "config_digest": config_digest}


def engine_id(engine, tarball: Path) -> str:
    """The ID the engine's own `docker load` gives the tarball's image (removed again)."""
    engine.images.load(tarball.read_bytes())
    image = engine.api.inspect_image(REF)["Id"]
    engine.images.remove(REF, force=True)
    return image


@pytest.fixture
def absent(engine):
    def remove():
        try:
            engine.images.remove(REF, force=True)
        except docker.errors.ImageNotFound:
            pass

    remove()
    yield
    remove()


def manifest_for(env, tarball: Path, ref: str = REF, pin: str | None = None) -> Path:
    return env.write(MANIFEST.format(ref=ref, tarball=tarball, pin=f"  id: {pin}\n" if pin else ""))


@pytest.mark.parametrize("compression", ["none", "gzip", "bzip2", "xz", "zstd"])
def test_every_compression_is_loaded_with_the_id_docker_load_gives(make_env, engine, saved, absent, compression):
    expected = engine_id(engine, saved["packed"]["none"])
    env = make_env("cpu")
    manifest_for(env, saved["packed"][compression])
    done = env.run("image", str(env.manifest))
    assert done.returncode == 0, done.stderr
    assert f"image      {REF}: loaded" in done.stderr
    assert done.stdout.strip() == expected == engine.api.inspect_image(REF)["Id"]
    again = env.run("image", str(env.manifest))
    assert f"image      {REF}: present" in again.stderr, again.stderr


def test_a_zstd_tarball_goes_through_up_and_runs(make_env, engine, saved, absent):
    env = make_env("cpu")
    manifest_for(env, saved["packed"]["zstd"])
    done = env.run("up", str(env.manifest))
    assert done.returncode == 0, done.stderr
    ran = env.run("exec", "hello", "--env", env.container)
    assert ran.returncode == 0 and len(ran.stdout.strip()) == 32, ran.stderr


def test_members_written_dot_slash_are_loaded(make_env, engine, saved, absent):
    with tarfile.open(saved["dotted"]) as archive:
        assert "./manifest.json" in archive.getnames()  # what the test is about
    env = make_env("cpu")
    manifest_for(env, saved["dotted"])
    done = env.run("image", str(env.manifest))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == engine_id(engine, saved["packed"]["none"])


def test_names_written_in_full_are_the_names_docker_uses(make_env, engine, saved, absent):
    env = make_env("cpu")
    manifest_for(env, saved["full_names"])  # the tarball says docker.io/envctl-it/tarballs:1
    done = env.run("image", str(env.manifest))
    assert done.returncode == 0, done.stderr
    manifest_for(env, saved["packed"]["none"], ref="docker.io/envctl-it/tarballs:1")  # the manifest says it
    again = env.run("image", str(env.manifest))
    assert again.returncode == 0 and "docker.io/envctl-it/tarballs:1: present" in again.stderr, again.stderr


def test_a_ref_without_a_tag_is_latest(make_env, engine, saved, absent, tmp_path):
    unpacked = tmp_path / "u"
    unpacked.mkdir()
    subprocess.run(["tar", "-C", str(unpacked), "-xf", str(saved["packed"]["none"])], check=True)
    manifest = json.loads((unpacked / "manifest.json").read_text())
    manifest[0]["RepoTags"] = ["envctl-it/tarballs:latest"]
    (unpacked / "manifest.json").write_text(json.dumps(manifest))
    latest = tmp_path / "latest.tar"
    subprocess.run(["tar", "-C", str(unpacked), "-cf", str(latest), "."], check=True)
    env = make_env("cpu")
    manifest_for(env, latest, ref="envctl-it/tarballs")
    done = env.run("image", str(env.manifest))
    try:
        assert done.returncode == 0, done.stderr
        assert engine.api.inspect_image("envctl-it/tarballs:latest")["Id"] == done.stdout.strip()
    finally:
        for tag in ("envctl-it/tarballs:latest",):
            try:
                engine.images.remove(tag, force=True)
            except docker.errors.ImageNotFound:
                pass


def test_saved_by_id_without_a_pin_says_how_to_pin_it(make_env, saved, absent):
    with tarfile.open(saved["by_id"]) as archive:
        assert json.load(archive.extractfile("manifest.json"))[0]["RepoTags"] is None  # `docker save <ID>`
    env = make_env("cpu")
    manifest_for(env, saved["by_id"])
    done = env.run("image", str(env.manifest))
    assert done.returncode == 5
    assert f"{saved['by_id']} was saved by image ID" in done.stderr and "nothing was loaded" in done.stderr
    assert "image.id: sha256:" in done.stderr and f"docker save -o FILE {REF}" in done.stderr
    assert "fix image.ref" not in done.stderr


@pytest.mark.parametrize("saved_by", ["by_id", "oci_by_id"])  # Docker 20.10's layout and Docker 28's
def test_saved_by_id_with_a_pin_is_loaded_and_tagged(make_env, engine, engine_under_test, saved, absent, saved_by):
    with tarfile.open(saved[saved_by]) as archive:
        assert not json.load(archive.extractfile("manifest.json"))[0].get("RepoTags")  # what the test is about
    expected = engine_id(engine, saved["packed"]["none"] if saved_by == "by_id" else saved["oci"])
    pins = [saved["config_digest"]] + ([expected] if engine_under_test.store == "containerd" else [])
    for pin in pins:  # the config digest users copy from the classic store, or this engine's own ID
        try:
            engine.images.remove(REF, force=True)
        except docker.errors.ImageNotFound:
            pass
        try:
            engine.images.remove(expected, force=True)
        except docker.errors.ImageNotFound:
            pass
        env = make_env("cpu")
        manifest_for(env, saved[saved_by], pin=pin)
        done = env.run("image", str(env.manifest))
        assert done.returncode == 0, done.stderr
        assert f"image      {REF}: loaded" in done.stderr
        assert engine.api.inspect_image(REF)["Id"] == expected == done.stdout.strip()


def test_docker_28_oci_layout_is_loaded_on_both_engines(make_env, engine, saved, absent):
    with tarfile.open(saved["oci"]) as archive:
        names = archive.getnames()
    assert "index.json" in names and "oci-layout" in names and "manifest.json" in names
    env = make_env("cpu")
    manifest_for(env, saved["oci"], pin=saved["config_digest"])
    done = env.run("image", str(env.manifest))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == engine_id(engine, saved["oci"])


def test_a_pinned_config_digest_is_present_in_plan_and_up_once_loaded(make_env, engine, saved, absent):
    env = make_env("cpu")
    manifest_for(env, saved["packed"]["gzip"], pin=saved["config_digest"])
    before = env.run("up", "--dry-run", str(env.manifest))
    assert "→ load: not on the engine" in before.stdout, before.stdout
    assert env.run("up", str(env.manifest)).returncode == 0
    after = env.run("up", "--dry-run", str(env.manifest))
    assert "→ present: " in after.stdout, after.stdout
    again = env.run("up", str(env.manifest))
    assert again.returncode == 0 and f"image      {REF}: present" in again.stderr, again.stderr


def test_a_pinned_config_digest_is_present_when_someone_else_loaded_it(make_env, engine, saved, absent):
    # Loaded by `docker load`, not envctl: no record of it, the engine alone must tell.
    engine.images.load(saved["packed"]["none"].read_bytes())
    env = make_env("cpu")
    manifest_for(env, saved["packed"]["xz"], pin=saved["config_digest"])
    plan = env.run("up", "--dry-run", str(env.manifest))
    assert "→ present: " in plan.stdout, plan.stdout
    done = env.run("image", str(env.manifest))
    assert f"image      {REF}: present" in done.stderr, done.stderr


def test_a_pin_of_another_image_is_refused_before_loading(make_env, engine, saved, absent):
    env = make_env("cpu")
    other = "sha256:" + "ab" * 32
    manifest_for(env, saved["packed"]["zstd"], pin=other)
    done = env.run("image", str(env.manifest))
    assert done.returncode == 5
    assert f"the manifest pins {other}; nothing was loaded" in done.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(REF)


@pytest.mark.parametrize("compression", ["xz", "zstd"])
def test_a_truncated_compressed_tarball_loads_nothing(make_env, engine, saved, absent, tmp_path, compression):
    data = saved["packed"][compression].read_bytes()
    cut = tmp_path / f"cut.tar.{compression}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    env = make_env("cpu")
    manifest_for(env, cut)
    done = env.run("image", str(env.manifest))
    assert done.returncode == 5
    assert f"{cut} is not a readable {compression}-compressed image tarball" in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(REF)


OTHER = "envctl-it/tarballs-other:1"  # the second image of a `docker save a b` tarball


@pytest.fixture(scope="module")
def several(saved, tmp_path_factory) -> dict:
    """`docker save REF OTHER` by Debian 12's Docker 20.10: one manifest.json entry per image,
    both loaded by `docker load`; and its config digests."""
    classic = connect(CLASSIC)
    directory = tmp_path_factory.mktemp("several")
    classic.client.images.load(saved["packed"]["none"].read_bytes())
    classic.client.api.import_image_from_data(_rootfs_tar({"etc/tarballs": uuid.uuid4().hex.encode() + b"\n"}),
                                              repository=OTHER.split(":")[0], tag="1")
    other_config = classic.client.images.get(OTHER).id
    path = directory / "two-images.tar"
    subprocess.run(["docker", "save", "-o", str(path), REF, OTHER], check=True, timeout=120,
                   env={"DOCKER_HOST": classic.docker_host, "PATH": "/usr/local/bin:/usr/bin:/bin"})
    for ref in (REF, OTHER):
        classic.client.images.remove(ref, force=True)
    return {"path": path, "other_config_digest": other_config}


@pytest.fixture
def other_absent(engine):
    def remove():
        try:
            engine.images.remove(OTHER, force=True)
        except docker.errors.ImageNotFound:
            pass

    remove()
    yield
    remove()


@pytest.mark.parametrize("wanted", [REF, OTHER])
def test_a_tarball_of_several_images_gives_the_image_the_manifest_names(make_env, engine, engine_under_test, saved, several,
                                                                        absent, other_absent, wanted):
    with tarfile.open(several["path"]) as archive:
        assert len(json.load(archive.extractfile("manifest.json"))) == 2  # what the test is about
    env = make_env("cpu")
    manifest_for(env, several["path"], ref=wanted)
    done = env.run("image", str(env.manifest))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == engine.api.inspect_image(wanted)["Id"]
    assert engine.api.inspect_image(REF)["Id"] != engine.api.inspect_image(OTHER)["Id"]  # `docker load` loads both
    if engine_under_test.store == "classic":
        assert done.stdout.strip() == (saved["config_digest"] if wanted == REF else several["other_config_digest"])
    plan = env.run("up", "--dry-run", str(env.manifest))
    assert "→ present: " in plan.stdout, plan.stdout


def test_a_tarball_of_several_images_without_the_manifest_ref_names_them_all(make_env, engine, several, absent, other_absent):
    env = make_env("cpu")
    manifest_for(env, several["path"], ref="envctl-it/tarballs-third:1")
    done = env.run("image", str(env.manifest))
    assert done.returncode == 5
    # Named in the tarball's order, which `docker save` does not keep from its arguments.
    assert any(f"holds {a}, {b}, not envctl-it/tarballs-third:1; nothing was loaded" in done.stderr
               for a, b in ((REF, OTHER), (OTHER, REF))), done.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(REF)


@pytest.fixture(scope="module")
def oci_archive(saved, tmp_path_factory) -> dict:
    """An OCI layout as `skopeo copy ... oci-archive:FILE:NAME` (containers/image oci/layout,
    checked with skopeo 1.9.3) and `podman save --format oci-archive` write it: blobs/sha256,
    index.json whose entry carries only `org.opencontainers.image.ref.name`, oci-layout; no
    manifest.json. Made from Docker 28's save of the image (the same blobs)."""
    directory = tmp_path_factory.mktemp("oci-archive")
    unpacked = directory / "u"
    unpacked.mkdir()
    subprocess.run(["tar", "-C", str(unpacked), "-xf", str(saved["oci"])], check=True)
    index = json.loads((unpacked / "index.json").read_text())
    for descriptor in index["manifests"]:
        descriptor["annotations"] = {"org.opencontainers.image.ref.name": REF}
    (unpacked / "index.json").write_text(json.dumps(index))
    path = directory / "oci-archive.tar"
    subprocess.run(["tar", "-C", str(unpacked), "-cf", str(path), "blobs", "index.json", "oci-layout"], check=True)
    return {"path": path, "manifest_digest": index["manifests"][0]["digest"]}


def test_an_oci_archive_named_by_ref_name_is_loaded_and_tagged(make_env, engine, engine_under_test, oci_archive, absent):
    env = make_env("cpu")
    manifest_for(env, oci_archive["path"])
    done = env.run("image", str(env.manifest))
    if engine_under_test.store == "classic":  # Docker 20.10 loads manifest.json only
        assert done.returncode == 5
        assert "is an OCI layout without manifest.json" in done.stderr and "skopeo copy oci-archive:" in done.stderr
        assert "Traceback" not in done.stderr
        return
    try:
        # Docker 28 keeps the ref.name as written (`envctl-it/tarballs:1`, not docker.io/...):
        # neither `docker run` nor envctl would find it under REF until it is tagged.
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == oci_archive["manifest_digest"] == engine.api.inspect_image(REF)["Id"]
        plan = env.run("up", "--dry-run", str(env.manifest))
        assert "→ present: " in plan.stdout, plan.stdout
    finally:
        try:
            engine.images.remove(oci_archive["manifest_digest"], force=True)  # the name as written too
        except docker.errors.ImageNotFound:
            pass


@pytest.fixture(scope="module")
def multi(saved, tmp_path_factory) -> dict:
    """Multi-platform tarballs of the image (linux/amd64 + linux/arm64/v8, valid blobs), made
    from Docker 28's save of it (tests/multiplatform.py): `bare`, an OCI layout as buildx's
    `--output type=oci` writes it (index.json → index → index → manifests, with attestation
    manifests); `saved`, as Docker 28.5.2's `docker save` writes a multi-platform image
    (manifest.json naming the amd64 config beside index.json naming the index); `foreign`, of
    arm64 and s390x only."""
    from multiplatform import multi_platform

    directory = tmp_path_factory.mktemp("multi")
    single = saved["oci"].read_bytes()
    found = {}
    for name, kwargs in (("bare", {"nest": 2, "attest": True}), ("saved", {"attest": True, "manifest_json": True, "tags": [REF]}),
                         ("foreign", {"platforms": (("arm64", "v8"), ("s390x", ""))})):
        data, made = multi_platform(single, **kwargs)
        path = directory / f"{name}.tar"
        path.write_bytes(data)
        found[name] = {"path": path, **made}
    return found


def test_a_multi_platform_oci_layout_is_loaded_as_the_engine_loads_it(make_env, engine, engine_under_test, multi, absent):
    tarball = multi["bare"]
    # Docker 28 names the image by the index digest (its own `docker load` says so).
    expected = engine_id(engine, tarball["path"]) if engine_under_test.store == "containerd" else None
    env = make_env("cpu")
    manifest_for(env, tarball["path"], pin=tarball["configs"]["linux/amd64"])  # the config digest users copy
    done = env.run("image", str(env.manifest))
    if engine_under_test.store == "classic":  # Docker 20.10 loads manifest.json only
        assert done.returncode == 5, done.stderr
        assert "is an OCI layout without manifest.json" in done.stderr
        assert f"skopeo copy --override-os linux --override-arch amd64 oci-archive:{tarball['path']}" in done.stderr
        assert "Traceback" not in done.stderr and "platform images" not in done.stderr
        return
    try:
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == tarball["index"] == expected == engine.api.inspect_image(REF)["Id"]
        again = env.run("image", str(env.manifest))
        assert f"image      {REF}: present" in again.stderr, again.stderr
        plan = env.run("up", "--dry-run", str(env.manifest))
        assert "→ present: " in plan.stdout, plan.stdout
        up = env.run("up", str(env.manifest))
        assert up.returncode == 0, up.stderr
        ran = env.run("exec", "hello", "--env", env.container)
        assert ran.returncode == 0 and len(ran.stdout.strip()) == 32, ran.stderr
    finally:
        assert env.run("down", env.container).returncode in (0, 4)


def test_a_pin_of_another_platform_is_refused_before_loading(make_env, engine, engine_under_test, multi, absent):
    """The image the engine runs is its own platform's: a pin of the arm64 config is refused
    before loading on an amd64 engine (on the classic store, which loads no OCI layout, too)."""
    tarball = multi["bare"]
    env = make_env("cpu")
    manifest_for(env, tarball["path"], pin=tarball["configs"]["linux/arm64/v8"])
    done = env.run("image", str(env.manifest))
    assert done.returncode == 5
    assert f"the manifest pins {tarball['configs']['linux/arm64/v8']}; nothing was loaded" in done.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(REF)


def test_docker_28_save_of_a_multi_platform_image_is_loaded_on_both_engines(make_env, engine, multi, absent):
    tarball = multi["saved"]
    expected = engine_id(engine, tarball["path"])  # 20.10: the amd64 config; 28: the index digest
    assert expected in (tarball["configs"]["linux/amd64"], tarball["index"])
    env = make_env("cpu")
    manifest_for(env, tarball["path"], pin=tarball["configs"]["linux/amd64"])
    done = env.run("image", str(env.manifest))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected == engine.api.inspect_image(REF)["Id"]
    again = env.run("image", str(env.manifest))
    assert f"image      {REF}: present" in again.stderr, again.stderr


def test_a_multi_platform_image_without_the_engines_platform_loads_nothing(make_env, engine, engine_under_test, multi, absent):
    tarball = multi["foreign"]
    env = make_env("cpu")
    manifest_for(env, tarball["path"])
    done = env.run("image", str(env.manifest))
    assert done.returncode == 5 and "Traceback" not in done.stderr
    if engine_under_test.store == "containerd":
        assert "multi-platform image of linux/arm64, linux/s390x; this engine runs linux/amd64" in done.stderr
    else:
        assert "is an OCI layout without manifest.json" in done.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(REF)
