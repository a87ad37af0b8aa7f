"""The `deepspeed` command (DeepSpeed's runner, deepspeed/launcher/runner.py main, 0.9.2 and
0.19) with a hostfile: what it does on its way to each node's `deepspeed.launcher.launch`.

- No hostfile (default /job/hostfile): one node, --num_gpus processes (launchers.deepspeed).
- A hostfile (lines `HOST slots=N`, `#` comments; its regex `^(\\S+)\\s+slots=(\\d+)`) with
  --no_ssh (DeepSpeed PR #5728): this node alone, as `deepspeed.launcher.launch` with the
  hostfile's world info and --node_rank, which must name one of its hosts ("Launching training
  without ssh, but --node_rank is not set correctly."); --master_addr must be given (the
  runner would ask the first host for `hostname -I` over ssh).
- A hostfile without --no_ssh: the runner checks that its first host answers ssh (unless
  --no_ssh_check), then, for several hosts, starts every node through pdsh. Neither ssh between
  the containers nor pdsh is there, and that is how it fails (RuntimeError, exit 1).
--num_nodes keeps the first N hosts and --num_gpus the first N slots of each, as
apply_num_nodes_and_gpus does.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
from collections import OrderedDict

from standin import launchers


def _hostfile(path: str) -> OrderedDict | None:
    if not os.path.isfile(path):
        return None
    pool = OrderedDict()
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            match = re.search(r"^(\S+)\s+slots=(\d+)", line)
            if not match:
                raise ValueError(f"Hostfile contains a bad entry: {line}, unable to proceed with launching")
            if match.group(1) in pool:
                raise ValueError(f"Hostfile contains multiple entries for {match.group(1)}, unable to proceed with launching")
            pool[match.group(1)] = int(match.group(2))
    return pool


def _fail(message: str) -> None:
    print(message, file=sys.stderr)
    sys.exit(1)


def main(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="deepspeed", allow_abbrev=False)
    parser.add_argument("-H", "--hostfile", default="/job/hostfile")
    for name in ("--num_nodes", "--num_gpus", "--num_accelerators", "--node_rank"):
        parser.add_argument(name, type=int, default=-1)
    parser.add_argument("--master_port", type=int, default=29500)
    for name in ("--master_addr", "--include", "--exclude", "--launcher_args"):
        parser.add_argument(name, default="")
    parser.add_argument("--launcher", default="pdsh")
    for name in ("--no_ssh", "--no_ssh_check", "--force_multi", "--no_local_rank", "--no_python", "--module"):
        parser.add_argument(name, action="store_true")
    parser.add_argument("user_script")
    parser.add_argument("user_args", nargs=argparse.REMAINDER)
    opts = parser.parse_args(args)
    try:
        pool = _hostfile(opts.hostfile)
    except ValueError as exc:
        _fail(f"ValueError: {exc}")
    if not pool:
        launchers.deepspeed(args)  # one node, as before any hostfile
    hosts = list(pool)[:opts.num_nodes] if opts.num_nodes > 0 else list(pool)
    gpus = max(opts.num_gpus, opts.num_accelerators)
    world = OrderedDict((host, list(range(pool[host]))[:gpus] if gpus > 0 else list(range(pool[host]))) for host in hosts)
    # In the runner's order: the ssh check, the master address, the node rank, the launcher.
    if not opts.no_ssh and not opts.no_ssh_check:
        _fail(f"RuntimeError: Using hostfile at {opts.hostfile} but host={hosts[0]} was not reachable via ssh. If you "
              f"are running with a single node please remove {opts.hostfile} or setup passwordless ssh.")
    if not opts.master_addr:
        _fail("Unable to detect suitable master address via 'hostname -I', please manually specify one via --master_addr")
    if opts.no_ssh and not 0 <= opts.node_rank < len(world):
        _fail("AssertionError: Launching training without ssh, but --node_rank is not set correctly.")
    if (len(world) > 1 or opts.force_multi) and not opts.no_ssh:
        _fail(f"RuntimeError: launcher '{opts.launcher}' not installed.")
    info = base64.urlsafe_b64encode(json.dumps(world).encode("utf-8")).decode("utf-8")
    launch = [f"--world_info={info}", f"--master_addr={opts.master_addr}", f"--master_port={opts.master_port}"]
    if opts.no_ssh:
        launch.append(f"--node_rank={opts.node_rank}")
    launch += [flag for flag in ("--no_python", "--module", "--no_local_rank") if getattr(opts, flag[2:])]
    launchers.deepspeed_launch([*launch, opts.user_script, *opts.user_args])
