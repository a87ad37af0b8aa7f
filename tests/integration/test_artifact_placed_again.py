"""An artifact placed again (its cache entry removed, as `cache verify` removes a corrupt one,
then fetched anew) gets a new inode at the same path. The running container's bind mount kept
the old one: the read-only file showed its old bytes and the writable copy's mount was an empty
directory, while plan and up said 'container unchanged'. Now the plan says `restart`, up
restarts the container (the mounts are taken anew; its filesystem, and so its setup markers,
stay), and running work blocks it as it blocks a recreate."""

import json
import os
import shutil
import stat

from support import IMAGE

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
artifacts:
  weights:
    source: {source}/weights
    target: /models
  code:
    source: {source}/code
    target: /code
    mode: rw
setup:
  - name: once
    run: echo ran >> /tmp/once
entrypoints:
  train:
    run: echo started; while [ ! -f /envctl/release ]; do sleep 0.2; done
"""


def drop_from_cache(plan: dict) -> None:
    for artifact in plan["artifacts"]:
        path = artifact["cache_path"]
        for root, dirs, files in os.walk(path):
            os.chmod(root, stat.S_IRWXU)
        shutil.rmtree(path)
        os.remove(path + ".json")


def test_an_artifact_placed_again_restarts_the_container_and_its_mounts_show_it(make_env, tarballs, tmp_path):
    env = make_env("cpu")
    source = tmp_path / "sources"
    (source / "weights").mkdir(parents=True)
    (source / "code").mkdir()
    (source / "weights" / "w.txt").write_text("v1\n")
    (source / "code" / "train.py").write_text("print(1)\n")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain, source=source))
    assert env.run("up", str(env.manifest)).returncode == 0
    plan = json.loads(env.run("plan", "--json", str(env.manifest)).stdout)
    assert plan["container_action"]["action"] == "unchanged"

    drop_from_cache(plan)
    (source / "weights" / "w.txt").write_text("v2\n")
    shown = env.run("plan", "--json", str(env.manifest))
    again = json.loads(shown.stdout)
    assert [a["action"] for a in again["artifacts"]] == ["fetch", "fetch+copy"]
    assert again["container_action"]["action"] == "restart"
    assert [s["action"] for s in again["setup"]] == ["skip"]

    training = env.popen("exec", "--env", env.container, "train")
    assert training.stdout.readline() == "started\n"
    blocked = env.run("up", str(env.manifest))
    assert blocked.returncode == 5 and f"restarting {env.container} would kill running work: train" in blocked.stderr, blocked.stderr
    (env.base / "workspaces" / env.container / "release").touch()
    training.communicate(timeout=60)

    done = env.run("up", "--json", str(env.manifest))
    assert done.returncode == 0, done.stderr
    assert ["container", env.container, "restart"] in json.loads(done.stdout)["executed"]
    assert env.inside("cat /models/w.txt /code/train.py /tmp/once") == (0, "v2\nprint(1)\nran\n")
    after = json.loads(env.run("plan", "--json", str(env.manifest)).stdout)
    assert after["container_action"]["action"] == "unchanged"
