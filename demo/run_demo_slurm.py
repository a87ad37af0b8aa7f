"""`make demo-slurm`: the training of `make demo-nodes`, handed to a real Slurm instead of run by
`exec --nodes`.

1–3. As demo/run_demo_nodes.py: the image (and its tarball), the tiny model and dataset through
   a loopback HF mirror, two servers of the SSH lab, `envctl up chatglm-tiny-cpu:nodes --hosts
   lab1,lab2`.
4. Slurm on the two servers (tests/sshlab_slurm.py): Debian's munged on each with one key,
   slurmctld on lab1, slurmd on both.
5. `envctl export chatglm-tiny-cpu:nodes --entrypoint train --nodes 2 --format slurm`, then, in
   a shell on lab1, `sbatch --wait job.sh`: one task per node, each starting the prelude and
   torchrun in the container `up` made there (rank = SLURM_NODEID, master = lab1).
6. Each rank's first and last loss (the job's output, `srun --label`ed by rank); the demo fails
   unless both ranks logged the same losses and rank 0 alone wrote a checkpoint (demo-nodes'
   check_training). Rank 0's checkpoint and the job's output are kept in .demo/slurm/kept/.

tests/remote/test_slurm_training.py runs steps 5 and 6 (sbatch_training, check_training) on the
test session's lab, whose hosts already hold the image.

Needs root on Debian/Ubuntu and what `make engine` installs (Docker, OpenSSH, iproute2, Slurm,
MUNGE). State under .demo/ as the other demos.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from run_demo import STATE, envctl, step
from run_demo_nodes import (DATA_DIR, MANIFEST, NODES, NotOneTraining, check_training, environment_on_lab,
                            keep_outputs)

from sshlab import LabError  # tests/ is on sys.path (run_demo puts it there)
from sshlab_slurm import Job, SlurmCluster

# srun --label: "<task>: <line>", the task being the node's rank (one task per node)
LOSS = re.compile(r"^(\d+): step (\d+) loss ([0-9.]+)$", re.M)
TRAINED = re.compile(r"^(\d+): ptune: trained in ([0-9.]+)s$", re.M)


def losses_by_rank(output: str) -> dict[int, list[tuple[int, float]]]:
    """(step, loss) per rank, from the job's `<rank>: step N loss X` lines."""
    found: dict[int, list[tuple[int, float]]] = {}
    for rank, number, loss in LOSS.findall(output):
        found.setdefault(int(rank), []).append((int(number), float(loss)))
    return found


def trained_seconds(output: str) -> dict[int, float]:
    """ptune's own training time per rank, from the job's output."""
    return {int(rank): float(seconds) for rank, seconds in TRAINED.findall(output)}


def sbatch_training(cluster: SlurmCluster, env: dict, export_dir: Path, data_dir: str = DATA_DIR) -> Job:
    """Step 5: `envctl export MANIFEST --entrypoint train --nodes 2 --format slurm` into
    export_dir (envctl's directory on the nodes: data_dir), then `sbatch --wait job.sh` in a
    shell on the cluster's controller. Returns the ended job."""
    step(f"envctl export {MANIFEST} --entrypoint train --nodes 2 --format slurm -o {export_dir}")
    envctl("export", MANIFEST, "--entrypoint", "train", "--nodes", "2", "--format", "slurm",
           "--data-dir", data_dir, "-o", str(export_dir), env=env)
    t = step("sbatch --wait job.sh   (in a shell on lab1; one task per node, torchrun in each container)")
    job = cluster.submit((export_dir / "job.sh").read_text())
    print(f"   job {job.id}: {job.fields.get('JobState')} on {job.fields.get('NodeList')}, exit code "
          f"{job.fields.get('ExitCode')} ({time.perf_counter() - t:.1f} s)")
    return job


def main() -> None:
    started = time.perf_counter()
    state = STATE
    with environment_on_lab(state, "demo-slurm") as (lab, env):
        step("Slurm on the servers: munged on each (one key), slurmctld on lab1, slurmd on both")
        try:
            cluster = SlurmCluster(lab, nodes=list(NODES))
        except LabError as exc:
            raise SystemExit(f"demo-slurm: {exc}") from None
        with cluster:
            print(f"   {cluster.node_states()} ({cluster.startup_seconds:.1f} s)")
            job = sbatch_training(cluster, env, state / "slurm-export")
            kept = keep_outputs(lab, state, "slurm", logs=False)  # the job's output is the log
            (kept / "job.out").write_text(job.output)

    if job.returncode != 0:
        raise SystemExit(f"demo-slurm: the job failed (sbatch exit {job.returncode}); its output:\n{job.output[-3000:]}")
    print(f"\n== done in {time.perf_counter() - started:.0f} s")
    try:
        check_training(losses_by_rank(job.output), kept, trained_seconds(job.output))
    except NotOneTraining as problem:
        raise SystemExit(f"demo-slurm: {problem}; the job's output:\n{job.output[-3000:]}") from None
    print(f"job output: {kept / 'job.out'}")


if __name__ == "__main__":
    main()
