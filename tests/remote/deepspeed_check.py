"""The training script of tests/remote/test_remote_deepspeed.py, started on every lab node by
`python -u -m deepspeed.launcher.launch` (DeepSpeed's per-node launcher). It prints one line,
`DSCHECK {json}`, with:

- what the launcher handed this process: RANK, LOCAL_RANK, WORLD_SIZE, CROSS_RANK, CROSS_SIZE,
  LOCAL_SIZE, MASTER_ADDR/PORT, the `--local_rank=N` argument (deepspeed/launcher/launch.py);
- `launch_argv`: the launcher's own command line (/proc/<parent>/cmdline);
- `pdsh_line`: the command DeepSpeed's multi-node runner builds for this node from the run's
  hostfile (deepspeed.launcher.runner's fetch_hostfile, parse_inclusion_exclusion and
  encode_world_info, then PDSHRunner.get_cmd, from `sys.executable` on, `%n` replaced by this
  node's rank, as pdsh replaces it), so the test holds envctl's start to DeepSpeed's own line;
- DeepSpeed's accelerator and its communication backend on a CPU-only torch, the sum of an
  all-reduce of rank + 1 over every process and the source address of every rank towards the
  master (all_gather_object), i.e. proof that the processes talk across the two hosts.

With DSCHECK_FAIL_ON_NODE=R the process on node R exits 3 before the rendezvous.
"""

import argparse
import json
import os
import socket
import sys

import torch
import torch.distributed as dist
from deepspeed.accelerator import get_accelerator
from deepspeed.launcher.multinode_runner import PDSHRunner
from deepspeed.launcher.runner import encode_world_info, fetch_hostfile, parse_inclusion_exclusion
from deepspeed.launcher.runner import parse_args as runner_args


def launch_argv() -> list[str]:
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as handle:
        return [part.decode() for part in handle.read().split(b"\0")[:-1]]


def pdsh_line() -> list[str]:
    hostfile = os.environ["ENVCTL_HOSTFILE"]
    args = runner_args(["--hostfile", hostfile, "--master_addr", os.environ["ENVCTL_MASTER_ADDR"],
                        "--master_port", os.environ["ENVCTL_MASTER_PORT"], sys.argv[0]])
    active = parse_inclusion_exclusion(fetch_hostfile(hostfile), args.include, args.exclude)
    command = PDSHRunner(args, encode_world_info(active)).get_cmd(dict(os.environ), active)[0]
    start = command.index(sys.executable)
    return [part.replace("%n", os.environ["ENVCTL_NODE_RANK"]) for part in command[start:]]


def source_address(master: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((master, 9))  # no packet is sent: the kernel only picks the route
        return probe.getsockname()[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, required=True)
    local_rank = parser.parse_args().local_rank
    if os.environ.get("DSCHECK_FAIL_ON_NODE") == os.environ["ENVCTL_NODE_RANK"]:
        print(f"node {os.environ['ENVCTL_NODE_RANK']} gives up before the rendezvous", flush=True)
        sys.exit(3)
    found = {name: os.environ.get(name) for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "CROSS_RANK", "CROSS_SIZE",
                                                       "LOCAL_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    # torch.distributed with the backend DeepSpeed's accelerator names (gloo on a CPU torch
    # without oneCCL) and the launcher's env:// variables. Not deepspeed.init_distributed(): on the
    # CPU accelerator it first JIT-compiles DeepSpeed's shared-memory op (deepspeed/comm/torch.py,
    # build_shm_op), which needs a C++ compiler the image does not carry.
    dist.init_process_group(backend=get_accelerator().communication_backend_name(), init_method="env://")
    rank, world = dist.get_rank(), dist.get_world_size()
    total = torch.tensor([float(rank + 1)])
    dist.all_reduce(total)
    addresses = [None] * world
    dist.all_gather_object(addresses, source_address(os.environ["MASTER_ADDR"]))
    report = {
        "env": found, "local_rank_argument": local_rank, "dist_rank": rank, "dist_world_size": world,
        "accelerator": get_accelerator()._name, "backend": dist.get_backend(), "allreduce": total.item(),
        "addresses": addresses, "launch_argv": launch_argv(), "pdsh_line": pdsh_line(), "executable": sys.executable,
        "pythonpath": os.environ.get("PYTHONPATH", ""), "cwd": os.getcwd(),
    }
    print("DSCHECK " + json.dumps(report, sort_keys=True), flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
