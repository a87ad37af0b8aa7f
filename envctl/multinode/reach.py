"""Is the master's port reachable from every node's container? A short-lived listener on the
chosen port in node 0's container, and a connect to MASTER_ADDR:PORT from every other node's
container, before anything starts.

This catches what the address choice cannot see: a firewall on the master or between the
nodes, a data-plane link that is down, a port taken since it was chosen, a container not on
its host's network (kubeflow/pytorch-operator #333: the name resolves but the port does not
answer). Each side runs with the tools the image has, tried in this order:

- listener: python3, python (a socket bound on 0.0.0.0, as torch's TCPStore and msrun's
  scheduler bind), else `nc -l -p PORT` (BusyBox, netcat-traditional) under `timeout`;
- connect: python3, python, `nc -w SECONDS` (BusyBox, netcat-traditional), else bash's
  /dev/tcp under `timeout`.

An image with none of them (no python, nc or bash) is not checked: the check says so
(`unsure`), it does not block. With python the connecting side closes first (the listener reads
until the peer's FIN), so TCP's TIME_WAIT stays on the connecting node's ephemeral port and the
launcher's own bind of the master port right after is not refused. With nc both sides' stdin
is empty and either may close first: the master port may then wait in TIME_WAIT for about a
minute, and a launcher binding it without SO_REUSEADDR would be refused meanwhile. Only images
without python take that path; no shipped training image is one (seen with `ss` on loopback,
tests/unit/test_multinode_reach_scripts.py). The python listener binds with SO_REUSEADDR, as
torch's TCPStore does, so a master port that the previous run's store left in TIME_WAIT is not
taken for one in use (a socket still listening on it is).
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from envctl.errors import EnvctlError

CONNECT_TIMEOUT_S = 5  # per connect; a dropped SYN (firewall, partition) shows as a timeout
NO_TOOL = 127  # exit code of both scripts when the image has none of the tools

_PY_LISTEN = r"""
import socket, sys, time
port, want, deadline = int(sys.argv[1]), int(sys.argv[2]), time.time() + float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
# As torch's TCPStore does: a previous run's connections in TIME_WAIT on this port do not make
# it "in use"; a socket still listening on it does (Linux refuses that bind even so).
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("0.0.0.0", port)); s.listen(64)
except OSError as e:
    print("bind-failed", e.strerror or e, flush=True); sys.exit(3)
print("listening", flush=True)
got = 0
while got < want and time.time() < deadline:
    s.settimeout(max(0.1, deadline - time.time()))
    try:
        c, peer = s.accept()
    except socket.timeout:
        break
    c.settimeout(2)
    try:
        c.recv(1)  # until the peer closes: it keeps the TIME_WAIT, not this port
    except OSError:
        pass
    c.close(); got += 1
    print("from", peer[0], flush=True)
"""

_PY_CONNECT = r"""
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except socket.timeout:
    print("timed out", flush=True); sys.exit(4)
except OSError as e:
    print(e.strerror or e, flush=True); sys.exit(4)
print("connected", flush=True)
"""

# $1 port, $2 connections wanted, $3 seconds. First line: listening | bind-failed REASON | no-tool.
LISTEN_SCRIPT = r"""
for py in python3 python; do
  if command -v "$py" >/dev/null 2>&1; then exec "$py" -c "$PY" "$@"; fi
done
if command -v nc >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1; then
  hex=$(printf '%04X' "$1"); i=0
  held() {  # something LISTENs (state 0A) on the port, IPv4 or IPv6
    for f in /proc/net/tcp /proc/net/tcp6; do
      [ -r "$f" ] || continue
      while read -r _ local _ state _; do
        [ "${local##*:}" = "$hex" ] && [ "$state" = 0A ] && return 0
      done < "$f"
    done
    return 1
  }
  if held; then echo "bind-failed Address in use"; exit 3; fi
  while [ "$i" -lt "$2" ]; do
    timeout "$3" nc -l -p "$1" </dev/null >/dev/null 2>&1 & pid=$!
    n=0; bound=
    while [ "$n" -lt 100 ]; do  # nc prints nothing once bound: wait until the kernel lists the port
      if held; then bound=1; break; fi
      kill -0 "$pid" 2>/dev/null || break  # ended already (a later nc may have had its peer)
      sleep 0.1; n=$((n + 1))
    done
    if [ "$i" -eq 0 ]; then  # nobody connects before "listening": the first nc must be seen bound
      [ -n "$bound" ] || { kill "$pid" 2>/dev/null; echo "bind-failed nc could not listen"; exit 3; }
      echo listening
    fi
    wait "$pid" || break
    i=$((i + 1)); echo from
  done
  exit 0
fi
echo no-tool; exit 127
"""

# $1 address, $2 port, $3 seconds. One line: connected | the reason; exit 127 when no tool.
CONNECT_SCRIPT = r"""
for py in python3 python; do
  if command -v "$py" >/dev/null 2>&1; then exec "$py" -c "$PY" "$@"; fi
