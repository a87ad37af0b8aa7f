"""Run one entrypoint on every node at once and stop them together.

Each node's process is started with `docker exec` against that node's engine (through the
socket forwarded over the SSH connection envctl already holds), inside the run-record wrapper
of envctl/runs.py, so `status` sees it and its PID is known. Output is streamed live, each line
prefixed `[rank host]`, and appended to a log in that node's workspace.

The first node to end with a non-zero code (a lost connection ends its `docker exec` with one
too) is the cause; every other node is then stopped: SIGINT, then SIGTERM, then SIGKILL, with a
grace period between them (torchrun and msrun forward SIGINT/SIGTERM to their workers). Without
this the survivors wait for the dead peer until the collective library's timeout
(HCCL_CONNECT_TIMEOUT=7200 s in ModelZoo's env_npu.sh). Ctrl-C stops every node the same way.
The signal reaches the entrypoint's process and all its descendants in the container, as a
terminal's Ctrl-C reaches a whole foreground process group.
"""

from __future__ import annotations

import collections
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from envctl import runs
from envctl.errors import HostNotReady

GRACE_SECONDS = (10.0, 10.0)  # after SIGINT, after SIGTERM; then SIGKILL
LAST_LINES = 10  # of each node, in the failure report

# Signal the process in the PID file and every descendant of it ($0 the PID file, $1 the signal).
# Only /proc and shell builtins, which every image envctl runs has.
_SIGNAL_TREE = ('todo=$(cat "$0") || exit 0; all=; while [ -n "$todo" ]; do set -- $todo; p=$1; shift; todo="$*"; '
                'all="$all $p"; for s in /proc/[0-9]*/status; do while read -r k v; do if [ "$k" = PPid: ]; then '
                '[ "$v" = "$p" ] && { c=${s#/proc/}; todo="$todo ${c%/status}"; }; break; fi; done < "$s"; done 2>/dev/null; '
                'done; kill -s "$SIG" $all 2>/dev/null; exit 0')


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
    stopped_by: str | None = None  # the last signal envctl sent it

    @property
    def label(self) -> str:
        return f"[{self.rank} {self.host}]"


@dataclass
class Outcome:
    code: int  # the first failure's, 0 when every node ended with 0, 130 on Ctrl-C alone
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
    returns when every node has ended."""
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

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    first: NodeProcess | None = None
    stopping = False
    try:
        remaining = len(nodes)
        while remaining:
            try:
                node = ended.get(timeout=0.2)
            except queue.Empty:
                node = None
            if node is not None:
                remaining -= 1
                if node.code != 0 and first is None and not interrupted.is_set() and not stopping:
                    first = node
            if not stopping and (first is not None or interrupted.is_set()):
                stopping = True
                threading.Thread(target=_stop_all, args=(nodes, docker, grace), daemon=True).start()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for node in nodes:
            node.log.close()
            subprocess.run([docker, "exec", node.container, "rm", "-f", node.pid_file], env=node.docker_env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if first is not None:
        code = first.code
    elif interrupted.is_set():
        code = 130
    else:
        code = 0
    return Outcome(code, first, interrupted.is_set() and first is None, nodes)


def _pump(node: NodeProcess, out, lock: threading.Lock, ended: queue.Queue) -> None:
    """Copy a node's output line by line, prefixed, to `out` and to its log; then its code."""
    prefix = node.label.encode() + b" "
    for line in iter(node.child.stdout.readline, b""):
        node.last.append(line.decode("utf-8", "replace").rstrip("\n"))
        node.log.write(line)
        with lock:  # whole lines, never interleaved with another node's
            out.write(prefix + line if line.endswith(b"\n") else prefix + line + b"\n")
            out.flush()
    node.code = node.child.wait()
    ended.put(node)


def _signal(node: NodeProcess, docker: str, signame: str) -> None:
    node.stopped_by = f"SIG{signame}"
    try:
        subprocess.run([docker, "exec", "-e", f"SIG={signame}", node.container, "sh", "-c", _SIGNAL_TREE, node.pid_file],
                       env=node.docker_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=60)
    except subprocess.TimeoutExpired:
        pass  # the engine does not answer: the last step below ends our side


def _stop_all(nodes: list[NodeProcess], docker: str, grace: tuple[float, float], kill_wait: float = 10.0) -> None:
    """SIGINT, SIGTERM, SIGKILL to every node still running, a grace period between them.
    SIGKILL is sent again each second (a node whose wrapper had not yet written its PID file
    missed the earlier ones); a node whose `docker exec` still has not ended after `kill_wait`
    (its engine or connection is gone) has its local docker client killed."""
    for signame, wait in (("INT", grace[0]), ("TERM", grace[1])):
        running = [n for n in nodes if n.child.poll() is None]
        for node in running:
            _signal(node, docker, signame)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(n.child.poll() is None for n in running):
            time.sleep(0.1)
    deadline = time.monotonic() + kill_wait
    while time.monotonic() < deadline:
        running = [n for n in nodes if n.child.poll() is None]
        if not running:
            return
        for node in running:
            _signal(node, docker, "KILL")
        time.sleep(1.0)
    for node in nodes:
        if node.child.poll() is None:
            node.child.kill()


def report(outcome: Outcome) -> list[str]:
    """What happened, for stderr: the cause (or Ctrl-C), each node's end and its last lines."""
    lines = []
    if outcome.first is not None:
        f = outcome.first
        lines.append(f"node {f.rank} ({f.host}) failed first: exit code {f.code}; envctl stopped the others")
    elif outcome.interrupted:
        lines.append("interrupted: envctl stopped every node")
    for node in outcome.nodes:
        how = f"stopped by envctl ({node.stopped_by}), exit code {node.code}" if node.stopped_by else f"exit code {node.code}"
        lines.append(f"{node.label} {how}; log {node.log_path} on {node.host}")
        if outcome.code != 0:
            lines += [f"    {text}" for text in node.last]
    return lines
