"""The `shell` export run for real on two SSH-lab hosts, as on servers without envctl: each
node's script (plain sh and docker, copied to the server) starts the container itself as
`envctl up` would (host network, /dev/shm size, capabilities, the workspace mount, the
environment) with envctl's prelude as its command; rank 0 on lab1, rank 1 on lab2 given lab1's
address. Both get one contract; a node started without the master's address, and a server
without the image and no ENVCTL_IMAGE_TARBALL, are refused with what to do."""

from __future__ import annotations

import re
import subprocess

import pytest

from cpu_images import ensure_cpu_reference, load_on_lab

HOSTS = ["lab1", "lab2"]
BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}}}
container: {{network: host, shm_size: 256m, cap_add: [SYS_PTRACE], env: {{RANK: "7", GREETING: hello}}}}
entrypoints:
  show:
    run: echo one node
    nodes:
      launcher: none
      run: |
        echo "rank=$ENVCTL_NODE_RANK of $ENVCTL_NNODES master=$MASTER_ADDR:$MASTER_PORT run=$ENVCTL_RUN_ID"
        echo "rank=$ENVCTL_NODE_RANK ifname=$ENVCTL_IFNAME greeting=$GREETING rankvar=$${{RANK-unset}} hostfile=$(tr '\\n' ' ' < "$ENVCTL_HOSTFILE")"
        echo "rank=$ENVCTL_NODE_RANK shm=$(df -k /dev/shm | tail -n 1 | tr -s ' ' | cut -d ' ' -f 2)KiB ptrace=$(python3 -c "import re; print(int(re.search(r'CapEff:\\s*(\\w+)', open('/proc/self/status').read()).group(1), 16) >> 19 & 1)")"
        test -d "$ENVCTL_RUN_DIR" && echo "rank=$ENVCTL_NODE_RANK workspace mounted"
"""


@pytest.fixture(scope="module")
def image(lab_session):
    ref = ensure_cpu_reference()  # python in the image: the prelude needs it
    load_on_lab(lab_session, ref, HOSTS)
    return ref


def test_the_shell_export_runs_on_servers_with_plain_docker(world, lab, image):
    world.write(BODY.format(image=image))
    out = world.base / "export"
    done = world.run("export", str(world.manifest), "--entrypoint", "show", "--nodes", "2", "--format", "shell",
                     "--data-dir", world.data_dir(), "-o", str(out))
    assert done.returncode == 0, done.stderr
    for rank, host in enumerate(HOSTS):
        world.remote(host, f"/root/node-{rank}.sh").write_text((out / f"node-{rank}.sh").read_text())

    master = lab.ip("lab1")
    started = [subprocess.Popen(lab.ssh_argv(host, "sh", f"/root/node-{rank}.sh", *([master] if rank else [])),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
               for rank, host in enumerate(HOSTS)]
    results = [process.communicate(timeout=300) for process in started]
    for rank, (process, (stdout, stderr)) in enumerate(zip(started, results)):
        assert process.returncode == 0, stdout + stderr
        assert f"rank={rank} of 2 master={master}:29500 run=" in stdout, stdout + stderr
        assert f"rank={rank} ifname=eth0 greeting=hello rankvar=unset hostfile={master} slots=1 {lab.ip('lab2')} slots=1 " \
            in stdout, stdout
        assert f"rank={rank} shm=262144KiB ptrace=1" in stdout, stdout
        assert f"rank={rank} workspace mounted" in stdout, stdout
    run_ids = {re.search(r"run=(\S+)", stdout).group(1) for stdout, _ in results}
    assert len(run_ids) == 1, results  # one run, one id
    workspace = world.remote("lab2", f"{world.data_dir()}/workspaces/{world.container}/nodes/{run_ids.pop()}")
    assert (workspace / "hostfile").read_text() == f"{master} slots=1\n{lab.ip('lab2')} slots=1\n"
    for host in HOSTS:  # docker run --rm: nothing left behind
        assert "-node-" not in lab.docker(host, "ps", "-a", "--format", "{{.Names}}").stdout

    alone = lab.ssh("lab2", "sh", "/root/node-1.sh")
    assert alone.returncode == 2 and "usage: sh node-1.sh MASTER_ADDR" in alone.stderr, alone.stderr
    world.remote("lab3", "/root/node-0.sh").write_text((out / "node-0.sh").read_text())
    bare = lab.ssh("lab3", "sh", "/root/node-0.sh")  # lab3's engine has no such image
    assert bare.returncode == 5, bare.stderr
    assert f"has no image {image}: set ENVCTL_IMAGE_TARBALL to the file of envctl save" in bare.stderr, bare.stderr
