"""Pulled images' references: their parts as Docker normalises them, the name a container runs,
the lock key, the name pulled through a mirror (the user configuration's mirrors.registries),
and what the manifest format accepts and refuses for `image.pull`."""

from __future__ import annotations

import pytest

from envctl.errors import ManifestError
from envctl.manifest.loader import load_file
from envctl.registry_refs import ImageName, is_loopback, lock_key, mirror_prefix, parse, through_mirror

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("written, registry, repository, tag, digest", [
    ("ubuntu", "docker.io", "library/ubuntu", "latest", None),
    ("ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", None),
    ("docker.io/library/ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", None),
    ("index.docker.io/ascendai/cann:8.0", "docker.io", "ascendai/cann", "8.0", None),
    ("ascendai/cann:8.0", "docker.io", "ascendai/cann", "8.0", None),
    (f"quay.io/ascend/vllm-ascend:v0.7.3@{DIGEST}", "quay.io", "ascend/vllm-ascend", "v0.7.3", DIGEST),
    (f"127.0.0.1:5000/a/b:1@{DIGEST}", "127.0.0.1:5000", "a/b", "1", DIGEST),
    ("localhost/x", "localhost", "x", "latest", None),
    ("swr.cn-south-1.myhuaweicloud.com/ascendhub/mindie:1.0.0-800I-A2-py311-openeuler24.03-lts",
     "swr.cn-south-1.myhuaweicloud.com", "ascendhub/mindie", "1.0.0-800I-A2-py311-openeuler24.03-lts", None),
])
def test_parts(written, registry, repository, tag, digest):
    image = parse(written)
    assert (image.registry, image.repository, image.tag, image.digest) == (registry, repository, tag, digest)
    assert image.tagged == f"{registry}/{repository}:{tag}"
    assert image.pull_reference == (digest or tag)


def test_lock_key_is_the_tag_form_with_or_without_digest():
    assert lock_key("quay.io/ascend/vllm-ascend:v0.7.3") == "docker://quay.io/ascend/vllm-ascend:v0.7.3"
    assert lock_key(f"quay.io/ascend/vllm-ascend:v0.7.3@{DIGEST}") == lock_key("quay.io/ascend/vllm-ascend:v0.7.3")
    assert lock_key("ubuntu") == "docker://docker.io/library/ubuntu:latest"


@pytest.mark.parametrize("written, mirrors, pulled", [
    ("quay.io/ascend/vllm-ascend:v0.7.3", {"quay.io": "m.daocloud.io/quay.io"},
     "m.daocloud.io/quay.io/ascend/vllm-ascend:v0.7.3"),
    ("ubuntu:22.04", {"docker.io": "docker.m.daocloud.io"}, "docker.m.daocloud.io/library/ubuntu:22.04"),
    ("ascendai/cann:8.0", {"index.docker.io": "docker.m.daocloud.io"}, "docker.m.daocloud.io/ascendai/cann:8.0"),
    ("ascendai/cann:8.0", {"registry-1.docker.io": "mirror.example/hub/"}, "mirror.example/hub/ascendai/cann:8.0"),
    ("127.0.0.1:5000/a/b:1", {"127.0.0.1:5000": "127.0.0.1:6000/origin"}, "127.0.0.1:6000/origin/a/b:1"),
    # a registry host written with capitals is the same host (DNS is case-insensitive): its mirror applies
    ("Quay.io/ascend/vllm-ascend:v0.7.3", {"quay.io": "m.daocloud.io/quay.io"},
     "m.daocloud.io/quay.io/ascend/vllm-ascend:v0.7.3"),
    ("SWR.cn-south-1.myhuaweicloud.com/ascendhub/mindie:1", {"swr.cn-south-1.myhuaweicloud.com": "m.lab.cn/swr"},
     "m.lab.cn/swr/ascendhub/mindie:1"),
    ("Docker.io/ascendai/cann:8.0", {"docker.io": "docker.m.daocloud.io"}, "docker.m.daocloud.io/ascendai/cann:8.0"),
    ("LOCALHOST:5000/a/b:1", {"localhost:5000": "127.0.0.1:6000/origin"}, "127.0.0.1:6000/origin/a/b:1"),
])
def test_mirror_names(written, mirrors, pulled):
    image = parse(written)
    prefix = mirror_prefix(image, mirrors)
    assert through_mirror(image, prefix).tagged == pulled


def test_no_mirror_for_another_registry_and_digest_kept():
    image = parse(f"quay.io/ascend/vllm-ascend:v0.7.3@{DIGEST}")
    assert mirror_prefix(image, {"docker.io": "docker.m.daocloud.io"}) is None
    assert through_mirror(image, "m.daocloud.io/quay.io").digest == DIGEST


def test_loopback_registries():
    assert is_loopback("127.0.0.1:5000") and is_loopback("127.5.0.1:80") and is_loopback("localhost:5000")
    assert not is_loopback("quay.io") and not is_loopback("127-registry.example")


def _manifest(tmp_path, image: str):
    path = tmp_path / "m.yaml"
    path.write_text(f"name: pulled\ndescription: d\ndevice: {{kind: cpu}}\nimage:\n{image}")
    return load_file(path, {}, [])


def test_pull_with_a_pinned_ref_is_accepted(tmp_path):
    loaded = _manifest(tmp_path, f"  ref: quay.io/ascend/vllm-ascend:v0.7.3@{DIGEST}\n  pull: true\n")
    assert loaded.manifest.image.pull and loaded.image_lock is None


