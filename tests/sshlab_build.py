"""How an SSH lab (tests/sshlab.py) is laid out on the machine, built, and taken apart.

Layout of lab `<pid>-<seq>` (names carry the pid of the process that made it, so parallel runs
never collide and leftovers of a crashed run are recognised by a dead pid):

    root namespace (tests, envctl)            switch namespace  <prefix>-switch
      el<pid>r<seq> 10.213.N.1/24  ─── veth ───  "root" ┐
                                                 br0 ───┼─ "lab1" ── veth ── eth0 of lab1 10.213.N.11
                                                        └─ "lab2" ── veth ── eth0 of lab2 10.213.N.12
                                                 br1 ───┬─ "lab1-h" ─ veth ── eth1 of lab1 10.213.(N+1).1
                                                        └─ "hidden1" ─ veth ── eth0 of hidden1 10.213.(N+1).13

A host's last octet is 10 + its position among all hosts (lab1 .11, lab2 .12, hidden1 .13 here).

The root namespace has no link to br1 and an `unreachable` route for its subnet, so a direct
connection to a hidden host fails at once ("No route to host"), and lab hosts do not forward:
hidden hosts are reachable only through the jump host's sshd (ProxyJump). All wires meet in the
switch namespace, whose own (empty) firewall is where delays and partitions are applied; the
machine's firewall (Docker's FORWARD DROP) is never touched.

Each host also has a mount namespace with a private /root, /tmp, /var/tmp and /run (its own
home with .ssh/authorized_keys, its own /run/docker.sock), and runs sshd and dockerd there:
what one host writes to ~ or /tmp, or to its engine, the others do not see. The rest of the
file system is shared with the test process.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sshlab_system import (
    LabError,
    cgroup_pids,
    create_mount_ns,
    exe_name,
    in_host,
    kill,
    netns_path,
    ns_id,
    pid_exists,
    pids_in_namespaces,
    remove_cgroups,
    remove_tree,
    run,
    unmount,
    wait_gone,
)

BASE_DIR = Path("/var/lib/envctl-lab")  # not under /tmp: lab hosts have a private /tmp
PRIVATE_DIRS = ("/root", "/tmp", "/var/tmp", "/run")
SUBNET_PREFIX = "10.213"
SSHD = "/usr/sbin/sshd"
DAEMON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class HostPlan:
    """Names, address and paths of one lab host (all plain data: saved in lab.json)."""

    name: str
    index: int  # 1-based; also its NFQUEUE number in the switch namespace
    ip: str
    hidden: bool
    netns: str
    bridge: str  # br0 (reachable from the root namespace) or br1 (behind the jump host)
    port: str  # its interface in the switch namespace
    dir: str
    cgroup: str  # --cgroup-parent of its engine
    engine: bool
    engine_store: str = "classic"  # "classic": the machine's dockerd; "containerd": CONTAINERD_ROOTFS's

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def mnt(self) -> Path:
        return self.path / "mnt.ns"

    @property
    def fs(self) -> Path:
        """Sources of the host's private directories: fs/root is its /root, fs/run its /run."""
        return self.path / "fs"

    @property
    def host_root(self) -> Path:
        return self.path / "hostroot"

    @property
    def docker_socket(self) -> Path:
        return self.fs / "run/docker.sock"

    @property
    def ssh_dir(self) -> Path:
        return self.path / "ssh"


@dataclass
class LabPlan:
    pid: int
    seq: int
    dir: str
    prefix: str
    switch_ns: str
    root_link: str
    gateway: str  # the root namespace's address on br0
    subnet: str  # 10.213.N.0/24
    hidden_subnet: str  # 10.213.(N+1).0/24, behind the jump host
    jump: str
    hosts: list[HostPlan] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return Path(self.dir)

    def save(self) -> None:
        (self.path / "lab.json").write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> LabPlan:
        data = json.loads(path.read_text())
        data["hosts"] = [HostPlan(**h) for h in data["hosts"]]
        return cls(**data)


# --- planning ---------------------------------------------------------------------------------

