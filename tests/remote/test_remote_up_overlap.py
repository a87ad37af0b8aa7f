"""`up` on an SSH host sends its artifacts while the image step sends and loads the image
tarball (envctl/apply.py _pushing_beside_the_image), once the artifacts' check passed: what is
said, what is done and what fails is what one step after the other gave."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time

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


def test_the_image_is_loaded_while_the_artifact_is_still_arriving_and_the_lines_come_in_step_order(overlap, tmp_path):
    world, tarball, _ = overlap
    weights = tmp_path / "large.bin"
    weights.write_bytes(os.urandom(24 << 20))  # at a 200 ms round trip: seconds, where the image takes one or two
    blob = world.remote("lab1", f"{world.data_dir()}/cache/blobs/sha256/{hashlib.sha256(weights.read_bytes()).hexdigest()}")
    manifest = world.write(BODY.format(ref=REF, tarball=tarball, weights=weights))
    trace = tmp_path / "trace"
    world.lab.set_delay("lab1", 100)
    try:
        running = subprocess.Popen([sys.executable, "-m", "envctl", "up", str(manifest), "--host", "lab1"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=world.environ(ENVCTL_SSH_TRACE=str(trace)))
        while running.poll() is None and world.lab.docker("lab1", "image", "inspect", REF).returncode != 0:
            time.sleep(0.05)
        arriving = not blob.exists()  # the moment the image is there: the artifact's blob is not yet whole
        out, err = running.communicate(timeout=300)
    finally:
        world.lab.clear_delay("lab1")
    assert running.returncode == 0, err
    assert arriving, "the image was loaded only after the artifact had arrived"
    said = [line for line in err.splitlines() if line.split(" ")[0] in ("artifact", "image", "container")]
    assert said == ["artifact   weights: fetched", "artifact   weights: sent on lab1", f"image      {REF}: loaded",
                    f"container  {world.container}: created"], err
    # The artifact's record read by the plan, and not again by its check (the plan found it
    # missing: nothing the plan rested on can have left) nor for its push, though the
    # workspace's mkdir ran on the host before that began.
    reads = [line for line in _trace(trace) if "sh -c 'test -e \"$1\" && cat -- \"$1.json\"" in line]
    assert len(reads) == 1, _trace(trace)
    size = world.lab.docker("lab1", "exec", world.container, "cat", "/envctl/size.txt").stdout.split()[0]
    assert size == str(24 << 20)


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


def _up_with_one_url_for_artifact_and_tarball(world, tmp_path, weights):
    """`up` of a manifest whose artifact `same` and image tarball are one URL (one sha256), served
    paced (~2 s a download, so the image step's starts while the artifact's runs), beside the
    pushed `weights`. Returns (the finished `up`, the GETs the server saw, the tarball's bytes
    and sha256)."""
    from servers.http_files import FileServer

    tarball = tmp_path / "paced.tar"
    save_image(connect(CLASSIC).client, {"etc/paced": os.urandom(6 << 20)}, tarball, REF)
    data = tarball.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    with FileServer(files={"/image.tar": data}, rate_per_connection=3 << 20) as store:
        url = store.url_for("/image.tar")
        manifest = world.write(f"""\
            device: {{kind: cpu}}
            image: {{ref: {REF}, tarball: {{source: "{url}", sha256: {sha}}}}}
            artifacts:
              same: {{source: "{url}", sha256: {sha}, target: /models/image.tar}}
              weights: {{source: "{weights}", target: /models/weights.bin}}
            """)
        done = world.run("up", str(manifest), "--host", "lab1")
        gets = [s for s in store.seen if s.method == "GET"]
    return done, gets, data, sha


def test_a_host_downloading_an_artifact_that_is_the_image_tarball_downloads_it_once(overlap, lab, monkeypatch, tmp_path):
    """`fetch: remote`: the host downloads an artifact (the main thread's artifact steps) while
    the image step has it download the tarball, and both are one URL with one sha256: the two
    downloads take turns on the host's partial file, and the second finds the blob there (before:
    two curls appended to one partial file, and its sha256 or its placing failed)."""
    from servers.http_files import FileServer

    world, _, weights = overlap
    world.write_inventory(lab1={"fetch": "remote"})
    monkeypatch.setattr(FileServer, "address", lab.gateway)  # on the lab network: the host downloads from it
    done, gets, data, sha = _up_with_one_url_for_artifact_and_tarball(world, tmp_path, weights)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if line.split(" ")[0] in ("artifact", "image")]
    assert said == ["artifact   same: downloaded by lab1", "artifact   weights: fetched",
                    "artifact   weights: sent on lab1", f"image      {REF}: loaded"], done.stderr
    assert len(gets) == 1, gets
    assert world.remote("lab1", f"{world.data_dir()}/cache/blobs/sha256/{sha}").read_bytes() == data
    assert world.lab.docker("lab1", "image", "inspect", REF).returncode == 0


def test_an_artifact_that_is_the_image_tarball_downloaded_here_is_downloaded_once(overlap, tmp_path):
    """`fetch: push`: this machine downloads the artifact (the artifact steps) while the image
    step downloads the tarball, one URL: the two downloads take turns on the cache's partial
    file and the second finds the blob (before: both appended to it, 'got 2N bytes of N')."""
    world, _, weights = overlap
    done, gets, data, sha = _up_with_one_url_for_artifact_and_tarball(world, tmp_path, weights)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if line.split(" ")[0] in ("artifact", "image")]
    assert said == ["artifact   same: fetched", "artifact   weights: fetched", "artifact   same: sent on lab1",
                    "artifact   weights: sent on lab1", f"image      {REF}: loaded"], done.stderr
    assert len(gets) == 1, gets
    assert world.remote("lab1", f"{world.data_dir()}/cache/blobs/sha256/{sha}").read_bytes() == data
