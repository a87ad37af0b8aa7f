"""`make demo-slurm`'s training, proven here: the CPU reference workflow (`chatglm-tiny-cpu:nodes`,
torchrun over gloo) trained by a real Slurm (tests/sshlab_slurm.py) on two SSH-lab hosts.

`envctl up chatglm-tiny-cpu:nodes --hosts lab1,lab2` makes the containers (the artifacts pushed
from a loopback HF mirror), then the demo's own steps (demo/run_demo_slurm.py): export --format
slurm, `sbatch --wait` on lab1, and check_training, the verdict make demo-nodes gives too: each
rank logged its losses, both ranks the same at every step (one model, each rank computing on half
of every batch), rank 0 alone wrote a checkpoint. Beyond the demo: all 30 steps, the loss going
down, torch's process group at lab1's address, and nodes.json naming the nodes as Slurm does.

Unlike the demo-nodes test this runs on the session's lab rather than a lab of its own, whose
hosts hold the CPU reference image already (the shell and slurm export tests load it; here it is
loaded only when missing), so no image tarball is written or pushed. Measured on a 2-core machine
shared with other work: about 75 s (the job itself ~40 s).
"""

from __future__ import annotations

import json
import re
import sys

import pytest

from cpu_images import ensure_cpu_reference, load_on_lab
from slurm_fixtures import slurm  # noqa: F401
from support import REPO

sys.path.insert(0, str(REPO / "demo"))
from run_demo import mirror, tiny_repos  # noqa: E402
from run_demo_nodes import ENV_NAME, MANIFEST, NODES, check_training, keep_outputs  # noqa: E402
from run_demo_slurm import losses_by_rank, sbatch_training, trained_seconds  # noqa: E402


@pytest.fixture(scope="module")
def image(lab_session):
    ref = ensure_cpu_reference()
    load_on_lab(lab_session, ref, list(NODES))  # nothing to do where the host holds this image ID
    return ref


def test_slurm_trains_the_cpu_reference_workflow_on_two_nodes(world, lab, slurm, image, tmp_path):
    world.cleanups.append(lambda: [lab.docker(host, "rm", "-f", ENV_NAME) for host in NODES])
    model, dataset = tiny_repos(image, tmp_path)
    env = world.environ()
    with mirror(model, dataset, env):
        up = world.run("up", MANIFEST, "--hosts", ",".join(NODES), env=env, timeout=900)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    assert "image loaded" not in up.stdout, up.stdout  # the hosts' own copy: no tarball involved

    job = sbatch_training(slurm, env, tmp_path / "export", world.data_dir())
    assert job.returncode == 0, job.sbatch_output + job.output[-4000:]
    assert job.fields["JobState"] == "COMPLETED" and job.fields["NodeList"] == "lab[1-2]", job.fields
    kept = keep_outputs(lab, tmp_path, "slurm", world.data_dir(), logs=False)
    check_training(losses_by_rank(job.output), kept, trained_seconds(job.output))  # raises NotOneTraining

    losses = losses_by_rank(job.output)
    assert [n for n, _ in losses[0]] == list(range(1, 31)), losses[0]
    assert losses[0][-1][1] < losses[0][0][1], losses[0]
    assert sorted(trained_seconds(job.output)) == [0, 1], job.output[-3000:]
    master = lab.ip("lab1")
    for rank in (0, 1):
        assert re.search(rf"^{rank}: ptune: rank {rank} of 2 \(gloo, master {re.escape(master)}:29500\)", job.output,
                         re.M), job.output[-3000:]
    checkpoint = kept / "lab1" / "checkpoint"
    assert sorted(p.name for p in checkpoint.iterdir()) == ["prefix.safetensors", "ptune_config.json", "train.log"]

    run_id = re.search(r"^0: envctl prelude: run (\S+): master", job.output, re.M).group(1)
    for host in NODES:  # one run, described alike on both nodes, by the Slurm node names
        document = json.loads(world.remote(host, f"{world.data_dir()}/workspaces/{ENV_NAME}/nodes/{run_id}/nodes.json")
                              .read_text())
        assert [(n["rank"], n["name"], n["address"]) for n in document["nodes"]] == \
            [(0, "lab1", master), (1, "lab2", lab.ip("lab2"))], document
