"""Per-host mirrors through the inventory: a lab host with `fetch: remote` downloads hub files
from its own inventory `mirrors:` (over this machine's config file), a host without them from
the config file's; `plan --host` and `envctl config --host` say which and where it was set."""

from __future__ import annotations

import json
import os

from servers.hf_endpoint import HFEndpoint

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
