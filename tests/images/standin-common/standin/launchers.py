"""Distributed launchers: parse the options the real launcher documents (an unknown one is an
error, as it is for the real one), then start one worker per process asked for, each through
`python` (so each worker is recorded too, with the variables its rank gets).

Workers run one after another, not at once: the point is how many there are and what each is
given, and a fixed order keeps the call log comparable between runs.
"""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys

from standin import rendezvous


def run_workers(count: int, argv_for, env_for, stop_at_failure: bool = True) -> int:
    """Run the workers in rank order; the first non-zero exit status (0 when all succeed).
    `stop_at_failure=False`: run every worker anyway, as a launcher that waits for all does."""
    parent = os.environ.pop("STANDIN_SEQ", None)
    first = 0
    for rank in range(count):
        env = {**os.environ, **env_for(rank)}
        if parent is not None:
            env["STANDIN_WORKER_OF"] = parent
        code = subprocess.call(["python", *argv_for(rank)], env=env)
        if code != 0:
            print(f"[stand-in] worker {rank} exited with {code}", file=sys.stderr)
            if stop_at_failure:
                return code
            first = first or code
    return first


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, allow_abbrev=False)
    parser.add_argument("training_script")
    parser.add_argument("training_script_args", nargs=argparse.REMAINDER)
    return parser


def _timeout(limit: float | None = None) -> float:
    """How long a node waits for the others: STANDIN_RENDEZVOUS_TIMEOUT seconds (default 300),
    or the launcher's own limit when that is shorter (msrun's --cluster_time_out)."""
    own = float(os.environ.get("STANDIN_RENDEZVOUS_TIMEOUT", "300"))
    return min(own, limit) if limit and limit > 0 else own


# torch/distributed/run.py's options that take a value, each with the spellings torch accepts
# (underscores since 1.9, hyphens added in 2.0). Every one is an `action=env` option: its default
# is PET_<DEST> from the environment when set (torch/distributed/argparse_util.py, class env;
# the same file and options in torch 1.9.0, 1.9.1, 1.11.0 and 1.13.1, read in their PyPI wheels).
_TORCH_VALUED = (("--nnodes",), ("--nproc_per_node", "--nproc-per-node"), ("--node_rank", "--node-rank"),
                 ("--master_addr", "--master-addr"), ("--master_port", "--master-port"),
                 ("--rdzv_backend", "--rdzv-backend"), ("--rdzv_endpoint", "--rdzv-endpoint"), ("--rdzv_id", "--rdzv-id"),
                 ("--rdzv_conf", "--rdzv-conf"), ("--max_restarts", "--max-restarts"),
                 ("--monitor_interval", "--monitor-interval"), ("--start_method", "--start-method"), ("--role",),
                 ("--log_dir", "--log-dir"), ("--redirects", "-r"), ("--tee", "-t"), ("--local_addr", "--local-addr"))
_TORCH_DEFAULTS = {"nnodes": "1:1", "nproc_per_node": "1", "node_rank": "0", "master_addr": "127.0.0.1",
                   "master_port": "29500", "rdzv_backend": "static"}
# Flags with `action=check_env`: PET_<DEST>=1 sets them.
_TORCH_FLAGS = (("--standalone",), ("--no_python", "--no-python"), ("-m", "--module"))


