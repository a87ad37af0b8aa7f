"""The per-node contract and each launcher's per-node command (envctl.nodes.contract, launchers)."""

import base64
import json
import shlex
import subprocess

import pytest

from envctl.nodes.contract import FORBIDDEN, ContractError, Node, build_contract
from envctl.nodes.launchers import default_port, msrun_launcher_arguments, node_command


def two_nodes(kind="npu", processes=8):
    return build_contract([Node("lab1", "10.0.0.1", processes, "eth1"), Node("lab2", "10.0.0.2", processes, "eth1", "10.0.0.2")],
                          29500, "finetune-20261101-120000-ab12", kind)


def test_every_node_gets_its_rank_and_the_same_master():
    contract = two_nodes()
    for rank in (0, 1):
        env = contract.env(rank)
        assert env["ENVCTL_NODE_RANK"] == env["PET_NODE_RANK"] == str(rank)
        assert env["ENVCTL_NNODES"] == env["PET_NNODES"] == "2"
        assert env["ENVCTL_MASTER_ADDR"] == env["MASTER_ADDR"] == env["PET_MASTER_ADDR"] == "10.0.0.1"
        assert env["ENVCTL_MASTER_PORT"] == env["MASTER_PORT"] == env["PET_MASTER_PORT"] == "29500"
        assert env["ENVCTL_NODE_IPS"] == "10.0.0.1\n10.0.0.2"
        assert env["ENVCTL_WORLD_SIZE"] == "16" and env["ENVCTL_NPROC_PER_NODE"] == env["PET_NPROC_PER_NODE"] == "8"
        assert env["GLOO_SOCKET_IFNAME"] == env["ENVCTL_IFNAME"] == "eth1"
        assert env["HCCL_IF_IP"] == ("10.0.0.1", "10.0.0.2")[rank]
        assert env["ENVCTL_HOSTFILE"] == "/envctl/nodes/finetune-20261101-120000-ab12/hostfile"
        assert not set(FORBIDDEN) & set(env)


def test_hccl_if_ip_only_on_ascend():
    assert "HCCL_IF_IP" not in two_nodes("mlu").env(0) and "HCCL_IF_IP" not in two_nodes("cpu", 1).env(1)


def test_hostfile_and_world_info_are_deepspeeds():
    contract = two_nodes()
    assert contract.hostfile() == "10.0.0.1 slots=8\n10.0.0.2 slots=8\n"
    # What deepspeed/launcher/runner.py's encode_world_info makes of the same resources.
    expected = base64.urlsafe_b64encode(b'{"10.0.0.1": [0, 1, 2, 3, 4, 5, 6, 7], "10.0.0.2": [0, 1, 2, 3, 4, 5, 6, 7]}').decode()
    assert contract.ds_world_info() == expected == contract.env(1)["ENVCTL_DS_WORLD_INFO"]


def test_files_of_the_run_directory():
    contract = two_nodes()
    files = contract.files(1)
    document = json.loads(files["nodes.json"])
    assert document["master"] == {"addr": "10.0.0.1", "port": 29500}
    assert [(n["rank"], n["name"], n["address"], n["processes"]) for n in document["nodes"]] == [
        (0, "lab1", "10.0.0.1", 8), (1, "lab2", "10.0.0.2", 8)]
    # The env file is read by a real sh: every value, the multi-line one included, survives.
    shown = subprocess.run(["sh", "-c", '. "$1"; printf "%s|%s" "$ENVCTL_NODE_IPS" "$ENVCTL_NODE_RANK"', "sh", "/dev/stdin"],
                           input=files["env"], capture_output=True, text=True, check=True).stdout
    assert shown == "10.0.0.1\n10.0.0.2|1"


@pytest.mark.parametrize("nodes, words", [
    ([Node("lab1", "10.0.0.1", 8)], "needs two or more"),
    ([Node("lab1", "10.0.0.1", 8), Node("lab1", "10.0.0.2", 8)], "same name lab1"),
    ([Node("lab1", "10.0.0.1", 8), Node("lab2", "10.0.0.1", 8)], "same address 10.0.0.1"),
    ([Node("lab1", "10.0.0.1", 8), Node("lab2", "10.0.0.2", 4)], "lab1 8, lab2 4"),
    ([Node("lab1", "10.0.0.1", 8), Node("lab2", "lab2.example", 8)], "not an IPv4 address"),
    ([Node("lab1", "10.0.0.1", 0), Node("lab2", "10.0.0.2", 0)], "no process"),
])
def test_nodes_that_cannot_form_one_run(nodes, words):
    with pytest.raises(ContractError, match=words):
        build_contract(nodes, 29500, "r")


# The research's launcher table (shared/research/scale-out.md §1.2–1.4, §3.3), node 1 of two with 8 cards.
LAUNCHER_TABLE = [
    ("torchrun", "torchrun --nnodes 2 --node_rank 1 --nproc_per_node 8 --master_addr 10.0.0.1 --master_port 29500"),
    ("torch.distributed.launch", "python -m torch.distributed.launch --nnodes 2 --node_rank 1 --nproc_per_node 8 "
                                 "--master_addr 10.0.0.1 --master_port 29500"),
    ("msrun", "msrun --worker_num=16 --local_worker_num=8 --master_addr=10.0.0.1 --master_port=29500 --node_rank=1 --join=True"),
    ("none", ""),
]


@pytest.mark.parametrize("launcher, expected", LAUNCHER_TABLE)
def test_per_node_commands(launcher, expected):
    assert shlex.join(node_command(launcher, two_nodes(), 1)) == expected


def test_deepspeed_node_command_is_the_line_its_pdsh_runner_starts():
    # PDSHRunner.get_cmd: python -u -m deepspeed.launcher.launch --world_info=B64 --node_rank=%n --master_addr=A --master_port=P
    contract = two_nodes()
    assert node_command("deepspeed", contract, 1, python="/usr/bin/python3") == (
        "/usr/bin/python3", "-u", "-m", "deepspeed.launcher.launch", f"--world_info={contract.ds_world_info()}",
        "--node_rank=1", "--master_addr=10.0.0.1", "--master_port=29500")


def test_msrun_launcher_nine_argument_form():
    assert msrun_launcher_arguments(two_nodes(), 1) == ("16", "8", "10.0.0.1", "29500", "1", "output/msrun_log", "True", "7200")


@pytest.mark.parametrize("launcher, params, explicit, port", [
    ("torchrun", {}, None, 29500), ("msrun", {}, None, 8118), ("deepspeed", {"master_port": 29501}, None, 29501),
    ("torchrun", {"master_port": "20001"}, None, 20001), ("torchrun", {"master_port": 20001}, 30000, 30000),
])
def test_master_port_choice(launcher, params, explicit, port):
    assert default_port(launcher, params, explicit) == port
