"""Per-host mirrors through the inventory: a lab host with `fetch: remote` downloads hub files
from its own inventory `mirrors:` (over this machine's config file), a host without them from
the config file's; `plan --host` and `envctl config --host` say which and where it was set."""

from __future__ import annotations

import json
import os

import pytest

from servers.hf_endpoint import HFEndpoint
from support import IMAGE
from testimages import save_image

LARGE = os.urandom(3 << 20)  # over remote/place.py's LARGE: the host downloads it itself, with curl
FILES = {"config.json": b'{"hidden_size": 64}\n', "model.safetensors": LARGE}


def test_each_lab_host_downloads_through_its_own_mirror(world, lab, monkeypatch):
    monkeypatch.setattr(HFEndpoint, "address", lab.gateway)  # on the lab network: lab hosts reach it
    with HFEndpoint() as labs_mirror, HFEndpoint() as files_mirror:
        for endpoint in (labs_mirror, files_mirror):
            endpoint.add_repo("Qwen/Qwen2.5-0.5B", files=FILES, lfs=["model.safetensors"])
        config = world.base / "config.yaml"
        config.write_text(f"mirrors:\n  huggingface: {files_mirror.url}\n")
        world.write_inventory(lab1={"fetch": "remote", "mirrors": {"huggingface": labs_mirror.url}},
                              lab2={"fetch": "remote"})
        manifest = world.write("""\
            device: {kind: cpu}
            image: {ref: busybox:latest}
            artifacts:
              model: {source: "hf://Qwen/Qwen2.5-0.5B@main"}
            """)
        env = world.environ(ENVCTL_CONFIG=str(config))

        plans = json.loads(world.run("plan", str(manifest), "--hosts", "lab1,lab2", "--json", env=env).stdout)
        [one], [two] = plans["lab1"]["artifacts"], plans["lab2"]["artifacts"]
        assert one["mirror"] == labs_mirror.url
        assert one["mirror_from"].startswith(f"inventory {world.inventory}:") and one["mirror_from"].endswith("(host lab1)")
        assert (two["mirror"], two["mirror_from"]) == (files_mirror.url, f"{config}:2")
        shown = world.run("config", "show", "--hosts", "lab1,lab2", env=env)
        assert shown.returncode == 0, shown.stderr
        assert f"huggingface  {labs_mirror.url}  (from inventory {world.inventory}:" in shown.stdout
        assert f"huggingface  {files_mirror.url}  (from {config}:2)" in shown.stdout

        done = world.run("fetch", str(manifest), "--host", "lab1", env=env)
        assert done.returncode == 0, done.stderr
        assert "artifact   model: downloaded by lab1" in done.stderr
        big = [h for h in labs_mirror.hits if h.path.endswith("/model.safetensors")]
        assert big and not [h for h in files_mirror.hits if h.path.endswith("/model.safetensors")]
        blob = f"{world.data_dir()}/cache/blobs/sha256/{__import__('hashlib').sha256(LARGE).hexdigest()}"
        assert world.remote("lab1", blob).read_bytes() == LARGE

        labs_mirror.reset_counters()
        done = world.run("fetch", str(manifest), "--host", "lab2", env=env)
        assert done.returncode == 0, done.stderr
        assert [h for h in files_mirror.hits if h.path.endswith("/model.safetensors")]
        assert labs_mirror.requests == 0
        # The host's inventory env is more specific still: HF_ENDPOINT there beats its mirrors.
        world.write_inventory(lab1={"fetch": "remote", "mirrors": {"huggingface": labs_mirror.url},
                                    "env": {"HF_ENDPOINT": files_mirror.url}})
        plans = json.loads(world.run("plan", str(manifest), "--host", "lab1", "--json", env=env).stdout)
        [one] = plans["artifacts"] if "artifacts" in plans else plans["lab1"]["artifacts"]
        assert (one["mirror"], one["mirror_from"]) == (files_mirror.url, "inventory env HF_ENDPOINT (host lab1)")


def test_a_bad_mirrors_entry_in_the_inventory_is_located(world):
    world.inventory.write_text("hosts:\n  lab1:\n    mirrors:\n      huggingface: hf-mirror.com\n      npm: x\n")
    done = world.run("config", "show", "--host", "lab1")
    assert done.returncode == 3, done.stderr
    assert f"{world.inventory}:4:20: hosts.lab1.mirrors.huggingface: expected an http(s):// URL" in done.stderr
    assert f"{world.inventory}:5:7: hosts.lab1.mirrors.npm: unknown mirror 'npm'" in done.stderr


@pytest.fixture(scope="module")
def image_tarball(tmp_path_factory):
    """A `docker save` of the test image (lab hosts get it pushed)."""
    import docker

    path = tmp_path_factory.mktemp("mirror-images") / "busybox.tar"
    save_image(docker.from_env(), None, path)
    return path


def test_containers_on_a_lab_host_get_its_own_pip_mirror(world, lab, image_tarball):
    config = world.base / "config.yaml"
    config.write_text("mirrors:\n  pip: http://pip.desk.example/simple/\n")
    labs_index = "http://10.0.0.2:3141/root/pypi/+simple/"
    world.write_inventory(lab1={"mirrors": {"pip": labs_index}}, lab2={})
    manifest = world.write(f"""\
        device: {{kind: cpu}}
        image: {{ref: {IMAGE}, tarball: {{source: {image_tarball}}}}}
        setup:
          - name: record the index
            run: printf '%s' "$PIP_INDEX_URL" > /tmp/index-seen-by-step
        entrypoints:
          show:
            run: echo "index=$PIP_INDEX_URL"
        """)
    env = world.environ(ENVCTL_CONFIG=str(config))
    env.pop("PIP_INDEX_URL", None)
    plan = world.run("plan", str(manifest), "--host", "lab1", env=env)
    assert f"PIP_INDEX_URL (passed, set from mirrors.pip {labs_index} (inventory {world.inventory}:" in plan.stdout, \
        plan.stdout + plan.stderr
    for host, expected in (("lab1", labs_index), ("lab2", "http://pip.desk.example/simple/")):
        up = world.run("up", str(manifest), "--host", host, env=env)
        assert up.returncode == 0, up.stderr
        seen = lab.docker(host, "exec", world.container, "cat", "/tmp/index-seen-by-step")
        assert seen.stdout == expected, (host, seen.stdout, seen.stderr)
        inspect = lab.docker(host, "inspect", world.container)
        assert expected not in inspect.stdout  # not in the container's configuration
        shown = world.run("exec", "show", "--host", host, "--env", world.container, env=env)
        assert shown.stdout == f"index={expected}\n", shown.stderr
