"""The workspace deleted on an SSH host behind envctl's back: the probe round says so (the
workspace is among the directories the note beside the master lists), the plan says restart,
and `up` makes it again and restarts the container, whose /envctl is then the host's directory
again. The quick path, which replays the probe round, leaves this `up` to the full path. The
same for a workspace deleted and made again: the probe round reads its mark, which is gone."""

from __future__ import annotations

import json

import pytest

from engines import CLASSIC, connect
from testimages import save_image

REF = "envctl-it/workspace-gone:1"


@pytest.mark.parametrize("script, said", [('rm -rf "$1"', "is gone from the host"),
                                          ('rm -rf "$1" && mkdir -p "$1/logs"', "is not the directory the running")],
                         ids=["deleted", "made-again"])
def test_a_workspace_deleted_on_the_host_restarts_the_container_there(world, tmp_path, script, said):
    tarball = tmp_path / "image.tar"
    save_image(connect(CLASSIC).client, {"etc/workspace-gone": b"1\n"}, tarball, REF)
    manifest = world.write(f"device: {{kind: cpu}}\nimage: {{ref: {REF}, tarball: {{source: {tarball}}}}}\n")
    world.cleanups.append(lambda: world.lab.docker("lab1", "rmi", "-f", REF))
    assert world.run("up", str(manifest), "--host", "lab1").returncode == 0
    again = world.run("up", str(manifest), "--host", "lab1")  # recorded for the quick path
    assert again.returncode == 0 and "unchanged" in again.stderr, again.stderr

    workspace = f"{world.data_dir()}/workspaces/{world.container}"
    assert world.remote("lab1", workspace).is_dir()
    world.lab.run_in("lab1", "sh", "-c", script, "sh", workspace)
    plan = json.loads(world.run("plan", "--json", str(manifest), "--host", "lab1").stdout)["lab1"]
    assert plan["container_action"]["action"] == "restart", plan["container_action"]
    assert said in plan["container_action"]["reason"], plan["container_action"]

    done = world.run("up", "--json", str(manifest), "--host", "lab1")
    assert done.returncode == 0, done.stderr
    assert ["container", world.container, "restart"] in json.loads(done.stdout)["lab1"]["executed"]
    wrote = world.lab.docker("lab1", "exec", world.container, "sh", "-c", "echo seen > /envctl/written")
    assert wrote.returncode == 0, wrote.stderr
    assert world.remote("lab1", f"{workspace}/written").read_text() == "seen\n"
    after = world.run("up", str(manifest), "--host", "lab1")
    assert after.returncode == 0 and "unchanged" in after.stderr, after.stderr


def test_a_detached_run_there_refuses_a_workspace_made_again(world, tmp_path):
    """`exec --detach --host`: a workspace made again on the host is not the container's /envctl;
    said (exit 5) before any log is made there, and `up` restarts the container."""
    tarball = tmp_path / "image.tar"
    save_image(connect(CLASSIC).client, {"etc/workspace-gone": b"1\n"}, tarball, REF)
    manifest = world.write(f"device: {{kind: cpu}}\nimage: {{ref: {REF}, tarball: {{source: {tarball}}}}}\n"
                           "entrypoints:\n  nap: {run: sleep 30}\n")
    world.cleanups.append(lambda: world.lab.docker("lab1", "rmi", "-f", REF))
    assert world.run("up", str(manifest), "--host", "lab1").returncode == 0
    workspace = f"{world.data_dir()}/workspaces/{world.container}"
    world.lab.run_in("lab1", "sh", "-c", 'rm -rf "$1" && mkdir -p "$1"', "sh", workspace)
    refused = world.run("exec", "nap", "--detach", "--env", world.container, "--host", "lab1")
    assert refused.returncode == 5, refused.stderr
    assert "is not the directory the container mounted" in refused.stderr, refused.stderr
    assert not world.remote("lab1", f"{workspace}/logs").exists()
    done = world.run("up", str(manifest), "--host", "lab1")
    assert done.returncode == 0 and "restarted" in done.stderr, done.stderr
    started = world.run("exec", "nap", "--detach", "--env", world.container, "--host", "lab1")
    assert started.returncode == 0, started.stderr


def test_a_file_in_place_of_the_workspace_there_is_a_blocker_and_is_kept(world, tmp_path):
    tarball = tmp_path / "image.tar"
    save_image(connect(CLASSIC).client, {"etc/workspace-gone": b"1\n"}, tarball, REF)
    manifest = world.write(f"device: {{kind: cpu}}\nimage: {{ref: {REF}, tarball: {{source: {tarball}}}}}\n")
    world.cleanups.append(lambda: world.lab.docker("lab1", "rmi", "-f", REF))
    assert world.run("up", str(manifest), "--host", "lab1").returncode == 0
    workspace = f"{world.data_dir()}/workspaces/{world.container}"
    world.lab.run_in("lab1", "sh", "-c", 'rm -rf "$1" && echo notes > "$1"', "sh", workspace)
    plan = json.loads(world.run("plan", "--json", str(manifest), "--host", "lab1").stdout)["lab1"]
    assert [b for b in plan["blockers"] if "workspace" in b] == [
        f"workspace {workspace} is not a directory on lab1: move it away (up makes the directory)"]
    refused = world.run("up", str(manifest), "--host", "lab1")
    assert refused.returncode == 5 and "is not a directory" in refused.stderr, refused.stderr
    assert world.remote("lab1", workspace).read_text() == "notes\n"
