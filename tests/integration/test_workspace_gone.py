"""The workspace deleted on the host behind envctl's back (by hand, a cleanup script): `up` made
the directory again and said 'container unchanged', while the running container's /envctl was
still the deleted directory — logs and files written there reached nothing on the host. Now the
plan says `restart`, up restarts the container (its filesystem, and so its setup markers, stay),
and what the container writes to /envctl is on the host again. The quick path, which answers
an `up` with nothing to do, leaves this one to the full path. The same for a workspace deleted
and made again (by hand, or by an `exec` writing its log there) or replaced by a symlink to
another directory: there, but not the directory the container mounted (it lacks its mark)."""

import json
import shutil

import pytest

from support import IMAGE

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
setup:
  - name: once
    run: echo ran >> /tmp/once
"""


def _delete(workspace):
    shutil.rmtree(workspace)


def _make_again(workspace):
    shutil.rmtree(workspace)
    (workspace / "logs").mkdir(parents=True)


def _symlink_elsewhere(workspace):
    shutil.rmtree(workspace)
    elsewhere = workspace.parent / "elsewhere"
    elsewhere.mkdir()
    workspace.symlink_to(elsewhere)


@pytest.mark.parametrize("change, said", [(_delete, "is gone from the host"),
                                          (_make_again, "is not the directory the running container mounted"),
                                          (_symlink_elsewhere, "is not the directory the running container mounted")],
                         ids=["deleted", "made-again", "symlink-elsewhere"])
def test_a_workspace_deleted_on_the_host_restarts_the_container_and_reaches_it_again(make_env, tarballs, change, said):
    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain))
    assert env.run("up", str(env.manifest)).returncode == 0
    again = env.run("up", str(env.manifest))  # recorded for the quick path
    assert again.returncode == 0 and "unchanged" in again.stderr, again.stderr
    workspace = env.base / "workspaces" / env.container
    assert workspace.is_dir()

    change(workspace)
    plan = json.loads(env.run("plan", "--json", str(env.manifest)).stdout)
    assert plan["container_action"]["action"] == "restart"
    assert said in plan["container_action"]["reason"], plan["container_action"]
    assert [s["action"] for s in plan["setup"]] == ["skip"]

    done = env.run("up", "--json", str(env.manifest))
    assert done.returncode == 0, done.stderr
    assert ["container", env.container, "restart"] in json.loads(done.stdout)["executed"]
    assert env.inside("echo seen > /envctl/written; cat /tmp/once") == (0, "ran\n")
    assert (workspace / "written").read_text() == "seen\n"
    after = env.run("up", str(env.manifest))
    assert after.returncode == 0 and "unchanged" in after.stderr, after.stderr


@pytest.mark.parametrize("change, said", [(_delete, "is gone from the host"),
                                          (_make_again, "is not the directory the container mounted")],
                         ids=["deleted", "made-again"])
def test_a_detached_run_refuses_a_workspace_the_container_does_not_have(make_env, tarballs, change, said):
    """`exec --detach` writes its log in the workspace for the container to append to: with the
    workspace gone it would make it again (hiding that from the next `up`, before marks) and the
    container could not write there; the error blamed the container's user. Now it says what is
    wrong, makes nothing, and the next `up` restarts the container."""
    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain) + "entrypoints:\n  nap: {run: sleep 30}\n")
    assert env.run("up", str(env.manifest)).returncode == 0
    workspace = env.base / "workspaces" / env.container
    change(workspace)
    before = sorted(p.name for p in workspace.rglob("*")) if workspace.exists() else None
    refused = env.run("exec", "nap", "--detach", "--env", env.container)
    assert refused.returncode == 5, refused.stderr
    assert f"the workspace {workspace} of {env.container} {said}" in refused.stderr, refused.stderr
    assert "envctl up" in refused.stderr and "container's user" not in refused.stderr, refused.stderr
    assert (sorted(p.name for p in workspace.rglob("*")) if workspace.exists() else None) == before
    done = env.run("up", str(env.manifest))
    assert done.returncode == 0 and "restarted" in done.stderr, done.stderr
    started = env.run("exec", "nap", "--detach", "--env", env.container)
    assert started.returncode == 0, started.stderr


def test_a_file_in_place_of_the_workspace_is_a_blocker_and_is_kept(make_env, tarballs):
    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain))
    assert env.run("up", str(env.manifest)).returncode == 0
    workspace = env.base / "workspaces" / env.container
    shutil.rmtree(workspace)
    workspace.write_text("someone's notes\n")
    plan = json.loads(env.run("plan", "--json", str(env.manifest)).stdout)
    assert [b for b in plan["blockers"] if "workspace" in b] == [
        f"workspace {workspace} is not a directory on local: move it away (up makes the directory)"]
    refused = env.run("up", str(env.manifest))
    assert refused.returncode == 5 and "is not a directory" in refused.stderr, refused.stderr
    assert workspace.read_text() == "someone's notes\n"
