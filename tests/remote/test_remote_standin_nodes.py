"""The five accelerator workflows' multi-node entrypoints across two simulated hosts of the SSH lab
(`envctl exec ENTRY --nodes lab1,lab2`): real sshd and Docker engine per host, host networking
on the lab's subnet, simulated MLU (16 devices) or Ascend (8 NPUs) device nodes under each host's
root, the shipped manifests brought up on both hosts by `envctl up --hosts` from the stand-in
images and the loopback upstream world (tests/standin_lab.py), exactly as
tests/integration/test_standins.py brings them up on this machine.

The stand-in launchers (tests/images/standin-common/standin/launchers.py) meet at the master as
the real ones do, so a node whose rank, node count, world info or master is wrong fails the run.
Each node's recorded launcher call is held to the launcher table of the research
(envctl.nodes.launchers: torch's static rendezvous flags or the PET_* variables torch reads for
flags left out, DeepSpeed's per-node line, msrun through MindFormers' msrun_launcher.sh in its
9-argument form), and its workers' ranks to what the launcher gives across nodes.
"""

from __future__ import annotations

import json
import re
import shutil

import docker
import pytest

import hostsim
from envctl.nodes.contract import Contract, Node
from envctl.nodes.launchers import msrun_launcher_arguments, node_command
from standin_cases import CASES
from standin_lab import open_lab

HOSTS = ("lab1", "lab2")
BY_REFERENCE = {case.reference: case for case in CASES}
# manifest reference → (entrypoint, launcher, processes per node), from tests/unit/test_nodes_shipped_commands.py
RUNS = {
    "chatglm3-mlu": [("train", "torch.distributed.launch", 2)],
    "chatglm2-npu": [("finetune", "deepspeed", 8)],
    "chinese-alpaca2-mlu:13b": [("sft", "torch.distributed.launch", 16), ("pretrain", "torch.distributed.launch", 16)],
    "chatglm2-npu-fastchat": [("train", "torchrun", 2)],
    "chatglm3-npu-mindformers": [("finetune", "msrun", 8)],
}


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    with open_lab(docker.from_env(), tmp_path_factory.mktemp("standin-nodes")) as made:
        yield made


def flags(argv: list[str]) -> dict[str, str | None]:
    found = {}
    for i, item in enumerate(argv):
        if item.startswith("--"):
            name, eq, value = item.partition("=")
            found[name] = value if eq else (argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else None)
    return found


