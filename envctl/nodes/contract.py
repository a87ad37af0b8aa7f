"""The per-node contract: what each node's entrypoint process gets when one run spans nodes.

Rank is the order the nodes were given (rank 0 is the master). Every value is computed here,
once, from the ordered nodes, so that every node sees the same picture; nothing is sampled on a
node (a port drawn on each node is exactly what breaks the tutorials' commands).

Environment (only for runs on two or more nodes; single-node runs are unchanged):

    ENVCTL_NNODES, ENVCTL_NODE_RANK       node count, this node's rank
    ENVCTL_MASTER_ADDR, ENVCTL_MASTER_PORT node 0's data-plane IPv4 (a literal IP: msrun needs one), one port
    ENVCTL_NODE_IPS                       data-plane IPs in rank order, newline-separated (SkyPilot, dstack)
    ENVCTL_NPROC_PER_NODE, ENVCTL_WORLD_SIZE processes per node, and in all (nodes must be equal)
    ENVCTL_RUN_ID, ENVCTL_RUN_DIR         the run's id and its directory in the container
    ENVCTL_HOSTFILE                       `<ip> slots=<n>` lines in rank order (DeepSpeed, MPI, dstack)
    ENVCTL_DS_WORLD_INFO                  what DeepSpeed's runner passes as --world_info
    ENVCTL_IFNAME                         this node's interface towards the master
    MASTER_ADDR, MASTER_PORT              read by torch's env:// init and by scripts (`${MASTER_ADDR:-127.0.0.1}`)
    PET_NNODES, PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT, PET_NPROC_PER_NODE
                                          torchrun's defaults for flags not given (torch/distributed/argparse_util.py:
                                          every `action=env` flag defaults to PET_<DEST>; Kubeflow relies on it)
    GLOO_SOCKET_IFNAME                    gloo's interface (PyTorch's own answer to a wrong interface)
    HCCL_IF_IP (npu)                      HCCL's host IP, its highest-priority choice (CANN envref_07_0073)

RANK, LOCAL_RANK and WORLD_SIZE are never set: launchers set them per process, and three
orchestrators give them three meanings (pods, processes, NPUs: kubeflow/trainer #1790).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import shlex
from collections import OrderedDict
from dataclasses import dataclass

RUN_DIR_IN_CONTAINER = "/envctl/nodes"  # under the workspace mount (plan.WORKSPACE_TARGET): no extra mount
FORBIDDEN = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK")


class ContractError(ValueError):
    """The nodes cannot form one run (too few, duplicate address, unequal processes)."""


@dataclass(frozen=True)
class Node:
    name: str  # as the inventory names it (lab1)
    address: str  # data-plane IPv4 address the other nodes reach it at
    processes: int  # processes the launcher starts on it (its cards; CPU runs choose)
    ifname: str | None = None  # its interface towards the master (envctl.nodes.addresses)
    source_ip: str | None = None  # its source address towards the master (HCCL_IF_IP); default: address


@dataclass(frozen=True)
class Contract:
    nodes: tuple[Node, ...]
    master_port: int
    run_id: str
    device_kind: str = "cpu"

    @property
    def nnodes(self) -> int:
        return len(self.nodes)

    @property
    def master_addr(self) -> str:
        return self.nodes[0].address

    @property
    def nproc_per_node(self) -> int:
        return self.nodes[0].processes

    @property
    def world_size(self) -> int:
        return sum(node.processes for node in self.nodes)

    @property
    def run_dir(self) -> str:
        return f"{RUN_DIR_IN_CONTAINER}/{self.run_id}"

    def hostfile(self) -> str:
        """DeepSpeed's hostfile (`^(\\S+)\\s+slots=(\\d+)`, deepspeed/launcher/runner.py), rank order."""
        return "".join(f"{node.address} slots={node.processes}\n" for node in self.nodes)

    def world_info(self) -> OrderedDict:
        """{host: [local slot ids]} in rank order, as DeepSpeed's runner builds it from the hostfile."""
        return OrderedDict((node.address, list(range(node.processes))) for node in self.nodes)

    def ds_world_info(self) -> str:
        """urlsafe base64 of the JSON world info, byte for byte as DeepSpeed's encode_world_info
        writes it (json.dumps with its default separators; deepspeed/launcher/runner.py)."""
        return base64.urlsafe_b64encode(json.dumps(self.world_info()).encode("utf-8")).decode("utf-8")

    def env(self, rank: int) -> dict[str, str]:
        """The environment of node `rank`'s entrypoint process."""
        node = self.nodes[rank]
        port = str(self.master_port)
        env = {
            "ENVCTL_NNODES": str(self.nnodes), "ENVCTL_NODE_RANK": str(rank),
            "ENVCTL_MASTER_ADDR": self.master_addr, "ENVCTL_MASTER_PORT": port,
            "ENVCTL_NODE_IPS": "\n".join(n.address for n in self.nodes),
            "ENVCTL_NPROC_PER_NODE": str(self.nproc_per_node), "ENVCTL_WORLD_SIZE": str(self.world_size),
            "ENVCTL_RUN_ID": self.run_id, "ENVCTL_RUN_DIR": self.run_dir,
            "ENVCTL_HOSTFILE": f"{self.run_dir}/hostfile", "ENVCTL_DS_WORLD_INFO": self.ds_world_info(),
            "MASTER_ADDR": self.master_addr, "MASTER_PORT": port,
            "PET_NNODES": str(self.nnodes), "PET_NODE_RANK": str(rank), "PET_MASTER_ADDR": self.master_addr,
            "PET_MASTER_PORT": port, "PET_NPROC_PER_NODE": str(self.nproc_per_node),
        }
        if node.ifname:
            env["ENVCTL_IFNAME"] = node.ifname
            env["GLOO_SOCKET_IFNAME"] = node.ifname
        if self.device_kind == "npu":
            env["HCCL_IF_IP"] = node.source_ip or node.address
        return env

    def nodes_json(self) -> str:
        """The run as one JSON document (the same on every node)."""
        document = {
            "run_id": self.run_id, "nnodes": self.nnodes, "world_size": self.world_size,
            "nproc_per_node": self.nproc_per_node,
            "master": {"addr": self.master_addr, "port": self.master_port},
            "nodes": [{"rank": rank, "name": node.name, "address": node.address, "ifname": node.ifname,
                       "processes": node.processes} for rank, node in enumerate(self.nodes)],
        }
        return json.dumps(document, indent=2) + "\n"

    def env_file(self, rank: int) -> str:
        """The environment as `NAME='value'` lines for `. FILE` in sh (values shell-quoted, so the
        newline-separated ENVCTL_NODE_IPS survives); for reading, not for `docker --env-file`."""
        return "".join(f"{key}={shlex.quote(value)}\n" for key, value in sorted(self.env(rank).items()))

    def files(self, rank: int) -> dict[str, str]:
        """The per-run directory's files for node `rank`: name → text."""
        return {"nodes.json": self.nodes_json(), "hostfile": self.hostfile(), "env": self.env_file(rank)}


