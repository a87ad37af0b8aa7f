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


def torch_launch(args: list[str], legacy: bool) -> None:
    """torch.distributed.launch (legacy=True: torch 1.x passes --local_rank=N to the script
    unless --use_env) and torchrun (ranks in the environment only)."""
    parser = _parser("torch.distributed.launch" if legacy else "torchrun")
    for name in ("--nnodes", "--nproc_per_node", "--nproc-per-node", "--node_rank", "--node-rank", "--master_addr",
                 "--master-addr", "--master_port", "--master-port", "--rdzv_backend", "--rdzv_endpoint", "--rdzv_id",
                 "--max_restarts", "--monitor_interval", "--log_dir", "--redirects", "--tee"):
        parser.add_argument(name, dest=name.lstrip("-").replace("-", "_"))
    parser.add_argument("--standalone", action="store_true")
    parser.add_argument("--use_env", "--use-env", action="store_true")
    parser.add_argument("--no_python", "--no-python", action="store_true")
    parser.add_argument("-m", "--module", action="store_true")
    opts = parser.parse_args(args)
    count = int(opts.nproc_per_node or 1)
    nnodes = int(str(opts.nnodes or 1).split(":")[-1])
    addr, port = opts.master_addr or "127.0.0.1", opts.master_port or "29500"
    pass_rank_argument = legacy and not opts.use_env

    def argv_for(rank):
        flag = [f"--local_rank={rank}"] if pass_rank_argument else []
        return ["-u", opts.training_script, *flag, *opts.training_script_args]

    def env_for(rank):
        return {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(count * nnodes),
                "LOCAL_WORLD_SIZE": str(count), "MASTER_ADDR": addr, "MASTER_PORT": str(port)}

    sys.exit(run_workers(count, argv_for, env_for))


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


def msrun(args: list[str]) -> None:
    """MindSpore's msrun on one node: --local_worker_num workers with MindSpore's dynamic-cluster
    variables (MS_ROLE, MS_WORKER_NUM, MS_SCHED_HOST, MS_SCHED_PORT, MS_NODE_ID).

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

    def env_for(rank):
        return {"MS_ROLE": "MS_WORKER", "MS_WORKER_NUM": str(total), "MS_SCHED_HOST": opts.master_addr or "127.0.0.1",
                "MS_SCHED_PORT": str(opts.master_port or 8118), "MS_NODE_ID": str(rank)}

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
            code = run_workers(local, argv_for, env_for, stop_at_failure=False)
            os._exit(1 if code else 0)
        print(f"[stand-in] msrun: {local} workers started; logs in {log_dir} (--join=False: not waiting)", file=sys.stderr)
        sys.exit(0)
    if run_workers(local, argv_for, env_for, stop_at_failure=False):
        print("RuntimeError: Distributed job exited with exception. Please check logs in directory: "
              f"{opts.log_dir or ''}.", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
