"""The `slurm` export run by a real Slurm (Debian's slurm-wlm and munge; tests/sshlab_slurm.py)
on two SSH-lab hosts, each with the container `envctl up --host` made there.

The entrypoint prints what its process was handed, so the test sees the contract each node got
from the job: ranks 0/1 from SLURM_NODEID, the master = the job's first host (lab1) at its
NodeAddr, one port, one run id, the hostfile and nodes.json (the nodes by their Slurm names)
in the per-run directory, no RANK or WORLD_SIZE (Slurm's own variables stay out). A rank that
fails fails the job with its code and the other rank's command, still running in its
container, is stopped (srun --kill-on-bad-exit, and the task passes the signal into the
container); a job given the wrong node count is refused; a node without the container says so
(exit 5).
"""

from __future__ import annotations

import re

import pytest

from cpu_images import ensure_cpu_reference, load_on_lab
from slurm_fixtures import slurm  # noqa: F401

HOSTS = ["lab1", "lab2"]
BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}}}
container: {{network: host, env: {{RANK: "7", WORLD_SIZE: "9"}}}}
entrypoints:
  show:
    run: echo one node
    params: {{greeting: hello}}
    nodes:
      launcher: none
      run: |
        echo "rank=$ENVCTL_NODE_RANK of $ENVCTL_NNODES master=$MASTER_ADDR:$MASTER_PORT pet=$PET_NODE_RANK/$PET_NNODES"
        echo "rank=$ENVCTL_NODE_RANK run=$ENVCTL_RUN_ID ifname=$ENVCTL_IFNAME world=$ENVCTL_WORLD_SIZE greeting=$GREETING rankvar=$${{RANK-unset}} worldvar=$${{WORLD_SIZE-unset}} slurm=$${{SLURM_NODEID-unset}}"
        echo "rank=$ENVCTL_NODE_RANK hostfile=$(tr '\\n' ' ' < "$ENVCTL_HOSTFILE")"
        echo "rank=$ENVCTL_NODE_RANK nodes.json=$(tr -d ' \\n' < "$ENVCTL_RUN_DIR/nodes.json")"
  fail:
    run: echo one node
    nodes:
      launcher: none
      run: |
        if [ "$ENVCTL_NODE_RANK" = 1 ]; then sleep 2; echo "rank 1 gives up"; exit 3; fi
        echo "rank 0 waits"; echo $$ > /envctl/rank0.pid; sleep 300; echo "rank 0 was not stopped"
"""


@pytest.fixture(scope="module")
def image(lab_session):
    ref = ensure_cpu_reference()  # python in the image: the prelude needs it
    load_on_lab(lab_session, ref, HOSTS)
    return ref


def _export(world, entrypoint: str, *more: str):
    out = world.base / f"export-{entrypoint}"
    done = world.run("export", str(world.manifest), "--entrypoint", entrypoint, "--nodes", "2", "--format", "slurm",
                     "-o", str(out), *more)
    assert done.returncode == 0, done.stderr
    return (out / "job.sh").read_text()


def test_the_slurm_export_gives_each_node_the_contract_and_stops_together(world, lab, slurm, image):
    world.write(BODY.format(image=image))
    for host in HOSTS:
        up = world.run("up", str(world.manifest), "--host", host)
        assert up.returncode == 0, up.stderr

    job = slurm.submit(_export(world, "show"))
    assert job.returncode == 0, job.sbatch_output + job.output
    master, port = lab.ip("lab1"), 29500
    for rank in (0, 1):
        assert f"{rank}: rank={rank} of 2 master={master}:{port} pet={rank}/2" in job.output, job.output  # srun --label
        assert f"{rank}: rank={rank} hostfile={master} slots=1 {lab.ip('lab2')} slots=1 " in job.output, job.output
        line = re.search(rf"^{rank}: rank={rank} run=(\S+) (.*)$", job.output, re.M)
        assert line and line.group(2) == "ifname=eth0 world=2 greeting=hello rankvar=unset worldvar=unset slurm=unset", \
            job.output
    assert len(set(re.findall(r"run=(\S+)", job.output))) == 1, job.output  # one run id on both nodes
    documents = re.findall(r"nodes\.json=(\{.*\})$", job.output, re.M)
    assert len(documents) == 2 and documents[0] == documents[1], job.output
    assert f'"master":{{"addr":"{master}","port":{port}}}' in documents[0]
    # The nodes by their Slurm names (each task's SLURMD_NODENAME), as exec --nodes names them by the inventory's.
    assert f'{{"rank":0,"name":"lab1","address":"{master}"' in documents[0], documents[0]
    assert f'{{"rank":1,"name":"lab2","address":"{lab.ip("lab2")}"' in documents[0], documents[0]
    assert job.fields["JobState"] == "COMPLETED" and job.fields["NodeList"] == "lab[1-2]", job.fields

    failed = slurm.submit(_export(world, "fail"))
    assert failed.returncode != 0, failed.output
    assert "rank 1 gives up" in failed.output and "rank 0 waits" in failed.output, failed.output
    assert "rank 0 was not stopped" not in failed.output
    # srun names the task that failed; the job's exit code is the highest of its tasks' (rank 0,
    # stopped by SIGTERM, ends with 143), as Slurm reports a step's (srun(1), RETURN VALUE).
    assert re.search(r"srun: error: lab2: task 1: Exited with exit code 3$", failed.output, re.M), failed.output
    assert failed.fields["JobState"] == "FAILED" and failed.fields["ExitCode"] != "0:0", failed.fields
    top = lab.docker("lab1", "top", world.container).stdout
    assert "sleep 300" not in top, top  # srun ended the step, the task passed the signal into the container

    wrong = slurm.submit(_export(world, "show"), "--nodes=1")
    assert wrong.returncode != 0
    assert "this job was exported for 2 nodes, Slurm gave it 1" in wrong.output, wrong.output

    lab.docker("lab2", "stop", "-t", "1", world.container)
    missing = slurm.submit(_export(world, "show"))
    assert missing.returncode != 0 and missing.fields["JobState"] == "FAILED", missing.fields
    assert re.search(r"srun: error: lab2: task 1: Exited with exit code 5$", missing.output, re.M), missing.output
    assert f"envctl: lab2: the container {world.container} is not running" in missing.output, missing.output


PASSED = """\
device: {{kind: cpu}}
image: {{ref: {image}}}
container: {{network: host, pass_env: [HF_TOKEN]}}
entrypoints:
  token:
    run: echo one node
    nodes:
      launcher: none
      run: |
        if [ -n "$${{HF_TOKEN+x}}" ]; then
          echo "rank=$ENVCTL_NODE_RANK token-sha256=$(printf %s "$${{HF_TOKEN}}" | sha256sum | cut -c1-16)"
        else
          echo "rank=$ENVCTL_NODE_RANK token unset"
        fi
