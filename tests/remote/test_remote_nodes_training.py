"""A real training across two SSH lab hosts: the CPU reference workflow (`chatglm-tiny-cpu:nodes`)
brought up on lab1 and lab2 through envctl (the image as a `docker save` tarball that up pushes
and loads, the artifacts fetched here from a loopback HF mirror and pushed, since the hosts cannot
reach this machine's loopback), then `exec train --nodes lab1,lab2`: torchrun's static
rendezvous at lab1, ptune.py over gloo across the lab's network (host networking).

What proves it is one training and not two: both ranks log the same loss at every step, each
computed from its own half of every batch; and those losses are the losses of the same training
in one process on this machine (the all-reduced gradients of the two halves are the whole
batch's gradient). Rank 0 alone writes the checkpoint.

`make demo-nodes` (demo/run_demo_nodes.py) is run as a user runs it, with its own lab.

Cost (measured on a 2-core machine shared with other work, load average 12 to 17): the image
tarball is 1.7 GB; the first test 6 to 7.5 min with its fixture (image check and `docker save`
~1 min, up ~2 to 4 min with the tarball pushed to and loaded on both hosts at once, the training
~30 s), the demo test ~6 min (its own lab built and taken apart). Where an earlier test of the
session already loaded the image on the session's lab, up finds it there and pushes nothing; the
demo test, on a lab of its own, always goes through the push. On an idle machine the training itself takes about a second.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from cpu_images import saved_tarball
from support import REPO

sys.path.insert(0, str(REPO / "demo"))
from run_demo import build_image, clean_environ, mirror, tiny_repos  # noqa: E402
from run_demo_nodes import ENV_NAME, IMAGE_REF, MANIFEST, image_tarball, losses_by_rank  # noqa: E402

NODES = "lab1,lab2"
SINGLE_ENV = "envctl-chatglm-tiny-cpu"  # the offline variant's container
BUNDLE = REPO / "manifests" / "chatglm-tiny-cpu"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The CPU reference image built here as `make demo` builds it, its tarball, the tiny repos.
    The 1.7 GB tarball is deleted afterwards (pytest keeps the last runs' temporary directories)."""
    state = tmp_path_factory.mktemp("tiny-nodes")
    image = build_image(clean_environ(state))
    model, dataset = tiny_repos(image, state)
    # The session's saved tarball of that image (tests/cpu_images.py), linked where the demo
    # looks for it first: one `docker save` for the lab's loads, this test and make demo-nodes.
    saved = saved_tarball(IMAGE_REF)
    assert saved.name.startswith(image.removeprefix("sha256:")), (saved, image)
    demo_path = state / "images" / f"cpu-reference-{image.removeprefix('sha256:')[:12]}.tar"
    demo_path.parent.mkdir(parents=True, exist_ok=True)
    os.link(saved, demo_path)  # both under pytest's base temporary directory: one file system
    tarball = image_tarball(image, state)
    assert tarball == demo_path
    yield {"image": image, "tarball": tarball, "model": model, "dataset": dataset, "repos": state / "repos",
           "state": state}
    tarball.unlink(missing_ok=True)


def one_process_losses(reference, tmp_path) -> list[tuple[int, float]]:
    """The same training in one process, in the same image on this machine's engine."""
    out = tmp_path / "one-process"
    out.mkdir()
    done = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{BUNDLE}:/opt/envctl/bundle:ro",
         "-v", f"{reference['repos']}:/repos:ro", "-v", f"{out}:/out", "-e", "MODEL_DIR=/repos/model",
         "-e", "TRAIN_FILE=/repos/dataset/AdvertiseGen/train.json", "-e", "OUTPUT_DIR=/out/ptune",
         "-e", "OMP_NUM_THREADS=2", IMAGE_REF, "python", "/opt/envctl/bundle/ptune.py"],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return [(int(n), float(x)) for n, x in re.findall(r"^step (\d+) loss ([0-9.]+)$", done.stdout, re.M)]