done
try=0
while :; do
  if command -v nc >/dev/null 2>&1; then
    out=$(nc -w "$3" "$1" "$2" </dev/null 2>&1) && { echo connected; exit 0; }
  elif command -v bash >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1; then
    out=$(timeout "$3" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>&1) && { echo connected; exit 0; }
    [ -n "$out" ] || out="timed out"
  else
    echo no-tool; exit 127
  fi
  # nc's listener takes one connection at a time: a refusal between two of them is retried
  case "$out" in *efused*) [ "$try" -lt 4 ] && { try=$((try + 1)); sleep 0.5; continue; } ;; esac
  echo "${out:-failed}" | tail -n 1; exit 4
done
"""


@dataclass(frozen=True)
class Reach:
    status: str  # ok | blocked | unsure
    detail: str  # the reason, for the table's problem lines ("" when ok)
    text: str  # for a table cell: ok, refused, timed out, in use, not checked


def _exec(engine, container_id: str, script: str, python: str, args: list[str]) -> tuple[int, str]:
    api = engine.api
    made = api.exec_create(container_id, ["sh", "-c", script, "sh", *args], stdout=True, stderr=True,
                           environment={"PY": python})
    out = api.exec_start(made["Id"]).decode("utf-8", errors="replace")
    return api.exec_inspect(made["Id"])["ExitCode"], out


class _Listener:
    """The listener's exec, read in a thread: its lines arrive on a queue, None at its end."""

    def __init__(self, engine, container_id: str, port: int, want: int, seconds: float):
        api = engine.api
        self.lines: queue.Queue = queue.Queue()
        made = api.exec_create(container_id, ["sh", "-c", LISTEN_SCRIPT, "sh", str(port), str(want), str(seconds)],
                               stdout=True, stderr=True, environment={"PY": _PY_LISTEN})
        self._stream = api.exec_start(made["Id"], stream=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        pending = b""
        try:
            for chunk in self._stream:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self.lines.put(line.decode("utf-8", errors="replace").strip())
        except Exception as exc:  # a lost engine connection: the waiting side says so
            self.lines.put(f"bind-failed the listener's exec ended: {exc}")
        self.lines.put(None)

    def first_line(self, seconds: float) -> str | None:
        try:
            return self.lines.get(timeout=seconds)
        except queue.Empty:
            return None

    def wait(self, seconds: float) -> None:
        self._thread.join(seconds)


def check(sites, master_addr: str, port: int, seconds: float = CONNECT_TIMEOUT_S) -> list[Reach]:
    """One Reach per site, rank order: node 0's says whether its listener could bind the
    port; each other node's whether its container reached MASTER_ADDR:PORT. `sites`: objects
    with `.host.engine()` and `.environment.container.id` (envctl.multinode.prepare.NodeSite)."""
    master = sites[0]
    others = sites[1:]
    window = seconds * (len(others) + 2) + 10  # the listener ends by itself after this
    listener = _Listener(master.host.engine(), master.environment.container.id, port, len(others), window)
    first = listener.first_line(30)
    if first is None or first.startswith("bind-failed"):
        reason = first[len("bind-failed"):].strip() if first else "no answer from the listener within 30 s"
        ok_reason = f"cannot listen on port {port} in {master.environment.name}: {reason or 'bind failed'}"
        blocked = Reach("blocked", ok_reason, "in use" if "in use" in reason.lower() else "no listen")
        return [blocked] + [Reach("unsure", "", "not checked") for _ in others]
    if first == "no-tool":
        said = "not checked: the image has no python3, python or nc to listen with"
        return [Reach("unsure", said, "not checked")] + [Reach("unsure", "", "not checked") for _ in others]

    def connect(site) -> Reach:
        try:
            code, out = _exec(site.host.engine(), site.environment.container.id, CONNECT_SCRIPT, _PY_CONNECT,
                              [master_addr, str(port), str(seconds)])
        except EnvctlError as exc:  # its engine stopped answering: that node is not ready
            return Reach("blocked", f"the connect from its container could not run: {exc.message}", "failed")
        said = out.strip().splitlines()[-1] if out.strip() else f"exit code {code}"
        if code == 0:
            return Reach("ok", "", "ok")
        if code == NO_TOOL:
            return Reach("unsure", "not checked: the image has no python3, python, nc or bash to connect with",
                         "not checked")
        short = "timed out" if "timed out" in said.lower() else "refused" if "refused" in said.lower() else "failed"
        return Reach("blocked", f"its container cannot connect to the master {master_addr}:{port}: {said}", short)

    with ThreadPoolExecutor(max_workers=min(16, max(1, len(others)))) as pool:
        results = list(pool.map(connect, others))
    listener.wait(seconds + 5)
    return [Reach("ok", "", "listen ok")] + results