def build_contract(nodes: list[Node], master_port: int, run_id: str, device_kind: str = "cpu") -> Contract:
    """Check the nodes can form one run and return its contract. Raises ContractError: fewer
    than two nodes, a name or address twice, an address that is not an IPv4 literal, unequal
    process counts (msrun's MS_NODE_ID = node_rank × local_worker_num + i and DeepSpeed's slots
    assume equal nodes), no process on a node, a port outside 1–65535."""
    if len(nodes) < 2:
        raise ContractError(f"a run on several nodes needs two or more, got {len(nodes)}")
    for what in ("name", "address"):
        seen: dict[str, int] = {}
        for rank, node in enumerate(nodes):
            value = getattr(node, what)
            if value in seen:
                raise ContractError(f"nodes {seen[value]} and {rank} have the same {what} {value}")
            seen[value] = rank
    for node in nodes:
        try:
            ipaddress.IPv4Address(node.address)
        except ValueError:
            raise ContractError(f"{node.name}: '{node.address}' is not an IPv4 address (msrun and HCCL want a literal IP)") from None
        if node.processes < 1:
            raise ContractError(f"{node.name}: no process to start (processes {node.processes})")
    counts = {node.processes for node in nodes}
    if len(counts) > 1:
        listing = ", ".join(f"{node.name} {node.processes}" for node in nodes)
        raise ContractError(f"nodes must start the same number of processes ({listing}); choose equal cards with --cards")
    if not 1 <= master_port <= 65535:
        raise ContractError(f"{master_port} is not a port (1 to 65535)")
    return Contract(tuple(nodes), master_port, run_id, device_kind)


def new_run_id(entrypoint: str, timestamp: str, token: str) -> str:
    """`<entrypoint>-<timestamp>-<token>`: the caller passes the time (e.g. 20261101-120000) and a
    random token, so this stays pure."""
    return f"{entrypoint}-{timestamp}-{token}"
