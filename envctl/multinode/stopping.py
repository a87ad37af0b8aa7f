"""Stopping what a run across several nodes left running in each node's container.

What belongs to the run is found in the container itself, not only below the process envctl
started: every process whose environment (/proc/PID/environ, as it was when the process
started) holds the run's `ENVCTL_RUN_ID=<run id>`, and every descendant of such a process.
Launchers' workers inherit the variable, so this reaches them even after their parent died and
they were re-parented (a killed torchrun leaves its workers holding the cards and the port),
and reaches background children a non-interactive shell started with SIGINT ignored (POSIX
sh, "Asynchronous Lists"). A process that cleared its environment is still reached while it
descends from one that did not.

The sweep is one `docker exec` per node and signal, through that node's engine (the socket
forwarded over its SSH connection), and needs only sh, cat, tr and grep in the image.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

# $1: the signal (INT, TERM, KILL, or 0 to only list), $2: the run id. Prints `swept:` and the
# PIDs signalled (zombies left out: they hold nothing and cannot be signalled away).
SWEEP = r'''
sig=$1; run=$2; roots=
for e in /proc/[0-9]*/environ; do
  p=${e#/proc/}; p=${p%/environ}
  [ "$p" = "$$" ] && continue
  if tr '\0' '\n' < "$e" 2>/dev/null | grep -qxF "ENVCTL_RUN_ID=$run"; then roots="$roots $p"; fi
done
todo=$roots; all=
while [ -n "$todo" ]; do
  set -- $todo; p=$1; shift; todo="$*"
  case " $all " in *" $p "*) continue ;; esac
  state=; while read -r k v; do [ "$k" = State: ] && { state=$v; break; }; done < "/proc/$p/status" 2>/dev/null
  case $state in Z*|"") continue ;; esac
  all="$all $p"
  for s in /proc/[0-9]*/status; do
    while read -r k v; do
      if [ "$k" = PPid: ]; then [ "$v" = "$p" ] && { c=${s#/proc/}; todo="$todo ${c%/status}"; }; break; fi
    done < "$s" 2>/dev/null
  done
done
[ -n "$all" ] && [ "$sig" != 0 ] && kill -s "$sig" $all 2>/dev/null
echo "swept:$all"
'''
MARK = "swept:"
POLL_SECONDS = 0.5  # between looks at what is left, during a grace period
SWEEP_TIMEOUT = 60  # seconds for one sweep's `docker exec`


@dataclass
class Swept:
    """One sweep's answer: the PIDs (in the container) it found, or why it could not look."""

    pids: tuple[int, ...] = ()
    unreachable: str | None = None


def sweep(docker: str, docker_env: dict, container: str, run_id: str, signame: str) -> Swept:
    """Signal (or with signame "0" only list) every process of the run in the container."""
    argv = [docker, "exec", container, "sh", "-c", SWEEP, "sh", signame, run_id]
    try:
        done = subprocess.run(argv, env=docker_env, capture_output=True, text=True, timeout=SWEEP_TIMEOUT,
                              stdin=subprocess.DEVNULL, start_new_session=True, check=False)
    except subprocess.TimeoutExpired:
        return Swept(unreachable=f"its Docker engine did not answer within {SWEEP_TIMEOUT} s")
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            return Swept(tuple(int(p) for p in line[len(MARK):].split()))
    reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"docker exec exit code {done.returncode}"
    if "is not running" in reason or "No such container" in reason:
        return Swept()  # no container running: nothing of the run is left in it
    return Swept(unreachable=reason)


def stop_sequence(nodes: list, grace: tuple[float, float], kill_wait: float, sweep_node, still_running) -> None:
    """SIGINT, then SIGTERM, then SIGKILL to what each node has left of the run.

    After SIGINT and after SIGTERM, up to `grace` seconds pass (less when nothing is left on any
    node). SIGKILL is sent again each second for up to `kill_wait` seconds (a process that was
    still being started missed the earlier ones). `sweep_node(node, signame) -> Swept` signals
    one node; `still_running(node)` says whether its `docker exec` has not ended. A node's
    `stopped_by` is set to the last signal that found processes of it while it was running,
    `leftovers` counts what was found after its own process had ended, `unreachable` says why
    a node could not be swept."""
    def one_round(signame: str) -> list:
        hit = []
        for node in nodes:
            if node.unreachable:
                continue
            running = still_running(node)
            found = sweep_node(node, signame)
            if found.unreachable:
                node.unreachable = found.unreachable
                continue
            if found.pids:
                hit.append(node)
                if running:
                    node.stopped_by = f"SIG{signame}"
                else:
                    node.leftovers = max(node.leftovers, len(found.pids))
        return hit

    for signame, wait in (("INT", grace[0]), ("TERM", grace[1])):
        hit = one_round(signame)
        deadline = time.monotonic() + wait
        while hit and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            hit = [node for node in hit if not node.unreachable and sweep_node(node, "0").pids]
    deadline = time.monotonic() + kill_wait
    while True:  # at least once, however short kill_wait is
        if not one_round("KILL") and not any(still_running(node) for node in nodes):
            return
        if time.monotonic() >= deadline:
            return
        time.sleep(1.0)