def torch_launch(args: list[str], legacy: bool) -> None:
    """torch.distributed.launch (legacy=True: torch 1.x passes --local_rank=N to the script
    unless --use_env) and torchrun (ranks in the environment only).

    As torch's static rendezvous (the default backend): with --nnodes N > 1 the node of rank 0
    serves at --master_port and every node meets there before a worker starts, so a node waits
    for all the others; global ranks are node_rank x nproc_per_node + local rank (equal nodes),
    WORLD_SIZE the processes of all nodes, GROUP_RANK the node's rank
    (torch/distributed/elastic/agent/server/api.py, local_elastic_agent.py). The nodes must
    agree on --nnodes and hold distinct ranks below it; otherwise this fails (the real one waits
    for its rendezvous timeout)."""
    parser = _parser("torch.distributed.launch" if legacy else "torchrun")
    for names in _TORCH_VALUED:
        dest = names[0].lstrip("-").replace("-", "_")
        parser.add_argument(*names, dest=dest, default=os.environ.get(f"PET_{dest.upper()}", _TORCH_DEFAULTS.get(dest)))
    for names in _TORCH_FLAGS:
        dest = names[-1].lstrip("-").replace("-", "_")
        parser.add_argument(*names, dest=dest, action="store_true",
                            default=bool(int(os.environ.get(f"PET_{dest.upper()}", "0") or "0")))
    parser.add_argument("--use_env", "--use-env", action="store_true")  # torchrun took it too until 1.10
    opts = parser.parse_args(args)
    count = int(opts.nproc_per_node)
    nnodes = 1 if opts.standalone else int(str(opts.nnodes).split(":")[-1])
    node_rank = int(opts.node_rank)
    addr, port = opts.master_addr, int(opts.master_port)
    if opts.rdzv_endpoint and not opts.standalone:  # static: the endpoint wins over --master_addr/--master_port
        addr, _, given = opts.rdzv_endpoint.rpartition(":")
        port = int(given) if addr else port
        addr = addr or opts.rdzv_endpoint
    pass_rank_argument = legacy and not opts.use_env
    base, world = 0, count
    if nnodes > 1:
        base, world = _torch_rendezvous(opts, nnodes, node_rank, count, addr, port)

    def argv_for(rank):
        flag = [f"--local_rank={rank}"] if pass_rank_argument else []
        return ["-u", opts.training_script, *flag, *opts.training_script_args]

    def env_for(rank):
        env = {"RANK": str(base + rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
               "LOCAL_WORLD_SIZE": str(count), "MASTER_ADDR": addr, "MASTER_PORT": str(port)}
        if nnodes > 1:
            env.update(GROUP_RANK=str(node_rank), GROUP_WORLD_SIZE=str(nnodes))
        return env

    sys.exit(run_workers(count, argv_for, env_for))


def _torch_rendezvous(opts, nnodes: int, node_rank: int, count: int, addr: str, port: int) -> tuple[int, int]:
    """(global rank of this node's first worker, world size) after every node has met."""
    what = f"torch static rendezvous at {addr}:{port}"
    if opts.rdzv_backend != "static":
        rendezvous.fail(rendezvous.RendezvousError(f"{what}: only the static backend is stood in, not {opts.rdzv_backend}"))
    if not 0 <= node_rank < nnodes:
        rendezvous.fail(rendezvous.RendezvousError(f"{what}: --node_rank {node_rank} is not in [0, {nnodes})"))
    me = {"node_rank": node_rank, "nnodes": nnodes, "nproc": count}

    def check(nodes):
        if len({n["nnodes"] for n in nodes}) > 1:
            return "the nodes disagree on --nnodes: " + ", ".join(f"node {n['node_rank']}: {n['nnodes']}" for n in nodes)
        ranks = sorted(n["node_rank"] for n in nodes)
        if ranks != list(range(nnodes)):
            return f"node ranks {ranks} are not 0..{nnodes - 1}, each once"
        return None

    try:
        if node_rank == 0:
            nodes = rendezvous.serve(port, me, lambda got: len(got) >= nnodes, check, _timeout(), what)
        else:
            nodes = rendezvous.join(addr, port, me, _timeout(), what)
    except rendezvous.RendezvousError as error:
        rendezvous.fail(error)
    base = sum(n["nproc"] for n in nodes if n["node_rank"] < node_rank)
    return base, sum(n["nproc"] for n in nodes)


def deepspeed(args: list[str]) -> None:
    """The deepspeed launcher on one node: --num_gpus processes, each given --local_rank=N."""
    parser = _parser("deepspeed")
    for name in ("--num_gpus", "--num_nodes", "--master_port", "--master_addr", "--include", "--exclude",
                 "--hostfile", "--launcher"):
        parser.add_argument(name)
    parser.add_argument("--no_local_rank", action="store_true")
    opts = parser.parse_args(args)
    count = int(opts.num_gpus or 1)
    port = opts.master_port or "29500"

    def argv_for(rank):
        flag = [] if opts.no_local_rank else [f"--local_rank={rank}"]
        return ["-u", opts.training_script, *flag, *opts.training_script_args]

    def env_for(rank):
        return {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(count), "MASTER_ADDR": opts.master_addr or "127.0.0.1",
                "MASTER_PORT": str(port)}

    sys.exit(run_workers(count, argv_for, env_for))


def deepspeed_launch(args: list[str]) -> None:
    """`python -m deepspeed.launcher.launch`, DeepSpeed's per-node launcher (what its pdsh runner
    starts on every host; deepspeed/launcher/launch.py, 0.9.2 as chatglm2-npu pins it, and
    0.19): --world_info is urlsafe base64 of JSON {host: [slot ids]} in node order, and
    --node_rank picks this node's entry (a rank past the list fails with IndexError, "None"
    with ValueError, as there). Each process gets CUDA_VISIBLE_DEVICES (the node's slots),
    MASTER_ADDR/PORT, WORLD_SIZE (all slots), CROSS_RANK (node rank), CROSS_SIZE (nodes),
    LOCAL_SIZE, RANK (slots of the nodes before this one + local rank), LOCAL_RANK and, unless
    --no_local_rank, --local_rank=N. With several nodes the stand-in meets the others at
    --master_addr:--master_port first (the workers' own rendezvous: torch.distributed's env://
    init, served by rank 0's TCPStore); the nodes must hold one world info and distinct ranks."""
    import base64
    import json

    parser = _parser("deepspeed.launcher.launch")
    parser.add_argument("--node_rank", type=int, default=0)
    parser.add_argument("--master_addr", default="127.0.0.1")
    parser.add_argument("--master_port", type=int, default=29500)
    parser.add_argument("--world_info", default="None")
    for name in ("--module", "--no_python", "--no_local_rank", "--enable_elastic_training", "--bind_cores_to_rank",
                 "--quiet"):
        parser.add_argument(name, action="store_true")
    for name, default in (("--save_pid", 0), ("--nnodes", -1), ("--min_elastic_nodes", -1), ("--max_elastic_nodes", -1)):
        parser.add_argument(name, type=int, default=default)
    for name, default in (("--enable_each_rank_log", "None"), ("--bind_core_list", None), ("--log_level", "info")):
        parser.add_argument(name, default=default)
    opts = parser.parse_args(args)
    if opts.world_info == "None":
        print("ValueError: world_info can not be None", file=sys.stderr)
        sys.exit(1)
    world_info = json.loads(base64.urlsafe_b64decode(opts.world_info))
    hosts = list(world_info)
    if not 0 <= opts.node_rank < len(hosts):
        print("IndexError: list index out of range", file=sys.stderr)  # node_list[args.node_rank]
        sys.exit(1)
    slots = world_info[hosts[opts.node_rank]]
    base = sum(len(world_info[host]) for host in hosts[:opts.node_rank])
    world = sum(len(ids) for ids in world_info.values())
    if len(hosts) > 1:
        what = f"deepspeed.launcher.launch: the workers' rendezvous at {opts.master_addr}:{opts.master_port}"
        me = {"node_rank": opts.node_rank, "world_info": world_info}

        def check(nodes):
            if any(n["world_info"] != world_info for n in nodes):
                return "the nodes were given different --world_info: " + ", ".join(
                    f"node {n['node_rank']}: {json.dumps(n['world_info'])}" for n in nodes)
            ranks = sorted(n["node_rank"] for n in nodes)
            return None if ranks == list(range(len(hosts))) else f"node ranks {ranks} are not 0..{len(hosts) - 1}, each once"

        try:
            if opts.node_rank == 0:
                rendezvous.serve(opts.master_port, me, lambda got: len(got) >= len(hosts), check, _timeout(), what)
            else:
                rendezvous.join(opts.master_addr, opts.master_port, me, _timeout(), what)
        except rendezvous.RendezvousError as error:
            rendezvous.fail(error)

    def argv_for(rank):
        flag = [] if opts.no_local_rank else [f"--local_rank={rank}"]
        return ["-u", *(["-m"] if opts.module else []), opts.training_script, *flag, *opts.training_script_args]

    def env_for(rank):
        return {"CUDA_VISIBLE_DEVICES": ",".join(map(str, slots)), "MASTER_ADDR": opts.master_addr,
                "MASTER_PORT": str(opts.master_port), "WORLD_SIZE": str(world), "CROSS_RANK": str(opts.node_rank),
                "CROSS_SIZE": str(len(hosts)), "LOCAL_SIZE": str(len(slots)), "RANK": str(base + rank),
                "LOCAL_RANK": str(rank)}

    sys.exit(run_workers(len(slots), argv_for, env_for))


def msrun(args: list[str]) -> None:
    """MindSpore's msrun: --local_worker_num workers with MindSpore's dynamic-cluster variables
    (MS_ROLE, MS_WORKER_NUM, MS_SCHED_HOST, MS_SCHED_PORT, MS_NODE_ID = node_rank x
    local_worker_num + i); with --worker_num above --local_worker_num the nodes first meet at
    the scheduler (_msrun_rendezvous).

    As MindSpore's msrun (mindspore/parallel/cluster/run.py, process_entity/_api.py): `--join`
    is read with ast.literal_eval and must be True or False, default False. Without it msrun
    returns 0 as soon as its workers are started, their output going to <log_dir>/worker_N.log,
    and whatever they end with is lost to the caller. With --join=True it waits for every
    worker and, when one exited non-zero, raises RuntimeError("Distributed job exited with
    exception. Please check logs in directory: <log_dir>."): exit status 1."""
    parser = _parser("msrun")
    for name in ("--worker_num", "--local_worker_num", "--master_addr", "--master_port", "--node_rank", "--log_dir",
                 "--cluster_time_out", "--bind_core", "--sim_level"):
        parser.add_argument(name)
    parser.add_argument("--join", default=False, type=ast.literal_eval, choices=[True, False])
    opts = parser.parse_args(args)
    total = int(opts.worker_num or 8)
    local = int(opts.local_worker_num or total)
    addr, port = opts.master_addr or "127.0.0.1", int(opts.master_port or 8118)
    node = {"rank": int(opts.node_rank) if opts.node_rank not in (None, "") else -1}

    def env_for(rank):
        first = node["rank"] * local if node["rank"] >= 0 else 0  # MS_NODE_ID = node_rank x local_worker_num + i
        return {"MS_ROLE": "MS_WORKER", "MS_WORKER_NUM": str(total), "MS_SCHED_HOST": addr,
                "MS_SCHED_PORT": str(port), "MS_NODE_ID": str(first + rank)}

    def meet():
        if total > local:  # several nodes: the scheduler on the node owning --master_addr waits for every worker
            node["rank"] = _msrun_rendezvous(opts, total, local, node["rank"], addr, port)

    def argv_for(rank):
        return [opts.training_script, *opts.training_script_args]

    if not opts.join:
        log_dir = opts.log_dir or "."
        os.makedirs(log_dir, exist_ok=True)
        if os.fork() == 0:  # the workers outlive msrun, detached from the caller's terminal and pipes
            os.setsid()
            with open(os.path.join(log_dir, "worker_0.log"), "ab") as log, open(os.devnull, "rb") as nothing:
                os.dup2(nothing.fileno(), 0)
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
            try:
                meet()
            except SystemExit:
                os._exit(1)
            code = run_workers(local, argv_for, env_for, stop_at_failure=False)
            os._exit(1 if code else 0)
        print(f"[stand-in] msrun: {local} workers started; logs in {log_dir} (--join=False: not waiting)", file=sys.stderr)
        sys.exit(0)
    meet()
    if run_workers(local, argv_for, env_for, stop_at_failure=False):
        print("RuntimeError: Distributed job exited with exception. Please check logs in directory: "
              f"{opts.log_dir or ''}.", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)


def _msrun_rendezvous(opts, total: int, local: int, node_rank: int, addr: str, port: int) -> int:
    """This node's rank once the scheduler has seen --worker_num workers: msrun starts its
    scheduler on the node whose addresses include --master_addr (process_entity/_api.py,
    _is_local_ip) and waits --cluster_time_out seconds for the workers of every node. The nodes
    must agree on --worker_num, bring exactly that many workers together and hold distinct node
    ranks; a node without one (-1) is numbered in the order it arrived."""
    what = f"msrun scheduler at {addr}:{port}"
    me = {"node_rank": node_rank, "worker_num": total, "local": local, "id": os.urandom(8).hex()}

    def check(nodes):
        if len({n["worker_num"] for n in nodes}) > 1:
            return "the nodes disagree on --worker_num: " + ", ".join(str(n["worker_num"]) for n in nodes)
        if sum(n["local"] for n in nodes) != total:
            return f"the nodes bring {sum(n['local'] for n in nodes)} workers, not --worker_num {total}"
        given = [n["node_rank"] for n in nodes if n["node_rank"] >= 0]
        return None if len(given) == len(set(given)) else f"node ranks {sorted(given)} are not distinct"

    timeout = _timeout(float(opts.cluster_time_out) if opts.cluster_time_out else 600)
    try:
        if rendezvous.is_local_address(addr):
            nodes = rendezvous.serve(port, me, lambda got: sum(n["local"] for n in got) >= total, check, timeout, what, bind=addr)
            return node_rank if node_rank >= 0 else 0
        nodes = rendezvous.join(addr, port, me, timeout, what)
    except rendezvous.RendezvousError as error:
        rendezvous.fail(error)
    if node_rank >= 0:
        return node_rank
    return next(i for i, n in enumerate(nodes) if n == me)