"""


def test_a_passed_variable_reaches_every_rank_from_the_submitters_environment_or_an_env_file(world, lab, slurm, image):
    """container.pass_env through sbatch: the variable the job is submitted with (sbatch
    --export=ALL,NAME=VALUE: Slurm's own way of adding one to the submitter's environment) reaches
    the command on both nodes (`docker exec -e HF_TOKEN`, the value from the task's environment);
    ENVCTL_ENV_FILE (a file every node reads, here in the cluster's shared directory) does the
    same; with neither, each task warns and the command runs without it. The exported script holds
    no value, and the containers' configuration none either."""
    import hashlib

    world.write(PASSED.format(image=image))
    for host in HOSTS:
        up = world.run("up", str(world.manifest), "--host", host)
        assert up.returncode == 0, up.stderr
    script = _export(world, "token")
    token, file_token = "hf_slurmPassedToken4417", "hf_slurmEnvFileToken9902"
    assert token not in script and file_token not in script and "-e HF_TOKEN \\\n" in script

    def sha(value: str) -> str:
        return hashlib.sha256(value.encode()).hexdigest()[:16]

    given = slurm.submit(script, f"--export=ALL,HF_TOKEN={token}")
    assert given.returncode == 0, given.sbatch_output + given.output
    for rank in (0, 1):
        assert f"{rank}: rank={rank} token-sha256={sha(token)}" in given.output, given.output
    assert "is not set" not in given.output and token not in given.output

    env_file = slurm.dir / "tokens.env"
    env_file.write_text(f"# the lab's token\nHF_TOKEN={file_token}\n")
    env_file.chmod(0o600)
    from_file = slurm.submit(script, f"--export=ALL,ENVCTL_ENV_FILE={env_file}")
    assert from_file.returncode == 0, from_file.sbatch_output + from_file.output
    for rank in (0, 1):
        assert f"{rank}: rank={rank} token-sha256={sha(file_token)}" in from_file.output, from_file.output

    unset = slurm.submit(script)
    assert unset.returncode == 0, unset.sbatch_output + unset.output
    for rank, host in ((0, "lab1"), (1, "lab2")):
        assert f"{rank}: rank={rank} token unset" in unset.output, unset.output
        assert (f"{rank}: envctl: warning: {host}: HF_TOKEN (container.pass_env) is not set: export it where this job "
                "is started, or give ENVCTL_ENV_FILE=FILE; the command runs without it") in unset.output, unset.output

    missing = slurm.submit(script, f"--export=ALL,ENVCTL_ENV_FILE={slurm.dir / 'absent.env'}")
    assert missing.returncode != 0 and missing.fields["JobState"] == "FAILED", missing.fields
    assert "cannot read ENVCTL_ENV_FILE=" in missing.output, missing.output
    for host in HOSTS:
        config = lab.docker(host, "inspect", "--format", "{{json .Config.Env}}", world.container).stdout
        assert token not in config and file_token not in config and "HF_TOKEN" not in config, config