def test_train_across_two_lab_hosts_is_one_training_with_one_checkpoint(world, lab, reference, tmp_path):
    def remove_ours():
        for host in ("lab1", "lab2"):
            lab.docker(host, "rm", "-f", ENV_NAME, SINGLE_ENV)
        # The image stays: the session's later lab tests train in it too (tests/cpu_images.py
        # loads it only where a host lacks it), and the lab's engines go with the lab.
    world.cleanups.append(remove_ours)
    env = world.environ(TINY_IMAGE_TARBALL=str(reference["tarball"]))

    with mirror(reference["model"], reference["dataset"], env):
        up = world.run("up", MANIFEST, "--hosts", NODES, env=env, timeout=1800)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        single = world.run("up", "chatglm-tiny-cpu", "--hosts", NODES, env=env, timeout=900)
        assert single.returncode == 0, single.stderr[-3000:]
    for host in ("lab1", "lab2"):  # the image built here, on both (pushed by up where a host lacked it)
        assert lab.docker(host, "image", "inspect", "-f", "{{.Id}}", IMAGE_REF).stdout.strip() == reference["image"]
        mode = lab.docker(host, "inspect", "-f", "{{.HostConfig.NetworkMode}}", ENV_NAME).stdout.strip()
        assert mode == "host"
        assert lab.docker(host, "inspect", "-f", "{{.HostConfig.NetworkMode}}", SINGLE_ENV).stdout.strip() == "none"

    # The offline variant cannot train across nodes (no network): refused before anything starts.
    refused = world.run("exec", "train", "--nodes", NODES, "--env", SINGLE_ENV, env=env)
    assert refused.returncode == 2 and "does not say it can run on several nodes" in refused.stderr, refused.stderr
    assert refused.stdout == ""

    done = world.run("exec", "train", "--nodes", NODES, "--env", ENV_NAME, env=env, timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    master = lab.ip("lab1")
    for rank, host in ((0, "lab1"), (1, "lab2")):
        assert re.search(rf"^\[{rank} {host}\] ptune: rank {rank} of 2 \(gloo, master {re.escape(master)}:\d+\)",
                         done.stdout, re.M), done.stdout[-3000:]
    losses = losses_by_rank(done.stdout)
    assert sorted(losses) == [0, 1], done.stdout[-3000:]
    assert [n for n, _ in losses[0]] == list(range(1, 31)), losses[0]
    assert losses[0] == losses[1]  # the global batch's loss, every step, on both ranks
    alone = one_process_losses(reference, tmp_path)
    assert [n for n, _ in alone] == [n for n, _ in losses[0]]
    # Summation order differs (two halves, then an all-reduce), so the last digit may.
    assert all(abs(a - b) <= 2e-3 for (_, a), (_, b) in zip(alone, losses[0])), (alone, losses[0])

    workspace = f"{world.data_dir()}/workspaces/{ENV_NAME}"
    checkpoint = world.remote("lab1", f"{workspace}/output/ptune")
    assert sorted(p.name for p in checkpoint.iterdir()) == ["prefix.safetensors", "ptune_config.json", "train.log"]
    assert len(re.findall(r"^step \d+ loss", (checkpoint / "train.log").read_text(), re.M)) == 30  # one writer
    assert not world.remote("lab2", f"{workspace}/output/ptune").exists()  # rank 1 writes none
    for rank, host in ((0, "lab1"), (1, "lab2")):
        logs = list(world.remote(host, f"{workspace}/logs").glob(f"train-*-node{rank}.log"))
        assert len(logs) == 1 and "step 30 loss" in logs[0].read_text()


def test_make_demo_nodes_prints_each_ranks_first_and_last_loss(reference):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
    # The demo's state directory is the fixture's: the image tarball and the repos made there
    # are reused (the demo makes each only when missing), as a second `make demo-nodes` would.
    env["ENVCTL_DEMO_STATE"] = str(reference["state"])
    done = subprocess.run([sys.executable, str(REPO / "demo" / "run_demo_nodes.py")], capture_output=True, text=True,
                          env=env, timeout=3000)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    ranks = re.findall(r"^rank (\d) \((\w+)\): first loss ([0-9.]+) \(step 1\), last loss ([0-9.]+) \(step (\d+)\)",
                       done.stdout, re.M)
    assert [(r, h) for r, h, *_ in ranks] == [("0", "lab1"), ("1", "lab2")], done.stdout[-3000:]
    assert ranks[0][2:] == ranks[1][2:]  # the same first and last loss on both
    assert float(ranks[0][3]) < float(ranks[0][2])
    kept = reference["state"] / "nodes" / "kept"
    assert (kept / "lab1" / "checkpoint" / "prefix.safetensors").is_file()
    assert not (kept / "lab2" / "checkpoint").exists()
    assert any((kept / "lab2" / "logs").glob("train-*-node1.log"))
