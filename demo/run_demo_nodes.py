"""`make demo-nodes`: one training of the CPU reference workflow across two servers, through envctl.

1. The image, the tiny model and the dataset as `make demo` makes them (demo/run_demo.py's
   pieces); the image is also written as a tarball (`docker save`): the servers reach no
   registry, so `up` sends it to each and loads it there.
2. Two servers on this machine: the SSH lab of the remote-host tests (tests/sshlab.py), each
   server a real OpenSSH server and a Docker engine of its own in network and mount namespaces,
   the two on one subnet. They cannot reach this machine's loopback, so envctl pushes the
   artifacts (`fetch: push`) from its cache here, which the loopback HF mirror fills.
3. `envctl up chatglm-tiny-cpu:nodes --hosts lab1,lab2`: the same environment on both (host
   networking, the image loaded, the artifacts placed, setup run).
4. `envctl exec train --nodes lab1,lab2`: envctl checks the two nodes match, picks lab1's
   address on the shared subnet as the master and a free port there, and starts torchrun in
   both containers at once (static rendezvous: node rank 0 and 1); ptune.py trains one model
   over gloo, each rank on half of every batch, and prints the global batch's loss.
5. Each rank's first and last loss. The demo fails unless both ranks logged the same losses
   and rank 0 alone wrote a checkpoint (check_training, which make demo-slurm shares). Rank 0's
   checkpoint and both nodes' logs are copied to .demo/nodes/ before the servers are taken apart.

Needs root on Debian/Ubuntu (the lab's namespaces, veth pairs and engines) and what
`make engine` installs (Docker, OpenSSH, iproute2). Everything stays under .demo/ (the demo's
state directory, shared with `make demo`: the image build and the generated repos are reused).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

from run_demo import STATE, build_image, clean_environ, envctl, mirror, step, tiny_repos

from sshlab import Lab, LabError  # tests/ is on sys.path (run_demo puts it there)

NODES = ("lab1", "lab2")
MANIFEST = "chatglm-tiny-cpu:nodes"
ENV_NAME = "envctl-chatglm-tiny-cpu-nodes"
IMAGE_REF = "envctl/cpu-reference:py311-torch2.13"
DATA_DIR = "/root/envctl"  # envctl's directory on each server (the server's own /root)
LOSS = re.compile(r"^\[(\d+) (\S+)\] step (\d+) loss ([0-9.]+)$", re.M)
TRAINED = re.compile(r"^\[(\d+) (\S+)\] ptune: trained in ([0-9.]+)s$", re.M)


def image_tarball(image_id: str, state: Path) -> Path:
    """The image as a `docker save` tarball, written once per image ID (to a .part file first,
    so an interrupted save is never taken for a whole one)."""
    tarball = state / "images" / f"cpu-reference-{image_id.removeprefix('sha256:')[:12]}.tar"
    if not tarball.exists():
        tarball.parent.mkdir(parents=True, exist_ok=True)
        part = tarball.with_name(tarball.name + ".part")
        subprocess.run(["docker", "save", "-o", str(part), IMAGE_REF], check=True)
        part.rename(tarball)
    return tarball


def lab_environ(lab: Lab, state: Path, env: dict) -> dict:
    """envctl's settings for the lab: its ssh config (host keys in its own known_hosts), an
    inventory of the two servers with fetch: push, short-pathed SSH master sockets."""
    inventory = state / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"defaults": {"data_dir": DATA_DIR, "fetch": "push"},
                                         "hosts": {name: {} for name in NODES}}))
    control = Path(tempfile.mkdtemp(prefix="ecn-"))  # unix socket paths are short
    return {**env, "ENVCTL_SSH_CONFIG": str(lab.ssh_config), "ENVCTL_INVENTORY": str(inventory),
            "ENVCTL_SSH_CONTROL_DIR": str(control)}


def losses_by_rank(output: str) -> dict[int, list[tuple[int, float]]]:
    """(step, loss) per rank, from exec --nodes's `[rank host] step N loss X` lines."""
    found: dict[int, list[tuple[int, float]]] = {}
    for rank, _host, number, loss in LOSS.findall(output):
        found.setdefault(int(rank), []).append((int(number), float(loss)))
    return found


def keep_outputs(lab: Lab, state: Path, into: str = "nodes", data_dir: str = DATA_DIR, logs: bool = True) -> Path:
    """Copy each server's checkpoint, if it has one, and with `logs` its logs (exec --nodes writes
    them) out of the servers (they go with the lab), to state/<into>/kept/<node>/."""
    kept = state / into / "kept"
    shutil.rmtree(kept, ignore_errors=True)
    kept.mkdir(parents=True)
    for name in NODES:
        workspace = lab.path(name, f"{data_dir}/workspaces/{ENV_NAME}")
        if logs:
            shutil.copytree(workspace / "logs", kept / name / "logs")
        if (workspace / "output" / "ptune").is_dir():
            shutil.copytree(workspace / "output" / "ptune", kept / name / "checkpoint")
    return kept


