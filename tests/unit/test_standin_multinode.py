"""The stand-in launchers across nodes behave as the real ones do (tests/images/standin-common/standin/
launchers.py, rendezvous.py): torchrun and torch.distributed.launch take the node count, rank,
master and processes from torch's PET_* variables when the flags are left out (explicit flags
win), every node waits for the others at the master before a worker starts, ranks continue
across nodes; DeepSpeed's per-node launcher picks its node from the world info by node rank, and its runner
with a hostfile starts one node with --no_ssh or fails where it would need ssh and pdsh.
Nodes that disagree (node count, duplicate ranks, world info), a rank past the nodes and a
master nobody serves fail with the reason. Two "nodes" here are two launcher processes on this
machine meeting on loopback; each worker is a real Python process that writes what it got.
(msrun across nodes needs two network namespaces: tests/remote/test_remote_standin_nodes.py.)"""

import base64
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from support import REPO

STANDIN = REPO / "tests" / "images" / "standin-common"
ENTRY = {
    "torchrun": "launchers.torch_launch(sys.argv[1:], legacy=False)",
    "torch.distributed.launch": "launchers.torch_launch(sys.argv[1:], legacy=True)",
    "deepspeed.launcher.launch": "launchers.deepspeed_launch(sys.argv[1:])",
    "deepspeed": "from standin import deepspeed_runner; deepspeed_runner.main(sys.argv[1:])",
}