def calls(world, host: str, container: str) -> list[dict]:
    path = world.remote(host, f"{world.data_dir()}/workspaces/{container}/standin-calls.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def contract_of(world, container: str, run_id: str, kind: str) -> Contract:
    path = world.remote("lab1", f"{world.data_dir()}/workspaces/{container}/nodes/{run_id}/nodes.json")
    document = json.loads(path.read_text())
    nodes = tuple(Node(n["name"], n["address"], n["processes"], n["ifname"]) for n in document["nodes"])
    return Contract(nodes, document["master"]["port"], document["run_id"], kind)


def launcher_call(new: list[dict], launcher: str) -> dict:
    """The node's launcher call: the one its workers name."""
    parents = {call["worker_of"] for call in new if "worker_of" in call}
    found = [call for call in new if call["seq"] in parents]
    assert len(found) == 1, f"{launcher}: launcher calls {[c['argv'] for c in found]}"
    return found[0]


def check_node(launcher: str, contract: Contract, rank: int, call: dict, workers: list[dict], processes: int) -> None:
    argv, env = call["argv"], call["env"]
    master, port = contract.master_addr, str(contract.master_port)
    assert "RANK" not in env and "WORLD_SIZE" not in env  # launchers set those, envctl never does
    if launcher == "msrun":
        # msrun_launcher.sh's 9-argument form (recorded: the msrun it starts)
        count, local, addr, mport, node_rank, log_dir, join, timeout = msrun_launcher_arguments(contract, rank)
        own = argv[:next(i for i, item in enumerate(argv) if i and not item.startswith("--"))]  # before the task script
        assert flags(own) == {"--worker_num": count, "--local_worker_num": local, "--master_addr": addr,
                               "--master_port": mport, "--node_rank": node_rank, "--log_dir": log_dir, "--join": join,
                               "--cluster_time_out": timeout}
        assert flags(list(node_command("msrun", contract, rank)[1:])).items() <= flags(own).items()
        ids = sorted(int(w["env"]["MS_NODE_ID"]) for w in workers)
        assert ids == list(range(rank * processes, (rank + 1) * processes))
        assert {(w["env"]["MS_WORKER_NUM"], w["env"]["MS_SCHED_HOST"], w["env"]["MS_SCHED_PORT"]) for w in workers} == {
            (str(2 * processes), master, port)}
        return
    expected = node_command(launcher, contract, rank)
    if launcher == "deepspeed" or "--nnodes" in argv:
        # an explicit multi-node form: the launcher table's flags with its values
        assert {k: flags(argv).get(k) for k in flags(expected)} == flags(expected), argv
    else:
        # the tutorial's own command: torch reads the node count and rank from the contract's PET_*
        assert "--nnodes" not in argv and "--node_rank" not in argv
        assert (env["PET_NNODES"], env["PET_NODE_RANK"], env["PET_MASTER_ADDR"], env["PET_MASTER_PORT"]) == (
            "2", str(rank), master, port)
        assert flags(argv).get("--master_port") in (None, port) and flags(argv).get("--master_addr") in (None, master)
    ranks = sorted(int(w["env"]["RANK"]) for w in workers)
    assert ranks == list(range(rank * processes, (rank + 1) * processes)), ranks
    assert sorted(int(w["env"]["LOCAL_RANK"]) for w in workers) == list(range(processes))
    assert {(w["env"]["WORLD_SIZE"], w["env"]["MASTER_ADDR"], w["env"]["MASTER_PORT"]) for w in workers} == {
        (str(2 * processes), master, port)}
    if launcher == "deepspeed":
        assert {(w["env"]["CROSS_RANK"], w["env"]["CROSS_SIZE"]) for w in workers} == {(str(rank), "2")}

# Entrypoints whose outputs the training reads, run first on each host (`exec --host`), as
# tests/standin_cases.py runs them first: ModelZoo's preprocess.sh writes ptuning/train_datasets.
PREPARE = {"chatglm2-npu": ["preprocess"]}

@pytest.mark.parametrize("reference", list(RUNS))
def test_the_multi_node_entrypoints_run_on_two_simulated_hosts(standins, world, lab, reference):
    case = BY_REFERENCE[reference]
    # One root path on both hosts, below each one's private /root: the device nodes, and so the
    # containers' configs, are the same on both, as on real servers.
    root = f"/root/{case.kind}-root"
    for host in HOSTS:
        made = world.remote(host, root)
        (hostsim.mlu_host(made, cards=16) if case.kind == "mlu" else hostsim.npu_host(made, cards=8))
        world.cleanups.append(lambda made=made: shutil.rmtree(made))
    world.write_inventory(**{host: {"root": root} for host in HOSTS})
    env = {k: v for k, v in standins.environ(case).items() if k != "ENVCTL_HOST_ROOT"}
    own = world.environ()
    env.update({k: own[k] for k in ("HOME", "ENVCTL_WORKSPACE", "ENVCTL_SSH_CONTROL_DIR", "ENVCTL_SSH_CONFIG",
                                    "ENVCTL_INVENTORY")})
    world.cleanups.append(lambda: [lab.docker(host, "rm", "-f", case.container) for host in HOSTS])

    up = world.run("up", case.reference, "--hosts", ",".join(HOSTS), env=env, timeout=900)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-5000:]
    for entrypoint in PREPARE.get(reference, ()):
        for host in HOSTS:
            prepared = world.run("exec", entrypoint, "--host", host, "--env", case.container, env=env, timeout=900)
            assert prepared.returncode == 0, prepared.stdout[-3000:] + prepared.stderr[-5000:]
    for entrypoint, launcher, processes in RUNS[reference]:
        marks = {host: len(calls(world, host, case.container)) for host in HOSTS}
        done = world.run("exec", entrypoint, "--nodes", ",".join(HOSTS), "--env", case.container, env=env, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
        run_id = re.search(r"^run (\S+): master ", done.stderr, re.M).group(1)
        contract = contract_of(world, case.container, run_id, case.kind)
        assert (contract.nnodes, contract.nproc_per_node, contract.master_addr) == (2, processes, lab.ip("lab1"))
        for rank, host in enumerate(HOSTS):
            new = calls(world, host, case.container)[marks[host]:]
            call = launcher_call(new, launcher)
            workers = [c for c in new if c.get("worker_of") == call["seq"]]
            assert len(workers) == processes, f"{host}: {len(workers)} workers"
            check_node(launcher, contract, rank, call, workers, processes)
            if case.kind == "npu":
                assert call["env"]["HCCL_IF_IP"] == lab.ip(host)  # HCCL's host address towards the master
