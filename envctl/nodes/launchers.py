"""The command each launcher needs on each node, and its default master port.

envctl starts every node itself (over the SSH connection it holds to each host), so each node
runs exactly what the launcher's own multi-node machinery would have started there:

- torchrun / torch.distributed.launch, static rendezvous (no etcd; torch 1.9 and later):
  `--nnodes N --node_rank R --nproc_per_node P --master_addr A --master_port M`; the underscore
  spellings, which torch accepts since 1.9 (the hyphen ones only since 2.0), so the vendor
  builds (torch 1.11 + torch_npu, torch 1.13 + torch_mlu) take them (torch/distributed/run.py).
- DeepSpeed: `python -u -m deepspeed.launcher.launch --world_info=B64 --node_rank=R
  --master_addr=A --master_port=M`, the line its pdsh runner starts on every host (with `%n`
  as the node rank) (deepspeed/launcher/multinode_runner.py, PDSHRunner.get_cmd), run from the
  same directory with that directory in front of PYTHONPATH, as its runner does.
- msrun: `--worker_num=W --local_worker_num=L --master_addr=A --master_port=M --node_rank=R
  --join=True` (mindspore/parallel/cluster/run.py); without --join=True msrun returns as soon as
  its workers start.
- none: nothing; the command reads the contract's variables itself.
"""

from __future__ import annotations

from envctl.nodes.contract import Contract

DEFAULT_PORTS = {"torchrun": 29500, "torch.distributed.launch": 29500, "deepspeed": 29500, "msrun": 8118, "none": 29500}


def default_port(launcher: str, params: dict[str, object] | None = None, explicit: int | None = None) -> int:
    """The master port: --master-port, else the entrypoint's own `master_port` param (the
    tutorial's value, e.g. FastChat's 20001), else the launcher's default (29500 for torch's
    static rendezvous and DeepSpeed, 8118 for msrun)."""
    if explicit is not None:
        return explicit
    value = (params or {}).get("master_port")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return DEFAULT_PORTS[launcher]


def node_command(launcher: str, contract: Contract, rank: int, python: str = "python") -> tuple[str, ...]:
    """The launcher part of node `rank`'s command (the script and its arguments follow it)."""
    addr, port, n = contract.master_addr, str(contract.master_port), str(contract.nnodes)
    if launcher in ("torchrun", "torch.distributed.launch"):
        start = ("torchrun",) if launcher == "torchrun" else (python, "-m", "torch.distributed.launch")
        return start + ("--nnodes", n, "--node_rank", str(rank), "--nproc_per_node", str(contract.nproc_per_node),
                        "--master_addr", addr, "--master_port", port)
    if launcher == "deepspeed":
        return (python, "-u", "-m", "deepspeed.launcher.launch", f"--world_info={contract.ds_world_info()}",
                f"--node_rank={rank}", f"--master_addr={addr}", f"--master_port={port}")
    if launcher == "msrun":
        return ("msrun", f"--worker_num={contract.world_size}", f"--local_worker_num={contract.nproc_per_node}",
                f"--master_addr={addr}", f"--master_port={port}", f"--node_rank={rank}", "--join=True")
    if launcher == "none":
        return ()
    raise ValueError(f"unknown launcher {launcher!r}")


def msrun_launcher_arguments(contract: Contract, rank: int, log_dir: str = "output/msrun_log",
                             cluster_time_out: int = 7200) -> tuple[str, ...]:
    """MindFormers' scripts/msrun_launcher.sh arguments after "CMD", its 9-argument multi-node
    form: WORKER_NUM LOCAL_WORKER MASTER_ADDR MASTER_PORT NODE_RANK LOG_DIR JOIN CLUSTER_TIME_OUT
    (r1.1.0 README: node 0 `... 8 4 192.168.1.1 8118 0 output/msrun_log False 300`; JOIN True here)."""
    return (str(contract.world_size), str(contract.nproc_per_node), contract.master_addr, str(contract.master_port),
            str(rank), log_dir, "True", str(cluster_time_out))
