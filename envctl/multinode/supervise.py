"""Run one entrypoint on every node at once and stop them together.

Each node's process is started with `docker exec` against that node's engine (through the
socket forwarded over the SSH connection envctl already holds), inside the run-record wrapper
of envctl/runs.py, so `status` sees it and its PID is known. Output is streamed live, each line
prefixed `[rank host]`, and appended to a log in that node's workspace.

The first node to end with a non-zero code, or whose connection is lost (its `docker exec`
ends and its engine no longer answers), is the cause; every node is then stopped: SIGINT, then
SIGTERM, then SIGKILL, with a grace period between them (torchrun and msrun forward SIGINT/SIGTERM
to their workers). Without this the survivors wait for the dead peer until the collective
library's timeout (HCCL_CONNECT_TIMEOUT=7200 s in ModelZoo's env_npu.sh). Ctrl-C stops every
node the same way. The signals reach every process of the run in each container, the failed
node's leftovers included (envctl.multinode.stopping); a node whose connection was lost is
reached again over a new one where its server still accepts one.
"""

from __future__ import annotations

import collections
import queue
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field

from envctl import interrupts, runs
from envctl.errors import EXIT_REMOTE_FAILED, EnvctlError, HostNotReady
from envctl.masking import mask
from envctl.multinode.stopping import Swept, stop_sequence, sweep

GRACE_SECONDS = (10.0, 10.0)  # after SIGINT, after SIGTERM; then SIGKILL
LAST_LINES = 10  # of each node, in the failure report

KILL_WAIT = 10.0  # seconds SIGKILL is repeated before envctl gives up on a node


@dataclass
class NodeProcess:
    rank: int
    host: str  # its name, for the prefix
    container: str
    argv: tuple[str, ...]  # the command in the container
    env: dict[str, str]  # the contract and the entrypoint's variables
    workdir: str | None
    docker_env: dict[str, str]  # the docker CLI's environment (DOCKER_HOST of that node's engine)
    log: object  # .write(bytes) and .close(): the node's log in its workspace
    log_path: str
    entrypoint: str
    last: collections.deque = field(default_factory=lambda: collections.deque(maxlen=LAST_LINES))
    child: subprocess.Popen | None = None
    pid_file: str = ""
    code: int | None = None
    stopped_by: str | None = None  # the last signal envctl sent it while it ran
    reconnect: object = None  # () -> docker_env over a new connection; raises EnvctlError
    lost: str | None = None  # why its connection counts as lost (its docker exec ended, its engine gone)
    leftovers: int = 0  # processes of the run envctl found and stopped after its own process ended
    unreachable: str | None = None  # why envctl could not stop what it runs
    masked: tuple[str, ...] = field(default=(), repr=False)  # values masked in its output and log (passed secrets)

    @property
    def run_id(self) -> str:
        return self.env["ENVCTL_RUN_ID"]

    @property
    def label(self) -> str:
        return f"[{self.rank} {self.host}]"


@dataclass
class Outcome:
    code: int  # the first failure's (7 for a lost connection), 0 when every node ended with 0, 130 on Ctrl-C alone
    first: NodeProcess | None  # the cause; None when all succeeded or Ctrl-C came first
    interrupted: bool
    nodes: list[NodeProcess]


def _docker() -> str:
    docker = shutil.which("docker")
    if docker is None:
        raise HostNotReady("the docker command is not installed on this machine; envctl exec runs through it",
                           hint="install the Docker CLI (Debian/Ubuntu: apt-get install docker.io)")
    return docker