class NotOneTraining(Exception):
    """The ranks' losses or checkpoints say the nodes did not train one model."""


def check_training(losses: dict[int, list[tuple[int, float]]], kept: Path,
                   trained: dict[int, float] | None = None) -> None:
    """The verdict on one training across NODES (make demo-nodes and make demo-slurm): prints each
    rank's first and last loss (and, given `trained`, its training seconds), then raises
    NotOneTraining unless every rank logged losses, every rank the same (step, loss) list, and
    rank 0 alone wrote a checkpoint (kept/<node>/checkpoint, as keep_outputs copies them)."""
    for rank, name in enumerate(NODES):
        mine = losses.get(rank) or []
        if not mine:
            raise NotOneTraining(f"rank {rank} ({name}) logged no loss")
        (first_step, first), (last_step, last) = mine[0], mine[-1]
        took = "" if trained is None else f", trained in {trained.get(rank, float('nan')):.1f} s"
        print(f"rank {rank} ({name}): first loss {first:.4f} (step {first_step}), last loss {last:.4f} "
              f"(step {last_step}){took}")
    if len({tuple(mine) for mine in losses.values()}) != 1 or len(losses) != len(NODES):
        raise NotOneTraining("the ranks logged different losses: they did not train one model")
    checkpoints = [name for name in NODES if (kept / name / "checkpoint").is_dir()]
    if checkpoints != [NODES[0]]:
        raise NotOneTraining(f"checkpoints written on {', '.join(checkpoints) or 'no node'}; rank 0 alone writes one")
    print(f"checkpoint: {kept / NODES[0] / 'checkpoint'}   (rank 0's; rank 1 writes none)")


@contextmanager
def environment_on_lab(state: Path, demo: str):
    """The steps both multi-node demos begin with: the image built and written as a tarball, the
    tiny repos, a lab of NODES, and `envctl up MANIFEST --hosts` there through the loopback
    mirror. Yields (lab, environ); the lab is taken apart when the block ends."""
    env = clean_environ(state)
    t = step("image: prepared and built as `make demo` does, then written as a tarball for the servers")
    image = build_image(env)
    tarball = image_tarball(image, state)
    env["TINY_IMAGE_TARBALL"] = str(tarball)
    print(f"   {tarball} ({tarball.stat().st_size / 1e9:.2f} GB, {time.perf_counter() - t:.1f} s)")

    t = step("weights and dataset: generated in the image, served by a loopback HF mirror")
    model, dataset = tiny_repos(image, state)
    print(f"   ({time.perf_counter() - t:.1f} s)")

    t = step("two servers: the SSH lab (real sshd and Docker engine each, one subnet)")
    try:
        lab = Lab(hosts=len(NODES))
    except LabError as exc:
        raise SystemExit(f"{demo}: {exc}") from None
    with lab:
        print("   " + ", ".join(f"{name} {lab.ip(name)}" for name in NODES) + f" ({time.perf_counter() - t:.1f} s)")
        env = lab_environ(lab, state, env)
        hosts = ",".join(NODES)
        with mirror(model, dataset, env) as served:
            t = step(f"envctl up {MANIFEST} --hosts {hosts}   (HF_ENDPOINT={served.url}, fetch: push)")
            envctl("up", MANIFEST, "--hosts", hosts, env=env)
            print(f"   ({time.perf_counter() - t:.1f} s)")
        yield lab, env
        t = step("the servers are taken apart")
    print(f"   ({time.perf_counter() - t:.1f} s)")


def main() -> None:
    started = time.perf_counter()
    state = STATE
    with environment_on_lab(state, "demo-nodes") as (lab, env):
        hosts = ",".join(NODES)
        t = step(f"envctl exec train --nodes {hosts}   (torchrun, static rendezvous, gloo)")
        out = envctl("exec", "train", "--nodes", hosts, env=env).stdout
        print(f"   ({time.perf_counter() - t:.1f} s)")
        kept = keep_outputs(lab, state)

    losses = losses_by_rank(out)
    trained = {int(rank): float(s) for rank, _host, s in TRAINED.findall(out)}
    print(f"\n== done in {time.perf_counter() - started:.0f} s")
    try:
        check_training(losses, kept, trained)
    except NotOneTraining as problem:
        raise SystemExit(f"demo-nodes: {problem}") from None
    print(f"logs:       {kept}/*/logs")


if __name__ == "__main__":
    main()
