"""The `slurm` export: one sbatch script, one task per node, each running the node's command in
the container `envctl up REF --hosts NODES` made on that node.

Facts (Slurm 22.05, sbatch(1), srun(1), scontrol(1); research scale-out.md §1.1):
- `--nodes=N --ntasks-per-node=1`: one task per node; in each task SLURM_NODEID is the node's
  index in the job (0..N-1) and SLURM_NNODES the node count; SLURM_JOB_NODELIST is the
  compressed host list (`lab[1-2]`), expanded in order by `scontrol show hostnames`, whose
  first host is the batch host and, by convention, the master.
- srun sets SLURMD_NODENAME in each task, the name of the node running it (srun(1), OUTPUT
  ENVIRONMENT VARIABLES): the node's name in nodes.json, as exec --nodes writes the inventory's.
- `scontrol show node -o NAME` prints NodeAddr=, the address Slurm itself reaches the node at
  (the node's name when slurm.conf gives none).
- srun hands the batch script's environment to every task (--export=ALL, the default), bash
  functions exported with `export -f` included; `--kill-on-bad-exit=1` ends the whole step when
  one task exits non-zero, so a failed rank does not leave the others waiting for it. srun may
  then end the step before the failed task's last output lines have reached it (seen on the
  lab's Slurm 22.05: a refusal's message missing from the job's output; flux-core#7328 reports
  the same race for Flux's exit-on-error), so a failing task waits 2 s before it exits.
- Slurm's other variables (SLURM_PROCID, and WORLD_SIZE or RANK that site scripts set) are not
  read: the rank is SLURM_NODEID, the master the first host, the rest comes from envctl's
  prelude (envctl.export.prelude), the same contract as `exec --nodes`.
"""

from __future__ import annotations

import shlex

from envctl.export import hostscript, passed
from envctl.export.files import node_spec, prelude_files
from envctl.export.formats import Format
from envctl.export.readme import written_by
from envctl.export.model import Export

SCRIPT = "job.sh"


def _reference(export: Export) -> str:
    return export.reference


def script(export: Export) -> str:
    """The sbatch script (bash), self-contained: the prelude's files are in it."""
    hostscript.refuse_claim(export, "slurm")
    reference = _reference(export)
    files = prelude_files(node_spec(export))
    node = [
        "set -euo pipefail",
        "envctl_container=$ENVCTL_SLURM_CONTAINER",
        "# srun ends the step (--kill-on-bad-exit) once it learns that a task failed, sometimes before",
        "# that task's last lines of output reach it: a failing task leaves them a moment first.",
        'envctl_exit() { if [ "$1" != 0 ]; then sleep 2; fi; exit "$1"; }',
        *hostscript.running_check(reference, "envctl_exit"),
        *passed.check_lines(export, "envctl_exit"),
        "# The prelude's files, into this job's directory in the container's workspace (/envctl).",
        *hostscript.put_files(files, '"$envctl_container"', '"/envctl/export/$SLURM_JOB_ID"'),
        "# Rank: this node's index in the job; master: the first host's address (see above); name: the node's.",
        *hostscript.start_and_forward(export, '"$envctl_container"', '"/envctl/export/$SLURM_JOB_ID"',
                                      '"slurm-$SLURM_JOB_ID-$SLURM_NODEID"',
                                      ['-e ENVCTL_EXPORT_RANK="$SLURM_NODEID"',
                                       '-e ENVCTL_EXPORT_MASTER="$ENVCTL_SLURM_MASTER"',
                                       '-e ENVCTL_EXPORT_NAME="${SLURMD_NODENAME:-}"']),
        'envctl_exit "$envctl_code"',
    ]
    lines = [
        "#!/bin/bash",
        f"# {export.job}: {reference} `{export.entrypoint}` on {export.nnodes} nodes, one Slurm task per node.",
        f"# Written by `{written_by(export, 'slurm')}`;",
        "# README.md beside it says what each node needs. Submit: sbatch job.sh",
        f"#SBATCH --job-name={export.job}",
        f"#SBATCH --nodes={export.nnodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --output={export.job}-%j.out",
        "set -euo pipefail",
        "",
        f"if [ \"${{SLURM_NNODES:-}}\" != {export.nnodes} ]; then",
        f"  echo \"envctl: this job was exported for {export.nnodes} nodes, Slurm gave it ${{SLURM_NNODES:-none}} "
        f"(submit it with sbatch, without -N)\" >&2",
        "  exit 2",
        "fi",
        "# The master is the job's first host, at the address Slurm reaches it (NodeAddr).",
        'envctl_master=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        'ENVCTL_SLURM_MASTER=$(scontrol show node -o "$envctl_master" | tr " " "\\n" | sed -n "s/^NodeAddr=//p")',
        'ENVCTL_SLURM_MASTER=${ENVCTL_SLURM_MASTER:-$envctl_master}',
        f"ENVCTL_SLURM_CONTAINER={shlex.quote(hostscript.container_name(export))}",
        "export ENVCTL_SLURM_MASTER ENVCTL_SLURM_CONTAINER",
        "",
        "# What each task runs on its node (bash -c envctl_node).",
        "envctl_node() {",
        *[f"  {line}" if line and not _inside_heredoc(node, i) else line for i, line in enumerate(node)],
        "}",
        "export -f envctl_node",
        "",
        "# --label: each line of output starts with its task number, which is the node's rank here.",
        f"srun --nodes={export.nnodes} --ntasks-per-node=1 --kill-on-bad-exit=1 --label bash -c envctl_node",
    ]
    return "\n".join(lines) + "\n"


def _inside_heredoc(lines: list[str], index: int) -> bool:
    """True for a here-document's body and its delimiter line (which must not be indented)."""
    inside = False
    for i, line in enumerate(lines):
        if i == index:
            return inside or (line == hostscript.FILE_END)
        if inside and line == hostscript.FILE_END:
            inside = False
        elif line.endswith(f"<<'{hostscript.FILE_END}'"):
            inside = True
    return False


def write(export: Export) -> dict[str, str]:
    return {SCRIPT: script(export)}


def how_to_run(export: Export) -> list[str]:
    reference = _reference(export)
    return [
        f"On every node the job may get: `envctl up {reference} --hosts NODES` from a machine with envctl (the same "
        "environment on each node: image, artifacts from envctl's cache, setup steps); the nodes' containers use "
        "host networking, so the ranks reach each other at the nodes' addresses.",
        "",
        f"Then, on a host of the cluster: `sbatch {SCRIPT}` (it asks for {export.nnodes} nodes, one task each; add "
        "`--partition`, `--time`, `--account` as the site wants). Output: "
        f"`{export.job}-<job id>.out` in the submit directory.",
        "",
        "Each task (SLURM_NODEID = rank) writes the prelude's files into the container's workspace "
        "(`/envctl/export/<job id>/`) with `docker exec`, then starts the prelude there with the master = the job's "
        "first host at its Slurm NodeAddr. A task that fails ends the step (`--kill-on-bad-exit=1`); "
        "`scancel` and the end of the time limit reach the command in the container too (the task passes "
        "TERM/INT on to it).",
        "",
        "Every node needs Slurm's slurmd, bash, and a docker CLI that reaches the node's own engine (the job inherits "
        "the submitter's environment: leave DOCKER_HOST out unless it means the same on every node).",
    ]


FORMAT = Format("slurm", "an sbatch script: one task per node, each in the container envctl up made there",
                write, how_to_run)