@pytest.mark.parametrize("image, message", [
    (f"  ref: quay.io/ascend/vllm-ascend@{DIGEST}\n  pull: true\n", "names no tag"),
    (f"  ref: 127.0.0.1:5000/a@{DIGEST}\n  pull: true\n", "write 127.0.0.1:5000/a:TAG@sha256:"),
    ("  ref: a/b:1\n  pull: true\n  tarball: {source: x.tar}\n", "give one origin of the image: pull, tarball or build"),
    ("  ref: a/b:1\n  pull: true\n  build: ctx\n", "give one origin of the image"),
    ("  ref: a/b:1\n  pull: 'yes'\n", "image.pull"),
    (f"  ref: a/b:1@{DIGEST}\n  tarball: {{source: x.tar}}\n", "a `docker save` tarball keeps no registry digest"),
])
def test_refused_with_file_and_line(tmp_path, image, message):
    (tmp_path / "ctx").mkdir()
    with pytest.raises(ManifestError) as raised:
        _manifest(tmp_path, image)
    text = "\n".join(str(p) for p in raised.value.problems)
    assert message in text and "m.yaml:" in text, text


def test_lock_entry_is_the_pin(tmp_path):
    (tmp_path / "manifest.lock").write_text(
        f"version: 1\nsources:\n  docker://quay.io/ascend/vllm-ascend:v0.7.3:\n    revision: '{DIGEST}'\n    files: []\n")
    loaded = _manifest(tmp_path, "  ref: quay.io/ascend/vllm-ascend:v0.7.3\n  pull: true\n")
    assert loaded.image_lock.revision == DIGEST
    from envctl.registry_plan import pinned_image

    assert pinned_image(loaded.manifest.image.ref, loaded.image_lock) == (
        ImageName("quay.io", "ascend/vllm-ascend", "v0.7.3", DIGEST), "lock")


def test_pull_progress_is_one_bar_per_layer_advanced_by_what_arrived():
    """The engine's pull stream as Docker writes it (jsonmessage: status, id, progressDetail
    {current, total}); only "Downloading" moves bytes."""
    from envctl.registry_pull import _Layers

    bars: dict[str, list] = {}

    def progress(label, total):
        bars[label] = [total, 0]
        return lambda n: bars[label].__setitem__(1, bars[label][1] + n)

    layers = _Layers(progress, "vllm-ascend")
    for event in [{"status": "Pulling from ascend/vllm-ascend", "id": "v0.7.3"},
                  {"status": "Pulling fs layer", "progressDetail": {}, "id": "a1"},
                  {"status": "Downloading", "progressDetail": {"current": 100, "total": 1000}, "id": "a1"},
                  {"status": "Downloading", "progressDetail": {"current": 700, "total": 1000}, "id": "a1"},
                  {"status": "Downloading", "progressDetail": {"current": 50, "total": 80}, "id": "b2"},
                  {"status": "Download complete", "progressDetail": {}, "id": "a1"},
                  {"status": "Extracting", "progressDetail": {"current": 1000, "total": 1000}, "id": "a1"},
                  {"status": "Digest: sha256:" + "ab" * 32}]:
        layers(event)
    assert bars == {"pulling vllm-ascend a1": [1000, 700], "pulling vllm-ascend b2": [80, 50]}


def test_lock_of_an_unreachable_registry_says_so_and_where_mirrors_go(tmp_path):
    """`registry.invalid` never resolves (RFC 2606): the error names it, exit 6, no traceback."""
    import os
    import subprocess
    import sys

    (tmp_path / "m.yaml").write_text("name: pulled\ndescription: d\ndevice: {kind: cpu}\n"
                                     "image: {ref: registry.invalid/team/image:1, pull: true}\n")
    (tmp_path / "config.yaml").write_text("{}\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
    environ.update(HOME=str(tmp_path), ENVCTL_CONFIG=str(tmp_path / "config.yaml"), ENVCTL_CACHE=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-m", "envctl", "lock", str(tmp_path / "m.yaml")], capture_output=True, text=True,
                          env=environ, timeout=120)
    assert done.returncode == 6, done.stderr
    assert "error: registry.invalid cannot be reached" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "mirrors.registries" in done.stderr
    assert not (tmp_path / "manifest.lock").exists()


def test_a_failed_pulls_hint_names_the_registry_that_wanted_a_login(monkeypatch, tmp_path):
    """Each registry tried keeps its own reason: the login asked for is the one that refused
    (the mirror here, though the origin's name sorts first), Docker's config.json is named
    where DOCKER_CONFIG puts it, and a digest holding the digits 401 or 403 is no status code."""
    from envctl.registry_plan import RegistryView
    from envctl.registry_pull import _hint

    image = parse(f"0.origin.example/a/b:1@{DIGEST}")
    mirror = through_mirror(image, "mirror.lab.cn/hub")
    view = RegistryView(image, "ref", None)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    hint = _hint(view, [(mirror, "pulling x failed: unauthorized: authentication required"),
                        (image, "pulling y failed: dial tcp: lookup 0.origin.example: no such host")])
    assert hint.startswith("`docker login mirror.lab.cn` on this machine") and f"{tmp_path}/dc/config.json" in hint
    monkeypatch.delenv("DOCKER_CONFIG")
    assert "~/.docker/config.json" in _hint(view, [(image, "HTTP 403 Forbidden")])
    with_digits = f"pulling 0.origin.example/a/b@sha256:{'0' * 20}401{'0' * 20}403{'0' * 18} failed: manifest unknown"
    assert "image.ref" in _hint(view, [(image, with_digits)])
