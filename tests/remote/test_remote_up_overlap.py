"""`up` on an SSH host sends its artifacts while the image step sends and loads the image
tarball (envctl/apply.py _pushing_beside_the_image), once the artifacts' check passed: what is
said, what is done and what fails is what one step after the other gave."""

from __future__ import annotations

import os

import pytest

from engines import CLASSIC, connect
from testimages import save_image

REF = "envctl-it/up-overlap:1"
BODY = """\
device: {{kind: cpu}}
image: {{ref: {ref}, tarball: {{source: {tarball}}}}}
artifacts:
  weights: {{source: "{weights}", target: /models/weights.bin}}
setup:
  - name: size
    run: wc -c /models/weights.bin > /envctl/size.txt
"""


@pytest.fixture
def overlap(world, tmp_path):
    tarball = tmp_path / "image.tar"
    save_image(connect(CLASSIC).client, {"etc/overlap": b"1\n"}, tarball, REF)
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(3 << 20))
    world.write_inventory(lab1={})
    world.lab.docker("lab1", "rmi", "-f", REF)
    world.cleanups.append(lambda: world.lab.docker("lab1", "rmi", "-f", REF))
    return world, tarball, weights


def _trace(path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("session ")]


def test_the_artifact_is_sent_while_the_image_is_and_the_lines_come_in_step_order(overlap, tmp_path):
    world, tarball, weights = overlap
    manifest = world.write(BODY.format(ref=REF, tarball=tarball, weights=weights))
    trace = tmp_path / "trace"
    world.lab.set_delay("lab1", 50)  # a host far enough that each push takes round trips
    try:
        done = world.run("up", str(manifest), "--host", "lab1", env=world.environ(ENVCTL_SSH_TRACE=str(trace)))
    finally:
        world.lab.clear_delay("lab1")
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if line.split(" ")[0] in ("artifact", "image", "container")]
    assert said == ["artifact   weights: fetched", "artifact   weights: sent on lab1", f"image      {REF}: loaded",
                    f"container  {world.container}: created"], done.stderr
    sessions = _trace(trace)
    pushes = [i for i, line in enumerate(sessions) if "sha256_in()" in line]
    mkdir = next(i for i, line in enumerate(sessions) if "mkdir -p --" in line and "workspaces" in line)
    # Both pushes (the artifact's blob, the tarball with its load) started before the workspace,
    # which is made once the artifacts are there: the tarball did not wait for the artifact.
    assert len(pushes) == 2 and max(pushes) < mkdir, sessions
    size = world.lab.docker("lab1", "exec", world.container, "cat", "/envctl/size.txt").stdout.split()[0]
    assert size == str(3 << 20)


def test_an_artifact_that_is_the_image_tarball_is_sent_once(overlap):
    """The same bytes as artifact and image: both pushes go to one blob in the host's cache;
    they take turns, and the second finds it there."""
    world, tarball, _ = overlap
    manifest = world.write(BODY.format(ref=REF, tarball=tarball, weights=tarball))
    done = world.run("up", str(manifest), "--host", "lab1")
    assert done.returncode == 0, done.stderr
    assert world.lab.docker("lab1", "image", "inspect", REF).returncode == 0
    size = world.lab.docker("lab1", "exec", world.container, "cat", "/envctl/size.txt").stdout.split()[0]
    assert size == str(tarball.stat().st_size)


def test_an_artifact_that_cannot_be_placed_is_the_error_said_after_what_the_image_step_did(overlap):
    """The artifact's blob arrives but cannot be placed (the host's artifacts directory is a
    file): up fails with the artifact's error, says what the image step did meanwhile (loaded:
    the plan's own step), and creates no container."""
    world, tarball, weights = overlap
    manifest = world.write(BODY.format(ref=REF, tarball=tarball, weights=weights))
    world.lab.run_in("lab1", "sh", "-c", f"mkdir -p {world.data_dir()}/cache && touch {world.data_dir()}/cache/artifacts")
    done = world.run("up", str(manifest), "--host", "lab1")
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    error = next(i for i, line in enumerate(lines) if line.startswith("error:"))
    assert "weights" in done.stderr[done.stderr.index("error:"):], done.stderr
    assert any(line.startswith(f"image      {REF}: loaded") for line in lines[:error]), done.stderr
    assert world.containers("lab1") == []
