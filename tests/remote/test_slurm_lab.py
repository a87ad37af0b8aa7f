"""The lab's Slurm cluster itself (tests/sshlab_slurm.py): real slurmctld, slurmd and munged
from Debian on two SSH-lab hosts. A batch job spans both nodes, each task runs on its own node
(its hostname, SLURM_NODEID) and reaches that node's own Docker engine; a task that fails
fails the job. What the `slurm` export relies on, checked before it is used."""

from __future__ import annotations

from slurm_fixtures import slurm  # noqa: F401

TWO_NODES = """\
#!/bin/sh
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --job-name=lab-check
echo "batch on $(hostname): nodes $SLURM_JOB_NODELIST, $SLURM_NNODES of them"
scontrol show hostnames "$SLURM_JOB_NODELIST" | sed 's/^/host /'
srun sh -c 'echo "task $SLURM_NODEID/$SLURM_NNODES on $(hostname) engine $(docker info --format "{{.ID}}")"'
"""

FAILING = """\
#!/bin/sh
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
srun sh -c 'if [ "$SLURM_NODEID" = 1 ]; then echo "node 1 fails"; exit 3; fi; echo "node 0 ends"'
"""


def test_a_job_spans_both_nodes_and_each_task_uses_its_own_engine(lab, slurm):
    assert slurm.node_states() == {"lab1": "idle", "lab2": "idle"}
    job = slurm.submit(TWO_NODES)
    assert job.returncode == 0, job.sbatch_output + job.output
    lines = job.output.splitlines()
    assert lines[0] == "batch on lab1: nodes lab[1-2], 2 of them", job.output
    assert lines[1:3] == ["host lab1", "host lab2"], job.output
    engines = {host: lab.docker(host, "info", "--format", "{{.ID}}").stdout.strip() for host in ("lab1", "lab2")}
    assert engines["lab1"] != engines["lab2"]
    assert sorted(lines[3:]) == [f"task 0/2 on lab1 engine {engines['lab1']}",
                                 f"task 1/2 on lab2 engine {engines['lab2']}"], job.output
    assert job.fields["JobState"] == "COMPLETED" and job.fields["ExitCode"] == "0:0", job.fields


def test_a_failing_task_fails_the_job(slurm):
    job = slurm.submit(FAILING)
    assert job.returncode != 0, job.sbatch_output + job.output
    assert "node 1 fails" in job.output and "node 0 ends" in job.output, job.output
    assert job.fields["JobState"] == "FAILED", job.fields
    assert job.fields["ExitCode"] == "3:0", job.fields