def run_all(nodes: list[NodeProcess], out=None, grace: tuple[float, float] = GRACE_SECONDS) -> Outcome:
    """Start every node, stream their output, stop the others at the first failure or Ctrl-C;
    returns when every node has ended and, after a failure or Ctrl-C, nothing of the run is left
    in a container envctl can reach."""
    docker = _docker()
    out = out or sys.stdout.buffer
    lock = threading.Lock()
    ended: queue.Queue = queue.Queue()
    for node in nodes:
        node.pid_file, record = runs.new_record(node.entrypoint, node.log_path)
        args = [docker, "exec", "-i"] + (["-w", node.workdir] if node.workdir else [])
        child_env = dict(node.docker_env)
        for key, value in node.env.items():  # values in the child's environment, not on a command line
            args += ["-e", key]
            child_env[key] = value
        args += [node.container, "sh", "-c", runs.WRAPPER, node.pid_file, record, *node.argv]
        node.child = subprocess.Popen(args, env=child_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=_pump, args=(node, out, lock, ended), daemon=True).start()

    interrupted = threading.Event()

    def on_signal(_signum, _frame):
        interrupted.set()

    first: NodeProcess | None = None
    stopper: threading.Thread | None = None
    try:
        with interrupts.handled_by(on_signal):
            remaining = len(nodes)
            while remaining:
                try:
                    node = ended.get(timeout=0.2)
                except queue.Empty:
                    node = None
                if node is not None:
                    remaining -= 1
                    if node.code != 0 and first is None and not interrupted.is_set() and stopper is None:
                        node.lost = _lost(node, docker)
                        first = node
                if stopper is None and (first is not None or interrupted.is_set()):
                    stopper = threading.Thread(target=stop_sequence, daemon=True, args=(
                        nodes, grace, KILL_WAIT, lambda n, sig: _sweep(n, docker, sig), lambda n: n.child.poll() is None))
                    stopper.start()
            if stopper is not None:
                stopper.join()
            for node in nodes:  # its engine never let it go: end our side
                if node.child.poll() is None:
                    node.child.kill()
    finally:
        for node in nodes:
            node.log.close()
            if not (node.lost or node.unreachable):
                try:
                    subprocess.run([docker, "exec", node.container, "rm", "-f", node.pid_file], env=node.docker_env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=60,
                                   start_new_session=True)
                except subprocess.TimeoutExpired:
                    pass  # a PID file left is harmless: status counts only the engine's running execs
    if first is not None:
        code = EXIT_REMOTE_FAILED if first.lost else first.code
    elif interrupted.is_set():
        code = 130
    else:
        code = 0
    return Outcome(code, first, interrupted.is_set() and first is None, nodes)


def _pump(node: NodeProcess, out, lock: threading.Lock, ended: queue.Queue) -> None:
    """Copy a node's output line by line, prefixed, to `out` and to its log; then its code."""
    prefix = node.label.encode() + b" "
    for line in iter(node.child.stdout.readline, b""):
        if node.masked:  # whole lines: a passed secret the program prints is masked (envctl/masking.py)
            line = mask(line.decode("utf-8", "surrogateescape"), node.masked).encode("utf-8", "surrogateescape")
        node.last.append(line.decode("utf-8", "replace").rstrip("\n"))
        node.log.write(line)
        with lock:  # whole lines, never interleaved with another node's
            out.write(prefix + line if line.endswith(b"\n") else prefix + line + b"\n")
            out.flush()
    node.code = node.child.wait()
    ended.put(node)


def _lost(node: NodeProcess, docker: str) -> str | None:
    """Why the node's connection counts as lost, or None: its engine no longer answers through
    the socket its `docker exec` used (the SSH master carrying it is gone)."""
    return sweep(docker, node.docker_env, node.container, node.run_id, "0").unreachable


def _sweep(node: NodeProcess, docker: str, signame: str) -> Swept:
    """stopping.sweep on the node; once over a new connection when the old one is gone."""
    found = sweep(docker, node.docker_env, node.container, node.run_id, signame)
    if found.unreachable and node.reconnect is not None:
        reconnect, node.reconnect = node.reconnect, None
        try:
            node.docker_env = reconnect()
        except (EnvctlError, OSError, subprocess.SubprocessError) as problem:  # the node stays unreachable
            return Swept(unreachable=f"{found.unreachable}; connecting again failed: {problem}")
        found = sweep(docker, node.docker_env, node.container, node.run_id, signame)
    return found


def report(outcome: Outcome) -> list[str]:
    """What happened, for stderr: the cause (or Ctrl-C), each node's end and its last lines."""
    lines = []
    if outcome.first is not None:
        f = outcome.first
        if f.lost:
            lines.append(f"node {f.rank} ({f.host}) failed first: lost the connection to {f.host} ({f.lost}); "
                         "envctl stopped the others")
        else:
            lines.append(f"node {f.rank} ({f.host}) failed first: exit code {f.code}; envctl stopped the others")
    elif outcome.interrupted:
        lines.append("interrupted: envctl stopped every node")
    for node in outcome.nodes:
        how = f"stopped by envctl ({node.stopped_by}), exit code {node.code}" if node.stopped_by else f"exit code {node.code}"
        if node.leftovers:
            how += f"; envctl stopped {node.leftovers} process(es) of the run it left"
        lines.append(f"{node.label} {how}; log {node.log_path} on {node.host}")
        if node.unreachable:
            lines.append(f"{node.label} could not stop the run's processes on {node.host}: {node.unreachable}")
        if outcome.code != 0:
            lines += [f"    {text}" for text in node.last]
    return lines


def reconnector(host):
    """For an SSH host: a callable opening a new connection (host keys verified as always) and
    forwarding its engine's socket again, returning the docker CLI's environment; None for this
    machine."""
    import os

    connection = getattr(host, "connection", None)
    if connection is None:
        return None

    def reconnect() -> dict:
        return {**os.environ, "DOCKER_HOST": f"unix://{connection.forward_socket(host.docker_socket)}"}

    return reconnect
