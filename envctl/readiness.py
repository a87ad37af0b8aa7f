"""Is a detached server ready? Checked from inside its container, through the engine.

Why from inside: the one place that reaches the server under every network mode. With
`network: none` nothing outside the container can; with a bridge network only the engine's
host can, at the container's address (not this machine when the engine is a remote host's);
with `network: host` the container's loopback is the host's. An exec in the container sees the
server's own network namespace in all three, locally and over SSH alike.

Two probes, each one short exec (`sh` and the tools named; nothing is installed):

- the port: the kernel's socket tables `/proc/net/tcp` and `/proc/net/tcp6` (proc(5) and the
  kernel's Documentation/networking/proc_net_tcp.rst: listening sockets first; state
  `0A` is TCP_LISTEN; `local_address` is the IP in the kernel's byte order, hex, and the port in
  hex) hold a listening socket on the port, and that socket's inode is one of the run's open
  files (`/proc/PID/fd/*` links read `socket:[INODE]`) where `ls` can list them. The run's
  processes are its session: the engine's runtime starts every exec in a session of its own
  (runc calls setsid), so the session ID is the run's PID; where the fd links cannot be read,
  any listening socket on the port counts. A socket that listens accepts connections (the
  kernel completes the handshake), which is what "the port answers" means to a client.
- the HTTP path: a GET to the listening address, by curl, wget (GNU or BusyBox) or python3,
  whichever the image has, with proxy variables unset (a lab's `http_proxy` must not carry a
  request to the container's own loopback away); redirects are followed, and the final answer's
  status must be 2xx. wget is bounded (5 s) by the probe itself, which kills it and reaps it: not
  by its own -T, because Debian's BusyBox before 1.36.1-5 is built without FEATURE_WGET_TIMEOUT
  and there -T crashes wget with SIGSEGV (seen with 1:1.35.0-4 of Debian 12; also
  docker-easyconnect/docker-easyconnect pull request 369), and not by timeout(1), whose BusyBox
  watcher outlives the command by up to a second, a process `status` and the plan would count
  as work left running in the container (envctl/runs.py).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# $0: the run's PID. Prints the socket tables, then per process its stat line and its fd links.
PORT_SCRIPT = ("command -v ls >/dev/null 2>&1 || printf '\\036nols\\n'; "
               "for f in /proc/net/tcp /proc/net/tcp6; do [ -r \"$f\" ] && { printf '\\036net\\n'; cat \"$f\"; }; done; "
               "cd /proc && for p in [0-9]*; do [ -r \"$p/stat\" ] || continue; printf '\\036proc %s\\n' \"$p\"; "
               "cat \"$p/stat\"; echo; ls -l \"$p/fd\" 2>/dev/null; done")
# $0: the URL. Prints `<tool> <answer>`: the final status code, or `none` when no tool is there.
HTTP_SCRIPT = (
    "unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY; "
    "if command -v curl >/dev/null 2>&1; then printf 'curl '; curl -s -L -o /dev/null --max-time 5 -w '%{http_code}\\n' \"$0\"; "
    "elif command -v wget >/dev/null 2>&1; then printf 'wget '; "
    "{ wget -S -O /dev/null \"$0\" 2>&1 & p=$!; i=0; while kill -0 $p 2>/dev/null && [ $i -lt 50 ]; do "
    "sleep 0.1 2>/dev/null || sleep 1; i=$((i+1)); done; kill $p 2>/dev/null; wait $p; } | "
    "sed -n 's/^ *HTTP\\/[0-9.]* \\([0-9][0-9][0-9]\\).*/\\1/p' | tail -n 1; echo; "
    "elif command -v python3 >/dev/null 2>&1; then printf 'python3 '; python3 -c '"
    "import sys, urllib.request, urllib.error\n"
    "try:\n print(urllib.request.urlopen(sys.argv[1], timeout=5).status)\n"
    "except urllib.error.HTTPError as e:\n print(e.code)\n"
    "except Exception as e:\n print(type(e).__name__)' \"$0\"; "
    "else echo none; fi")
PROBES = (PORT_SCRIPT, HTTP_SCRIPT)  # envctl/runs.py does not count these execs as work

_LISTEN = "0A"


@dataclass(frozen=True)
class Readiness:
    """What `ready:` asks of a detached run. port: TCP port in the container; http: a path
    (`/health`) or None; timeout: seconds."""

    port: int
    http: str | None
    timeout: float

    def describe(self) -> str:
        """`GET /health answers 2xx on port 8000` | `port 8000 answers`."""
        return f"GET {self.http} answers 2xx on port {self.port}" if self.http else f"port {self.port} answers"


def of_entrypoint(entry) -> Readiness | None:
    """The readiness of a manifest entrypoint (envctl.manifest.model.Entrypoint), or None when
    it declares none."""
    if entry.ready is None:
        return None
    return Readiness(entry.ready_port, entry.ready.http, float(entry.ready.timeout))


@dataclass(frozen=True)
class Listening:
    """A listening socket found: `address` as a URL's host part (`127.0.0.1`, `[::1]`).
    `loopback`: every such socket is bound to a loopback address (127.0.0.0/8, ::1), so only
    the container's own network namespace reaches it: not a published port (Docker forwards
    to the container's interface address), not the container's bridge address, and under
    `network: host` only the host itself. Servers that listen there by default, such as
    gradio (GRADIO_SERVER_NAME, default 127.0.0.1) and `python -m http.server --bind
    127.0.0.1`, answer a readiness check from inside and nobody outside."""

    address: str
    owned: bool | None  # a socket of the run's processes; None: their files could not be read
    loopback: bool = False


def listening(output: str, port: int, session: int) -> Listening | None:
    """The socket listening on `port` in PORT_SCRIPT's `output`, preferring one of session
    `session`'s processes; None when none listens there (or only other processes' sockets do,
    where their files can be read)."""
    sections = output.split("\x1e")
    sockets: dict[str, str] = {}  # inode -> local IP (hex, kernel order)
    can_list = not any(s.startswith("nols") for s in sections)
    owned_inodes: set[str] = set()
    for section in sections:
        head, _, body = section.partition("\n")
        if head == "net":
            for line in body.splitlines()[1:]:
                fields = line.split()
                if len(fields) < 10 or fields[3] != _LISTEN:
                    continue
                ip, _, port_hex = fields[1].partition(":")
                try:
                    if int(port_hex, 16) == port:
                        sockets[fields[9]] = ip
                except ValueError:
                    continue
        elif head.startswith("proc "):
            stat, _, links = body.partition("\n")
            if _session(stat) == session:
                owned_inodes.update(re.findall(r"socket:\[(\d+)\]", links))
    if not sockets:
        return None
    candidates = [inode for inode in sockets if inode in owned_inodes] if can_list else list(sockets)
    if not candidates:
        return None
    # A socket reachable from outside the container is preferred (a server on 127.0.0.1 and
    # 0.0.0.0 both is reached); the run is loopback-only when each of its sockets is.
    outside = [inode for inode in candidates if not _is_loopback(sockets[inode])]
    chosen = (outside or candidates)[0]
    return Listening(_url_host(sockets[chosen]), True if can_list else None, loopback=not outside)


def _session(stat: str) -> int | None:
    """Field 6 of /proc/PID/stat (session ID); comm (field 2) may hold spaces and ')'."""
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return int(fields[3])
    except (IndexError, ValueError):
        return None


def _address(ip_hex: str):
    """The IP of a socket table's hex field. The kernel writes each 32-bit word in host byte
    order: little-endian on x86_64 and aarch64."""
    raw = bytes.fromhex(ip_hex)
    return ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))


def _is_loopback(ip_hex: str) -> bool:
    address = _address(ip_hex)
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def _url_host(ip_hex: str) -> str:
    """The address to ask: a wildcard listener through the loopback (a `::` socket takes IPv4
    too unless it is IPV6_V6ONLY, which servers rarely set); else the address itself."""
    address = _address(ip_hex)
    if address.is_unspecified:
        return "127.0.0.1"
    if address.version == 6 and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return f"[{address}]" if address.version == 6 else str(address)


@dataclass(frozen=True)
class HttpAnswer:
    """What the HTTP probe got: `tool` (curl, wget, python3, or None: the image has none);
    `status`: the final HTTP status, or None with `problem` (no answer, a refused connection)."""

    tool: str | None
    status: int | None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        if self.tool is None:
            return "the image has none of curl, wget, python3 to ask it"
        if self.status is not None:
            return f"answered {self.status}"
        return f"no answer ({self.problem})" if self.problem else "no answer"


def http_answer(output: str) -> HttpAnswer:
    """HTTP_SCRIPT's output read. curl writes 000 when no answer came."""
    tool, _, rest = output.strip().partition(" ")
    if tool == "none" or tool not in ("curl", "wget", "python3"):
        return HttpAnswer(None, None, output.strip() or None)
    answer = rest.strip().splitlines()[-1].strip() if rest.strip() else ""
    if answer.isdigit() and answer != "000":
        return HttpAnswer(tool, int(answer))
    return HttpAnswer(tool, None, answer if answer and answer != "000" else None)
