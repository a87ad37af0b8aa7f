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
   unless both ranks logged the same losses and rank 0 alone wrote a checkpoint.

Needs root on Debian/Ubuntu and what `make engine` installs (Docker, OpenSSH, iproute2, Slurm,
MUNGE). State under .demo/ as the other demos.
"""

from __future__ import annotations

import re
import shutil
import time

from run_demo import STATE, build_image, clean_environ, envctl, mirror, step, tiny_repos
from run_demo_nodes import DATA_DIR, ENV_NAME, MANIFEST, NODES, image_tarball, lab_environ

from sshlab import Lab, LabError  # tests/ is on sys.path (run_demo puts it there)
from sshlab_slurm import SlurmCluster

LOSS = re.compile(r"^(\d+): step (\d+) loss ([0-9.]+)$", re.M)  # srun --label: "<task>: <line>"


def losses_by_rank(output: str) -> dict[int, list[tuple[int, float]]]:
    found: dict[int, list[tuple[int, float]]] = {}
    for rank, number, loss in LOSS.findall(output):
        found.setdefault(int(rank), []).append((int(number), float(loss)))
    return found


def keep_checkpoints(lab: Lab, state) -> object:
    """Copy each server's checkpoint directory, if it has one, out of the lab (it goes with it)."""
    kept = state / "slurm" / "kept"
    shutil.rmtree(kept, ignore_errors=True)
    kept.mkdir(parents=True)
    for name in NODES:
        checkpoint = lab.path(name, f"{DATA_DIR}/workspaces/{ENV_NAME}/output/ptune")
        if checkpoint.is_dir():
            shutil.copytree(checkpoint, kept / name / "checkpoint")
    return kept


def main() -> None:
    started = time.perf_counter()
    state = STATE
    env = clean_environ(state)

    t = step("image: prepared and built as `make demo` does, then written as a tarball for the servers")
    image = build_image(env)
    env["TINY_IMAGE_TARBALL"] = str(image_tarball(image, state))
    print(f"   ({time.perf_counter() - t:.1f} s)")

    t = step("weights and dataset: generated in the image, served by a loopback HF mirror")
    model, dataset = tiny_repos(image, state)
    print(f"   ({time.perf_counter() - t:.1f} s)")

    t = step("two servers: the SSH lab (real sshd and Docker engine each, one subnet)")
    try:
        lab = Lab(hosts=len(NODES))
    except LabError as exc:
        raise SystemExit(f"demo-slurm: {exc}") from None
    with lab:
        print(f"   ({time.perf_counter() - t:.1f} s)")
        env = lab_environ(lab, state, env)
        hosts = ",".join(NODES)
        with mirror(model, dataset, env) as served:
            t = step(f"envctl up {MANIFEST} --hosts {hosts}   (HF_ENDPOINT={served.url}, fetch: push)")
            envctl("up", MANIFEST, "--hosts", hosts, env=env)
            print(f"   ({time.perf_counter() - t:.1f} s)")

        t = step("Slurm on the servers: munged on each (one key), slurmctld on lab1, slurmd on both")
        try:
            cluster = SlurmCluster(lab, nodes=list(NODES))
        except LabError as exc:
            raise SystemExit(f"demo-slurm: {exc}") from None
        with cluster:
            print(f"   {cluster.node_states()} ({cluster.startup_seconds:.1f} s)")
            export_dir = state / "slurm-export"
            t = step(f"envctl export {MANIFEST} --entrypoint train --nodes 2 --format slurm -o {export_dir}")
            envctl("export", MANIFEST, "--entrypoint", "train", "--nodes", "2", "--format", "slurm",
                   "--data-dir", DATA_DIR, "-o", str(export_dir), env=env)
            t = step("sbatch --wait job.sh   (in a shell on lab1; one task per node, torchrun in each container)")
            job = cluster.submit((export_dir / "job.sh").read_text())
            seconds = time.perf_counter() - t
            print(f"   job {job.id}: {job.fields.get('JobState')} on {job.fields.get('NodeList')}, exit code "
                  f"{job.fields.get('ExitCode')} ({seconds:.1f} s)")
            kept = keep_checkpoints(lab, state)
            (kept / "job.out").write_text(job.output)
        t = step("the servers are taken apart")
    print(f"   ({time.perf_counter() - t:.1f} s)")

    if job.returncode != 0:
        raise SystemExit(f"demo-slurm: the job failed (sbatch exit {job.returncode}); its output:\n{job.output[-3000:]}")
    losses = losses_by_rank(job.output)
    print(f"\n== done in {time.perf_counter() - started:.0f} s")
    for rank, name in enumerate(NODES):
        mine = losses.get(rank) or []
        if not mine:
            raise SystemExit(f"demo-slurm: rank {rank} ({name}) logged no loss; the job's output:\n{job.output[-3000:]}")
        (first_step, first), (last_step, last) = mine[0], mine[-1]
        print(f"rank {rank} ({name}): first loss {first:.4f} (step {first_step}), last loss {last:.4f} (step {last_step})")
    if len({tuple(mine) for mine in losses.values()}) != 1 or len(losses) != len(NODES):
        raise SystemExit("demo-slurm: the ranks logged different losses: they did not train one model")
    checkpoints = [name for name in NODES if (kept / name / "checkpoint").is_dir()]
    if checkpoints != [NODES[0]]:
        raise SystemExit(f"demo-slurm: checkpoints written on {checkpoints or 'no node'}; rank 0 alone should write one")
    print(f"checkpoint: {kept / NODES[0] / 'checkpoint'}   (rank 0's; rank 1 writes none)")
    print(f"job output: {kept / 'job.out'}")


if __name__ == "__main__":
    main()
