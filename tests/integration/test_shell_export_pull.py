"""The `shell` export of a pulled image, its pull steps run by sh with the real docker CLI
against real registries on loopback (Debian's docker-registry 2.8, tests/servers/registry.py),
on both image stores:

- through the mirror of the configuration file the export was written with (`quay.io` cannot
  be reached from here: only the mirror serves it), by digest, tagged with the canonical name;
  a second start pulls nothing;
- an image under the tag that is not the pinned one (a tag that moved) is pulled over;
- a mirror that cannot serve it (ENVCTL_IMAGE_MIRROR on the server) is said and the registry
  itself asked;
- a digest no one serves stops the script with exit 5 and the reason, nothing tagged.

The lines run are the script's own, from `image=` to the end of its pull block (the rest starts
the prelude's container, which the SSH-lab tests run).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from servers.registry import Registry, origin_and_mirror, reachable_from_engine

pytestmark = pytest.mark.both_engines

MANIFEST = """\
name: shell-pull
description: d
device: {{kind: cpu}}
image:
  ref: {ref}
  pull: true
entrypoints:
  train: {{run: python t.py, nodes: {{launcher: none}}}}
"""
@pytest.fixture(scope="module")
def registries(tmp_path_factory):
    with origin_and_mirror(tmp_path_factory.mktemp("shell-pull-registries"), "shell-pull", b"pinned\n",
                           b"moved\n") as found:
        yield found


@pytest.fixture
def reach(engine_under_test, registries):
    reachable_from_engine(engine_under_test, registries["origin"].port, registries["mirror"].port)
    return registries


@pytest.fixture
def names(engine, reach):
    r = reach
    made = [f"quay.io/{r['repository']}:1", f"{r['mirror'].host}/quay.io/{r['repository']}@{r['digest']}",
            f"{r['origin'].host}/{r['repository']}:1", f"{r['origin'].host}/{r['repository']}@{r['digest']}",
            f"{r['origin'].host}/{r['repository']}:2"]
    _forget(engine, *made)
    yield made
    _forget(engine, *made)


def _forget(engine, *names: str) -> None:
    import docker

    for name in names:
        try:
            engine.images.remove(name, force=True)
        except docker.errors.ImageNotFound:
            pass


def _pull_block(tmp_path: Path, ref: str, mirrors: dict | None) -> str:
    """node-0.sh's pull block, from an export written with `mirrors` in the configuration file."""
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST.format(ref=ref))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"mirrors": {"registries": mirrors}} if mirrors else {}))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
    environ.update(ENVCTL_CONFIG=str(config), HOME=str(tmp_path))
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "envctl", "export", str(manifest), "-e", "train", "-n", "2",
                           "-f", "shell", "-o", str(out)], capture_output=True, text=True, env=environ, timeout=180)
    assert done.returncode == 0, done.stderr
    script = (out / "node-0.sh").read_text()
    start = script.index("\nimage=") + 1
    end = script.index("# The prelude's files")
    return script[start:end] + 'echo "ready: $image"\n'


def _run(block: str, engine_under_test, **environ):
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "DOCKER_HOST": engine_under_test.docker_host,
           **environ}
    return subprocess.run(["sh", "-c", block], capture_output=True, text=True, env=env, timeout=300)


def _holds_pinned(engine, name: str, digest: str) -> bool:
    attrs = engine.api.inspect_image(name)
    return attrs["Id"] == digest or any(d.endswith("@" + digest) for d in attrs.get("RepoDigests") or [])


def test_pulled_through_the_configured_mirror_then_nothing(engine, engine_under_test, names, reach, tmp_path):
    r = reach
    block = _pull_block(tmp_path, f"quay.io/{r['repository']}:1@{r['digest']}",
                        {"quay.io": f"{r['mirror'].host}/quay.io"})
    assert f"envctl_mirror=${{ENVCTL_IMAGE_MIRROR-{r['mirror'].host}/quay.io}}" in block
    first = _run(block, engine_under_test)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"ready: quay.io/{r['repository']}:1" in first.stdout
    assert r["digest"] in first.stdout  # docker pull said the digest it pulled
    assert _holds_pinned(engine, f"quay.io/{r['repository']}:1", r["digest"])
    second = _run(block, engine_under_test)
    assert second.returncode == 0, second.stderr
    assert second.stdout == f"ready: quay.io/{r['repository']}:1\n" and second.stderr == ""  # no pull at all


def test_a_tag_that_names_another_image_is_pulled_over(engine, engine_under_test, names, reach, tmp_path):
    r = reach
    origin = f"{r['origin'].host}/{r['repository']}"
    engine.images.pull(origin, tag="2")
    engine.images.get(f"{origin}:2").tag(origin, "1")  # the tag moved on this server
    block = _pull_block(tmp_path, f"{origin}:1@{r['digest']}", None)
    done = _run(block, engine_under_test)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _holds_pinned(engine, f"{origin}:1", r["digest"])


def test_a_mirror_that_cannot_serve_is_said_and_the_registry_asked(engine, engine_under_test, names, reach, tmp_path):
    r = reach
    origin = f"{r['origin'].host}/{r['repository']}"
    block = _pull_block(tmp_path, f"{origin}:1@{r['digest']}", None)
    with Registry(tmp_path / "empty") as empty:  # reachable, lacking the image
        reachable_from_engine(engine_under_test, empty.port)
        done = _run(block, engine_under_test, ENVCTL_IMAGE_MIRROR=f"{empty.host}/mirror")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"the mirror could not serve {empty.host}/mirror/{r['repository']}@{r['digest']}; pulling from the registry" \
        in done.stderr
    assert _holds_pinned(engine, f"{origin}:1", r["digest"])


def test_a_digest_no_one_serves_stops_with_exit_5_and_tags_nothing(engine, engine_under_test, names, reach, tmp_path):
    import docker

    r = reach
    origin = f"{r['origin'].host}/{r['repository']}"
    wrong = "sha256:" + "0" * 64
    block = _pull_block(tmp_path, f"{origin}:1@{wrong}", {r["origin"].host: f"{r['mirror'].host}/elsewhere"})
    done = _run(block, engine_under_test)
    assert done.returncode == 5, done.stdout + done.stderr
    assert f"could not pull {origin}@{wrong} (docker said why, above" in done.stderr
    assert "ready:" not in done.stdout
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(f"{origin}:1")