@pytest.fixture
def bench(tmp_path):
    """A PATH whose `python` is this interpreter, a worker script writing its environment and
    arguments to worker-<RANK>.json, and a free port."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    (tmp_path / "worker.py").write_text(textwrap.dedent("""\
        import json, os, sys
        keys = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE", "MASTER_ADDR",
                "MASTER_PORT", "CROSS_RANK", "CROSS_SIZE", "LOCAL_SIZE", "CUDA_VISIBLE_DEVICES")
        with open(f"worker-{os.environ['RANK']}.json", "w") as out:
            json.dump({"env": {k: os.environ[k] for k in keys if k in os.environ}, "argv": sys.argv[1:]}, out)
        """))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PET_", "STANDIN_"))}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", STANDIN_RENDEZVOUS_TIMEOUT="20")
    return tmp_path, env, port


def start(bench, launcher, argv, **extra):
    work, env, _ = bench
    code = f"import sys\nsys.path.insert(0, {str(STANDIN)!r})\nfrom standin import launchers\n{ENTRY[launcher]}\n"
    return subprocess.Popen([sys.executable, "-c", code, *argv], cwd=work, env={**env, **extra}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(*processes):
    return [(p.wait(timeout=60), p.stderr.read()) for p in processes]


def workers(bench):
    work = bench[0]
    return {int(p.stem.split("-")[1]): json.loads(p.read_text()) for p in work.glob("worker-*.json")}


def pet(rank, port, nnodes=2, nproc=2):
    return {"PET_NNODES": str(nnodes), "PET_NODE_RANK": str(rank), "PET_MASTER_ADDR": "127.0.0.1",
            "PET_MASTER_PORT": str(port), "PET_NPROC_PER_NODE": str(nproc)}


@pytest.mark.parametrize("launcher", ["torchrun", "torch.distributed.launch"])
def test_torch_launchers_read_the_topology_from_pet_variables_and_number_ranks_across_nodes(bench, launcher):
    port = bench[2]
    # Node 1 first: it waits for the master (nodes start in any order).
    second = start(bench, launcher, ["worker.py", "--lr", "1"], **pet(1, port))
    first = start(bench, launcher, ["worker.py", "--lr", "1"], **pet(0, port))
    assert finish(first, second) == [(0, ""), (0, "")]
    got = workers(bench)
    assert sorted(got) == [0, 1, 2, 3]
    for rank, seen in got.items():
        assert seen["env"] == {"RANK": str(rank), "LOCAL_RANK": str(rank % 2), "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2",
                               "GROUP_RANK": str(rank // 2), "GROUP_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                               "MASTER_PORT": str(port)}
        # torch.distributed.launch passes --local_rank (torch 1.x, without --use_env); torchrun does not
        assert seen["argv"] == ([f"--local_rank={rank % 2}"] if launcher == "torch.distributed.launch" else []) + ["--lr", "1"]


def test_explicit_flags_win_over_pet_variables(bench):
    port = bench[2]
    # PET_* say one node of one process; the flags say two nodes of two (torch's argparse_util: a flag wins)
    flags = ["--nnodes=2", "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={port}"]
    nodes = [start(bench, "torchrun", [*flags, f"--node_rank={rank}", "worker.py"], **pet(0, 1, nnodes=1, nproc=1))
             for rank in (0, 1)]
    assert finish(*nodes) == [(0, ""), (0, "")]
    assert sorted(workers(bench)) == [0, 1, 2, 3]


def test_one_node_stays_one_node_without_a_rendezvous(bench):
    # --nnodes=1 (the tutorials' form): no master is served or joined; the port stays free
    done = finish(start(bench, "torch.distributed.launch", ["--nnodes=1", "--nproc_per_node=2", "--master_port=1",
                                                            "worker.py"]))
    assert done == [(0, "")]
    assert [w["env"]["WORLD_SIZE"] for w in workers(bench).values()] == ["2", "2"]


def test_nodes_that_disagree_on_the_node_count_both_fail_naming_it(bench):
    port = bench[2]
    first = start(bench, "torchrun", ["worker.py"], **pet(0, port))
    second = start(bench, "torchrun", ["--nnodes=3", "worker.py"], **pet(1, port))
    (code0, err0), (code1, err1) = finish(first, second)
    assert code0 == code1 == 1
    for err in (err0, err1):
        assert "the nodes disagree on --nnodes: node 0: 2, node 1: 3" in err
    assert workers(bench) == {}  # no worker started anywhere


def test_two_nodes_with_one_rank_fail(bench):
    port = bench[2]
    # --node_rank=0 wins over PET_NODE_RANK=1: two rank 0s. Both serve; on one machine the second
    # cannot listen on the master's port, and the first waits for a rank 1 that never comes.
    nodes = [start(bench, "torchrun", ["--node_rank=0", "worker.py"], STANDIN_RENDEZVOUS_TIMEOUT="2", **pet(rank, port))
             for rank in (0, 1)]
    errors = sorted(err for code, err in finish(*nodes) if code == 1)
    assert len(errors) == 2, errors
    assert "cannot listen on port" in errors[0] or "cannot listen on port" in errors[1]
    assert any("timed out after 2s waiting for the other nodes" in err for err in errors)
    assert workers(bench) == {}


def test_a_rank_past_the_node_count_fails_at_once(bench):
    (code, err), = finish(start(bench, "torchrun", ["worker.py"], **pet(2, bench[2])))
    assert code == 1 and "--node_rank 2 is not in [0, 2)" in err


def test_a_node_whose_master_never_comes_times_out_with_torchs_words(bench):
    (code, err), = finish(start(bench, "torchrun", ["worker.py"], STANDIN_RENDEZVOUS_TIMEOUT="1", **pet(1, bench[2])))
    assert code == 1
    assert f"The client socket has timed out after 1s while trying to connect to (127.0.0.1, {bench[2]})." in err


def world_info(*hosts):
    return base64.urlsafe_b64encode(json.dumps({h: [0, 1] for h in hosts}).encode()).decode()


def test_deepspeed_launch_takes_its_node_from_the_world_info(bench):
    port = bench[2]
    info = world_info("10.0.0.1", "10.0.0.2")
    argv = [f"--world_info={info}", "--master_addr=127.0.0.1", f"--master_port={port}", "worker.py", "--deepspeed", "ds.json"]
    nodes = [start(bench, "deepspeed.launcher.launch", [f"--node_rank={rank}", *argv]) for rank in (1, 0)]
    assert finish(*nodes) == [(0, ""), (0, "")]
    got = workers(bench)
    assert sorted(got) == [0, 1, 2, 3]
    for rank, seen in got.items():
        assert seen["env"] == {"RANK": str(rank), "LOCAL_RANK": str(rank % 2), "WORLD_SIZE": "4", "CROSS_RANK": str(rank // 2),
                               "CROSS_SIZE": "2", "LOCAL_SIZE": "2", "CUDA_VISIBLE_DEVICES": "0,1",
                               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        assert seen["argv"] == [f"--local_rank={rank % 2}", "--deepspeed", "ds.json"]


def test_deepspeed_nodes_with_different_world_info_fail(bench):
    port = bench[2]
    argv = ["--master_addr=127.0.0.1", f"--master_port={port}", "worker.py"]
    first = start(bench, "deepspeed.launcher.launch", ["--node_rank=0", f"--world_info={world_info('a', 'b')}", *argv])
    second = start(bench, "deepspeed.launcher.launch", ["--node_rank=1", f"--world_info={world_info('a', 'c')}", *argv])
    for code, err in finish(first, second):
        assert code == 1 and "the nodes were given different --world_info" in err
    assert workers(bench) == {}


@pytest.mark.parametrize("argv, message", [
    (["--node_rank=2", f"--world_info={world_info('a', 'b')}"], "IndexError: list index out of range"),
    (["--node_rank=0"], "ValueError: world_info can not be None"),
])
def test_deepspeed_launch_refuses_what_its_real_one_refuses(bench, argv, message):
    (code, err), = finish(start(bench, "deepspeed.launcher.launch", [*argv, "worker.py"]))
    assert code == 1 and message in err


def hostfile(bench, *lines):
    path = bench[0] / "hostfile"
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_the_deepspeed_runner_with_no_ssh_starts_its_node_of_the_hostfile(bench):
    port = bench[2]
    hosts = hostfile(bench, "# two nodes", "10.0.0.1 slots=2", "10.0.0.2 slots=2")
    argv = ["--hostfile", hosts, "--no_ssh", "--master_addr=127.0.0.1", f"--master_port={port}", "worker.py", "--x"]
    nodes = [start(bench, "deepspeed", [f"--node_rank={rank}", *argv]) for rank in (0, 1)]
    assert finish(*nodes) == [(0, ""), (0, "")]
    got = workers(bench)
    assert sorted(got) == [0, 1, 2, 3]
    assert [got[r]["env"]["CROSS_RANK"] for r in range(4)] == ["0", "0", "1", "1"]
    assert got[3]["argv"] == ["--local_rank=1", "--x"]


@pytest.mark.parametrize("extra, message", [
    ([], "was not reachable via ssh"),  # pdsh's runner checks ssh to the first host first
    (["--no_ssh_check"], "launcher 'pdsh' not installed."),
    (["--no_ssh"], "--node_rank is not set correctly"),
    (["--no_ssh", "--node_rank=2"], "--node_rank is not set correctly"),
])
def test_the_deepspeed_runner_with_a_hostfile_fails_where_it_needs_ssh_or_a_node_rank(bench, extra, message):
    hosts = hostfile(bench, "10.0.0.1 slots=2", "10.0.0.2 slots=2")
    (code, err), = finish(start(bench, "deepspeed", ["--hostfile", hosts, "--master_addr=127.0.0.1", *extra, "worker.py"]))
    assert code == 1 and message in err
    assert workers(bench) == {}


def test_the_deepspeed_runner_without_a_hostfile_stays_on_one_node(bench):
    missing = str(bench[0] / "no-hostfile")
    assert finish(start(bench, "deepspeed", ["--hostfile", missing, "--num_gpus=2", "worker.py"])) == [(0, "")]
    assert [w["env"]["WORLD_SIZE"] for w in workers(bench).values()] == ["2", "2"]