def lock(base: Path):
    """An exclusive lock on the lab base directory: stale clean-up, subnet choice and the root
    namespace link happen under it, so two labs starting together never pick the same subnet."""
    base.mkdir(parents=True, exist_ok=True)
    handle = open(base / ".lock", "w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def used_third_octets() -> set[int]:
    """Third octets of 10.213.x.y already present in the root namespace (addresses, routes)."""
    text = run(["ip", "-4", "-o", "addr", "show"]).stdout + run(["ip", "-4", "route", "show", "table", "all"]).stdout
    return {int(m) for m in re.findall(rf"\b{re.escape(SUBNET_PREFIX)}\.(\d+)\.", text)}


def plan_lab(base: Path, visible: list[str], hidden: list[str], jump: str, engines: set[str],
             containerd: set[str] = frozenset()) -> LabPlan:
    pid = os.getpid()
    seq = next(i for i in range(1000) if not (base / f"{pid}-{i}").exists())
    used = used_third_octets()
    start = (pid % 127) * 2  # spread parallel labs, then take the first free pair
    third = next((n for n in [*range(start, 254, 2), *range(0, start, 2)] if n not in used and n + 1 not in used), None)
    if third is None:
        raise LabError(f"no free pair of {SUBNET_PREFIX}.x.0/24 subnets in the root namespace")
    prefix = f"envctl-lab-{pid}-{seq}"
    lab = LabPlan(
        pid=pid, seq=seq, dir=str(base / f"{pid}-{seq}"), prefix=prefix, switch_ns=f"{prefix}-switch",
        root_link=f"el{pid}r{seq}", gateway=f"{SUBNET_PREFIX}.{third}.1",
        subnet=f"{SUBNET_PREFIX}.{third}.0/24", hidden_subnet=f"{SUBNET_PREFIX}.{third + 1}.0/24", jump=jump,
    )
    for index, name in enumerate([*visible, *hidden], start=1):
        is_hidden = name in hidden
        octet = third + 1 if is_hidden else third
        lab.hosts.append(HostPlan(
            name=name, index=index, ip=f"{SUBNET_PREFIX}.{octet}.{10 + index}", hidden=is_hidden,
            netns=f"{prefix}-{name}", bridge="br1" if is_hidden else "br0", port=name,
            dir=str(lab.path / name), cgroup=f"{prefix}-{name}", engine=name in engines,
            engine_store="containerd" if name in containerd else "classic",
        ))
    return lab


# --- network ----------------------------------------------------------------------------------

def build_switch(lab: LabPlan) -> None:
    """The switch namespace with br0 and br1, and the root namespace's link to br0. Called under
    the lock: the root link's address is what marks the subnet as taken for the next lab."""
    sw = lab.switch_ns
    run(["ip", "netns", "add", sw])
    run(["ip", "-n", sw, "link", "set", "lo", "up"])
    for bridge in ("br0", "br1"):
        run(["ip", "-n", sw, "link", "add", bridge, "type", "bridge"])
        run(["ip", "-n", sw, "link", "set", bridge, "up"])
    # Created in the root namespace with its peer born inside the switch: only the root-side
    # name (unique by pid) ever exists in the root namespace.
    run(["ip", "link", "add", lab.root_link, "type", "veth", "peer", "name", "root", "netns", sw])
    run(["ip", "-n", sw, "link", "set", "root", "master", "br0", "up"])
    run(["ip", "addr", "add", f"{lab.gateway}/24", "dev", lab.root_link])
    run(["ip", "link", "set", lab.root_link, "up"])
    # Bridged packets must pass the switch's iptables (partitions, NFQUEUE delays). The setting
    # is per namespace; it is missing when br_netfilter is not loaded.
    run(in_host(["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"], netns=sw))
    # Without this the hidden subnet would follow the default route and time out slowly.
    run(["ip", "route", "add", "unreachable", lab.hidden_subnet])


def _plug(lab: LabPlan, netns: str, inside: str, port: str, bridge: str, address: str) -> None:
    """A veth pair between a host (`inside`, e.g. eth0) and a switch port on `bridge`."""
    sw = lab.switch_ns
    run(["ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", inside, "netns", netns])
    run(["ip", "-n", sw, "link", "set", port, "master", bridge, "up"])
    run(["ip", "-n", netns, "addr", "add", address, "dev", inside])
    run(["ip", "-n", netns, "link", "set", inside, "up"])


def build_host_network(lab: LabPlan, host: HostPlan) -> None:
    run(["ip", "netns", "add", host.netns])
    run(["ip", "-n", host.netns, "link", "set", "lo", "up"])
    # A new namespace copies ip_forward from the machine's (1 where Docker runs): a server does
    # not route, and the jump host must not be a router to its hidden hosts.
    run(in_host(["sysctl", "-qw", "net.ipv4.ip_forward=0"], netns=host.netns))
    _plug(lab, host.netns, "eth0", host.port, host.bridge, f"{host.ip}/24")
    if host.name == lab.jump and any(h.hidden for h in lab.hosts):
        jump_ip = lab.hidden_subnet.replace(".0/24", ".1/24")
        _plug(lab, host.netns, "eth1", f"{host.port[:12]}-h", "br1", jump_ip)


def build_host_fs(host: HostPlan, authorized_keys: str) -> None:
    """The host's directories and its mount namespace with private /root, /tmp, /var/tmp, /run."""
    for private in PRIVATE_DIRS:
        (host.fs / private.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (host.fs / "tmp").chmod(0o1777)
    (host.fs / "var/tmp").chmod(0o1777)
    (host.fs / "run/sshd").mkdir(mode=0o755)  # sshd's privilege separation directory
    ssh = host.fs / "root/.ssh"
    ssh.mkdir(mode=0o700)
    (ssh / "authorized_keys").write_text(authorized_keys)
    host.host_root.mkdir()
    create_mount_ns(host.mnt, {private: host.fs / private.lstrip("/") for private in PRIVATE_DIRS})


# --- daemons ----------------------------------------------------------------------------------

def sshd_config(host: HostPlan, set_docker_host: bool, ask_password: bool = False) -> str:
    """`ask_password`: refuse every key and offer password logins instead (a bastion that
    wants a password or one-time code); root's password never matches, so none is accepted."""
    lines = [
        f"# sshd of lab host {host.name}: written by tests/sshlab_build.py",
        "Port 22",
        "AddressFamily inet",
        "ListenAddress 0.0.0.0",
        f"HostKey {host.ssh_dir / 'ssh_host_ed25519_key'}",
        "PidFile none",
        "PermitRootLogin prohibit-password",  # tests run as root; keys only
        "PubkeyAuthentication yes",
        "AuthorizedKeysFile " + ("none" if ask_password else ".ssh/authorized_keys"),  # the host's private /root
        "PasswordAuthentication " + ("yes" if ask_password else "no"),
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",  # the lab's directories live below paths we do not own the modes of
        "AllowTcpForwarding yes",  # ProxyJump through this host, and tunnels
        "AllowStreamLocalForwarding yes",  # forwarding a remote docker.sock
        "X11Forwarding no",
        "PrintMotd no",
        "UseDNS no",
        "LogLevel VERBOSE",
        "Subsystem sftp /usr/lib/openssh/sftp-server",  # sftp clients, and scp (it speaks sftp since OpenSSH 9)
    ]
    if host.engine and set_docker_host:
        lines.append(f"SetEnv DOCKER_HOST=unix://{host.docker_socket}")
    return "\n".join(lines) + "\n"


def _spawn(host: HostPlan, argv: list[str], log: Path) -> subprocess.Popen:
    """A daemon inside the host's namespaces, in its own session (its own process group), with
    a plain environment: nothing of the test's DOCKER_HOST, HOME or proxies leaks into it."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            in_host(argv, netns=host.netns, mnt=host.mnt),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={"PATH": DAEMON_PATH, "LANG": "C.UTF-8"}, cwd="/",
        )


def start_sshd(host: HostPlan) -> subprocess.Popen:
    config = host.ssh_dir / "sshd_config"
    # `sshd -t` first: a bad option is reported with its message instead of a dead daemon.
    run(in_host([SSHD, "-t", "-f", str(config)], netns=host.netns, mnt=host.mnt))
    return _spawn(host, [SSHD, "-D", "-e", "-f", str(config)], host.path / "sshd.log")


def start_dockerd(host: HostPlan) -> subprocess.Popen:
    """An engine of the host's own: own data root, exec root, socket and cgroup parent, no
    bridge and no iptables (the host's namespace has no way out anyway). Its /run is private,
    so dockerd finds no system containerd and starts one of its own under /run/docker.
    engine_store "containerd": the Docker of CONTAINERD_ROOTFS with the containerd image store
    (see _containerd_store_argv)."""
    # Never the machine's /etc/docker/daemon.json. Before Docker 23 the engine ID (`docker
    # info` ID) comes from /etc/docker/key.json, the same for every engine on the machine: each
    # host gets its own key so that engines are told apart as on separate servers (from 23 on,
    # the ID lives in the data root and this setting is gone).
    containerd = host.engine_store == "containerd"
    if containerd:
        settings = {"features": {"containerd-snapshotter": True}}
    else:
        settings = {"deprecated-key-path": str(host.path / "key.json")} if _dockerd_major() < 23 else {}
    config = host.path / "daemon.json"
    config.write_text(json.dumps(settings) + "\n")
    data_root = host.path / "docker"
    data_root.mkdir(exist_ok=True)
    argv = [
        "dockerd", "--config-file", str(config), "--data-root", str(data_root),
        "--exec-root", "/run/docker", "--pidfile", "/run/docker.pid", "-H", "unix:///run/docker.sock",
        "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false",
        "--cgroup-parent", f"/{host.cgroup}", "--shutdown-timeout", "3",
    ]
    if containerd:  # its storage is the containerd snapshotter; Docker 28 also sets up ip6tables
        argv = _containerd_store_argv(data_root, [*argv, "--ip6tables=false"])
    else:
        argv += ["--storage-driver", "overlay2"]
    return _spawn(host, argv, host.path / "dockerd.log")


# Run in a mount namespace of dockerd's own, inside the host's: the data root becomes a mount of
# its own (containerd's snapshotter reads the mount table for it; without one dockerd fails with
# `unknown service containerd.services.leases.v1.Leases`), then the root's /usr (Debian 12 and
# the root are merged-/usr, so every binary and library) and ld.so.cache replace the machine's
# for dockerd and what it starts. The host's sshd and sessions keep the machine's /usr.
_CONTAINERD_STORE_START = """set -e
data_root=$1 rootfs=$2
shift 2
mount --bind "$data_root" "$data_root"
mount --bind "$rootfs/usr" /usr
mount --bind "$rootfs/etc/ld.so.cache" /etc/ld.so.cache
exec "$@"
"""


def _containerd_store_argv(data_root: Path, dockerd_argv: list[str]) -> list[str]:
    """`dockerd_argv` wrapped to run the Docker of CONTAINERD_ROOTFS (made by
    tests/ensure-containerd-engine.sh, the containerd-store engine of the integration tests).
    Raises LabError when that root is not there."""
    from engines import CONTAINERD_ROOTFS  # the one place its path is written down for tests

    if not (CONTAINERD_ROOTFS / "usr/sbin/dockerd").exists():
        raise LabError(f"no containerd-store Docker under {CONTAINERD_ROOTFS}: "
                       "`make engine` (bash tests/ensure-containerd-engine.sh) debootstraps it")
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _CONTAINERD_STORE_START, "sh",
            str(data_root), str(CONTAINERD_ROOTFS), "/usr/sbin/dockerd", *dockerd_argv[1:]]


def _dockerd_major() -> int:
    """Major version of the installed dockerd ("Docker version 20.10.24+dfsg1, build ...")."""
    match = re.search(r"version (\d+)\.", run(["dockerd", "--version"]).stdout)
    return int(match.group(1)) if match else 0


def listening_on_22(pid: int) -> bool:
    """True when sshd's network namespace has a socket listening on port 22 (read through
    /proc/PID/net/tcp, which shows the namespace of PID)."""
    try:
        lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(f.split()[1].endswith(":0016") and f.split()[3] == "0A" for f in lines)


def engine_answers(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(sock))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return s.recv(64).split(b" ")[1:2] == [b"200"]
    except OSError:
        return False


def wait_ready(what: str, process: subprocess.Popen, ready, log: Path, timeout: float) -> None:
    """Poll `ready()` until true; LabError with the daemon's log when it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if process.poll() is not None:
            raise LabError(f"{what} exited with {process.returncode}; its log ({log}):\n{_tail(log)}")
        time.sleep(0.05)
    raise LabError(f"{what} not ready within {timeout:.0f}s; its log ({log}):\n{_tail(log)}")


def _tail(log: Path, lines: int = 25) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- teardown ---------------------------------------------------------------------------------

def destroy(lab: LabPlan) -> list[str]:
    """Take a lab apart, from whatever state it is in; returns what could not be undone.

    Order matters: container processes first (else dockerd waits for them on shutdown), then
    the engines (SIGTERM, so they unmount their layers), then every process left inside a host
    (sshd and its sessions, shims, delay daemons), then mounts, namespaces, links, files."""
    problems: list[str] = []
    for host in lab.hosts:
        kill(cgroup_pids(host.cgroup))
    engines = [_read_pid(host.fs / "run/docker.pid") for host in lab.hosts]
    for pid in engines:
        if pid:
            kill([pid], signal.SIGTERM)
    leftover = wait_gone([p for p in engines if p], 15)
    kill(leftover)
    namespaces = [("mnt", ns_id(h.mnt)) for h in lab.hosts] + [("net", ns_id(netns_path(h.netns))) for h in lab.hosts]
    namespaces.append(("net", ns_id(netns_path(lab.switch_ns))))
    for _ in range(3):  # a dying process can still fork once; sweep until nothing is left
        pids = pids_in_namespaces(namespaces) | set().union(*(cgroup_pids(h.cgroup) for h in lab.hosts))
        if not pids:
            break
        kill(pids)
        if still := wait_gone(pids, 5):
            problems.append(f"processes still running after SIGKILL: {still}")
    for host in lab.hosts:
        problems += remove_cgroups(host.cgroup)
    for host in reversed(lab.hosts):  # later namespaces may hold copies of earlier handles
        if host.mnt.exists() and (error := unmount(host.mnt)):
            problems.append(error)
    for netns in [h.netns for h in lab.hosts] + [lab.switch_ns]:
        if netns_path(netns).exists():
            result = run(["ip", "netns", "del", netns], check=False)
            if result.returncode != 0:
                problems.append(f"ip netns del {netns}: {result.stderr.strip()}")
    run(["ip", "link", "del", lab.root_link], check=False)  # gone with the switch, normally
    run(["ip", "route", "del", "unreachable", lab.hidden_subnet], check=False)
    if error := remove_tree(lab.path):
        problems.append(error)
    return problems


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if exe_name(pid) == "dockerd" else None


def clean_stale(base: Path) -> list[str]:
    """Remove what labs of processes that no longer run left behind: their directories (with
    lab.json) and, without one, namespaces, root links and cgroups named after a dead pid.
    Labs of live processes (parallel runs) are left alone."""
    problems: list[str] = []
    for state in sorted(base.glob("*-*/lab.json")):
        try:
            lab = LabPlan.load(state)
        except (OSError, ValueError, TypeError) as exc:
            problems.append(f"{state}: unreadable ({exc})")
            continue
        if not pid_exists(lab.pid):
            problems += destroy(lab)
    for name in run(["ip", "netns", "list"]).stdout.split():
        if (m := re.match(r"envctl-lab-(\d+)-\d+-", name)) and not pid_exists(int(m.group(1))):
            kill(pids_in_namespaces([("net", ns_id(netns_path(name)))]))
            run(["ip", "netns", "del", name], check=False)
    for name in re.findall(r"^\d+: (el\d+r\d+)[@:]", run(["ip", "-o", "link"]).stdout, re.M):
        if not pid_exists(int(re.match(r"el(\d+)r", name).group(1))):
            run(["ip", "link", "del", name], check=False)
    return problems
