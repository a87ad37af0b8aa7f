"""A lab of simulated servers for remote-host (SSH) tests: each host a real OpenSSH server with its
own address, network namespace, private /root /tmp /run, and its own Docker engine.

    lab = Lab(hosts=3, hidden=1)        # lab1..lab3 reachable; hidden1 only through lab1
    subprocess.run(lab.ssh_argv("lab2", "docker", "info"))
    lab.close()

or in tests the fixtures of tests/sshlab_fixtures.py (`lab`: shared by the session, restored
after each test). What a test gets:

- `lab.ssh_config`: an ssh_config with a Host entry per host (HostName, User root, Port 22, the
  client key, IdentitiesOnly, ProxyJump for hidden hosts, the lab's known_hosts); use it with
  `ssh -F`. Nothing of the user's ~/.ssh or agent is read through it. It sets no host-key
  policy (StrictHostKeyChecking, BatchMode): OpenSSH's defaults apply, as for a user.
- `lab.known_hosts`: every host's key, as OpenSSH records it (under the host's IP).
- `lab.client_key` (authorized on every host), `lab.wrong_key` (authorized nowhere).
- `lab.ip(h)`, `lab.docker_socket(h)` / `lab.docker_host(h)` (the host's engine, reachable from
  the test process too; Debian 12's Docker 20.10, or with `Lab(containerd_engines=[h])` the
  containerd-store Docker of tests/ensure-containerd-engine.sh), `lab.host_root(h)` (a directory to fill with simulated hardware),
  `lab.path(h, "/root/.cache")` (where a path of the host's private directories lies here).
- failures: `drop_connections`, `set_delay`/`clear_delay`, `stop`/`start`, `partition`/`heal`,
  `forget_host_key`, `change_host_key`, `ask_for_password`; `reset()` undoes them all.

Layout, addresses and teardown are described in tests/sshlab_build.py. The lab needs root and
fails with the reason (LabError) when it cannot be built; it never skips.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import sshlab_build as build
from sshlab_build import BASE_DIR, PRIVATE_DIRS, HostPlan
from sshlab_faults import Faults
from sshlab_system import (
    LabError,
    alive,
    in_host,
    make_private_mount,
    run,
)

__all__ = ["Lab", "LabError", "HostPlan"]

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,11}$")  # a switch port is named after its host (<= 15 chars)
_TEST_POLICY = ("BatchMode=yes", "StrictHostKeyChecking=yes")  # what lab.ssh() adds (the config has neither)
_TOOLS = ("ip", "tc", "nsenter", "unshare", "findmnt", "iptables", "ssh", "ssh-keygen")


class Lab(Faults):
    """A running lab; built by the constructor, taken apart by close() (or `with`)."""

    def __init__(self, hosts: int = 2, hidden: int = 0, *, jump: str = "lab1", engines: bool | Iterable[str] = True,
                 containerd_engines: Iterable[str] = (), set_docker_host: bool = True, base: Path = BASE_DIR) -> None:
        visible = [f"lab{i}" for i in range(1, hosts + 1)]
        hidden_names = [f"hidden{i}" for i in range(1, hidden + 1)]
        names = visible + hidden_names
        wanted = set(names) if engines is True else set() if engines is False else set(engines)
        _check_arguments(visible, hidden_names, jump, wanted, names)
        containerd = set(containerd_engines)  # hosts whose engine has the containerd image store
        if stray := containerd - wanted:
            raise LabError(f"containerd_engines names hosts that run no engine: {sorted(stray)}")
        _check_prerequisites(need_dockerd=bool(wanted))
        self._processes: dict[tuple[str, str], subprocess.Popen] = {}  # (host, "sshd"|"dockerd"|"delay")
        self._delays: dict[str, float] = {}
        self._partitioned: set[str] = set()
        self._stopped: set[str] = set()
        self._asking: set[str] = set()  # hosts whose sshd asks for passwords (ask_for_password)
        self._set_docker_host = set_docker_host
        self._closed = False
        started = time.monotonic()
        with build.lock(base):
            if problems := build.clean_stale(base):
                warnings.warn("SSH lab: leftovers of earlier runs not fully removed: " + "; ".join(problems), stacklevel=2)
            self._plan = build.plan_lab(base, visible, hidden_names, jump, wanted, containerd)
            self.dir = self._plan.path
            self.dir.mkdir(parents=True)
            atexit.register(self.close)  # a run that ends without teardown still cleans up
            try:
                make_private_mount(self.dir)
                self._plan.save()  # before anything else exists: what a stale clean-up reads
                build.build_switch(self._plan)
            except BaseException as exc:
                self._abort(exc)
                raise
        try:
            self._build(set_docker_host)
        except BaseException as exc:
            self._abort(exc)
            raise
        self.startup_seconds = time.monotonic() - started

    # --- building --------------------------------------------------------------------------

    def _build(self, set_docker_host: bool) -> None:
        client = self.dir / "client"
        client.mkdir()
        self.client_key = _keygen(client / "id_ed25519", "envctl-lab client")
        self.wrong_key = _keygen(client / "wrong_ed25519", "envctl-lab wrong key")
        self._impostor_key = _keygen(client / "impostor_ed25519", "envctl-lab impostor host key")
        authorized = self.client_public_key.read_text()
        for host in self._plan.hosts:
            host.ssh_dir.mkdir(parents=True)
            _keygen(host.ssh_dir / "ssh_host_ed25519_key", f"{host.name} host key")
            (host.ssh_dir / "sshd_config").write_text(build.sshd_config(host, set_docker_host))
            build.build_host_fs(host, authorized)
            build.build_host_network(self._plan, host)
        self.delay_mechanism = self._detect_delay_mechanism()
        # Start every daemon first, then wait: the engines start in parallel.
        for host in self._plan.hosts:
            self._processes[host.name, "sshd"] = build.start_sshd(host)
            if host.engine:
                self._processes[host.name, "dockerd"] = build.start_dockerd(host)
        for host in self._plan.hosts:
            self._wait_sshd(host)
            if host.engine:
                process = self._processes[host.name, "dockerd"]
                build.wait_ready(f"dockerd of {host.name}", process, lambda h=host: build.engine_answers(h.docker_socket),
                                 host.path / "dockerd.log", timeout=90)
        self.ssh_config = self.dir / "ssh_config"
        self.ssh_config.write_text(self._ssh_config_text())
        self.known_hosts = self.dir / "known_hosts"
        self._known_hosts_text = "".join(f"{h.ip} {self._key_body(h.name)}\n" for h in self._plan.hosts)
        self.restore_known_hosts()

    def _wait_sshd(self, host: HostPlan) -> None:
        process = self._processes[host.name, "sshd"]
        build.wait_ready(f"sshd of {host.name}", process, lambda: build.listening_on_22(process.pid),
                         host.path / "sshd.log", timeout=20)

    def _ssh_config_text(self) -> str:
        lines = [f"# SSH lab {self._plan.prefix}: written by tests/sshlab.py; use with ssh -F"]
        for host in self._plan.hosts:
            lines += [f"Host {host.name}", f"  HostName {host.ip}"]
            if host.hidden:
                lines.append(f"  ProxyJump {self._plan.jump}")
        lines += [
            "Host *",
            "  User root",
            "  Port 22",
            f"  IdentityFile {self.client_key}",
            "  IdentitiesOnly yes",
            "  IdentityAgent none",  # never the user's agent
            # A known_hosts of its own, as a team's shared one is often named. No host-key policy
            # (StrictHostKeyChecking, BatchMode) here: what envctl enforces must come from envctl,
            # on every hop, or the tests could not see a hop it misses. lab.ssh() gives its own.
            f"  UserKnownHostsFile {self.dir / 'known_hosts'}",
            "  GlobalKnownHostsFile /dev/null",  # never the machine's /etc/ssh/ssh_known_hosts
            "  UpdateHostKeys no",  # keep known_hosts exactly as the tests write it
            "  ConnectTimeout 10",
            # A keepalive of the config's own, as many labs' configs carry one, which envctl
            # obeys, being shorter than its own 10 s (ssh_hops.keepalive_options): a partitioned
            # host's connections end after ~9 s of silence instead of ~30 s.
            "  ServerAliveInterval 3",
            "  ServerAliveCountMax 3",
            "  ControlMaster no",
            "  ControlPath none",
        ]
        return "\n".join(lines) + "\n"

    # --- what tests read -------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return [h.name for h in self._plan.hosts]

    @property
    def hidden(self) -> list[str]:
        return [h.name for h in self._plan.hosts if h.hidden]

    @property
    def jump(self) -> str:
        return self._plan.jump

    @property
    def gateway(self) -> str:
        """The test process's own address on the lab network (what hosts see connecting)."""
        return self._plan.gateway

    @property
    def client_public_key(self) -> Path:
        return self.client_key.with_name(self.client_key.name + ".pub")

    def host(self, name: str) -> HostPlan:
        for host in self._plan.hosts:
            if host.name == name:
                return host
        raise KeyError(f"no lab host {name!r} (hosts: {', '.join(self.names)})")

    def ip(self, name: str) -> str:
        return self.host(name).ip

    def docker_socket(self, name: str) -> Path:
        """The host's engine socket; the same path works on the host and in the test process."""
        host = self.host(name)
        if not host.engine:
            raise KeyError(f"lab host {name} runs no Docker engine")
        return host.docker_socket

    def docker_host(self, name: str) -> str:
        """DOCKER_HOST for the host's engine; SSH sessions on the host have exactly this."""
        return f"unix://{self.docker_socket(name)}"

    def host_root(self, name: str) -> Path:
        """An empty directory (same path here and on the host) for simulated hardware."""
        return self.host(name).host_root

    def path(self, name: str, remote: str) -> Path:
        """Where an absolute path as seen on host `name` lies for the test process: paths below
        the host's private /root, /tmp, /var/tmp, /run map into its directory, others are shared."""
        for private in PRIVATE_DIRS:
            if remote == private or remote.startswith(private + "/"):
                return self.host(name).fs / remote.lstrip("/")
        return Path(remote)

    def host_public_key(self, name: str) -> str:
        return (self.host(name).ssh_dir / "ssh_host_ed25519_key.pub").read_text().strip()

    def fingerprint(self, name: str) -> str:
        """The host key's SHA256 fingerprint, as ssh prints it ("SHA256:...")."""
        pub = self.host(name).ssh_dir / "ssh_host_ed25519_key.pub"
        return run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub)]).stdout.split()[1]

    def _key_body(self, name: str) -> str:
        return " ".join(self.host_public_key(name).split()[:2])  # type and key, no comment

    # --- running things --------------------------------------------------------------------

    def ssh_argv(self, name: str, *command: str, options: Sequence[str] = ()) -> list[str]:
        """`ssh -F <lab config> [-o ...] -- NAME COMMAND...` (the command is joined by the
        remote shell, as with any ssh). `options` are "Key=value" strings; after them come
        BatchMode=yes and StrictHostKeyChecking=yes (the first value given wins): a test never
        waits at a prompt. They hold for NAME only, not for the jump host of a hidden host."""
        opts = [arg for option in (*options, *_TEST_POLICY) for arg in ("-o", option)]
        return ["ssh", "-F", str(self.ssh_config), *opts, "--", name, *command]

    def ssh(self, name: str, *command: str, options: Sequence[str] = (), timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.ssh_argv(name, *command, options=options), capture_output=True, text=True,
                              timeout=timeout, input=input, stdin=None if input is not None else subprocess.DEVNULL)

    def run_in(self, name: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a command on the host directly (its namespaces, no SSH): to prepare or inspect."""
        host = self.host(name)
        return run(in_host(argv, netns=host.netns, mnt=host.mnt), check=False, timeout=timeout)

    def docker(self, name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """The docker CLI of this machine against the host's engine."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = self.docker_host(name)
        return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)

    def write_client_home(self, home: Path) -> Path:
        """home/.ssh/config holding the lab's Host entries, for code that reads ~/.ssh/config
        (point HOME at `home`). The known_hosts it names stays the lab's. Returns the config."""
        (home / ".ssh").mkdir(parents=True, exist_ok=True, mode=0o700)
        config = home / ".ssh/config"
        shutil.copyfile(self.ssh_config, config)
        return config

    # --- host keys -------------------------------------------------------------------------

    def restore_known_hosts(self) -> None:
        self.known_hosts.write_text(self._known_hosts_text)

    def forget_host_key(self, name: str) -> None:
        """Remove the host's key from known_hosts: its key is then unknown."""
        run(["ssh-keygen", "-R", self.ip(name), "-f", str(self.known_hosts)])
        Path(f"{self.known_hosts}.old").unlink(missing_ok=True)

    def change_host_key(self, name: str) -> None:
        """Replace the host's key in known_hosts by another one: the host then presents a
        changed key ("REMOTE HOST IDENTIFICATION HAS CHANGED")."""
        self.forget_host_key(name)
        impostor = " ".join(Path(f"{self._impostor_key}.pub").read_text().split()[:2])
        with open(self.known_hosts, "a") as f:
            f.write(f"{self.ip(name)} {impostor}\n")

    # --- teardown --------------------------------------------------------------------------

    def close(self) -> None:
        """Take the lab apart (idempotent). LabError lists what could not be removed."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        problems = build.destroy(self._plan) if hasattr(self, "_plan") else []
        for process in self._processes.values():
            if alive(process.pid):
                process.kill()
            process.wait(5)  # reap: no zombies left in the test process
        self._processes.clear()
        if problems:
            raise LabError("SSH lab teardown incomplete: " + "; ".join(problems))

    def _abort(self, exc: BaseException) -> None:
        """Teardown after a failed start; a teardown problem is added to the start error
        rather than hiding it."""
        try:
            self.close()
        except LabError as teardown:
            if hasattr(exc, "add_note"):  # Python 3.11+
                exc.add_note(str(teardown))

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _keygen(path: Path, comment: str) -> Path:
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return path


def _check_arguments(visible: list[str], hidden: list[str], jump: str, engines: set[str], names: list[str]) -> None:
    if not visible:
        raise LabError("a lab needs at least one reachable host")
    if hidden and jump not in visible:
        raise LabError(f"jump host {jump!r} is not one of the reachable hosts {visible}")
    if unknown := engines - set(names):
        raise LabError(f"engines for unknown hosts: {sorted(unknown)}")
    for name in names:
        if not _NAME.match(name):
            raise LabError(f"host name {name!r}: lower-case letters, digits and '-', at most 12 characters")


def _check_prerequisites(need_dockerd: bool) -> None:
    """Everything the lab needs, all reported at once: the lab must fail with the reason."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not root: network and mount namespaces, veth pairs and engines need root")
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if not os.access(build.SSHD, os.X_OK):
        missing.append(build.SSHD)
    if need_dockerd and shutil.which("dockerd") is None:
        missing.append("dockerd")
    if missing:
        problems.append(f"missing {', '.join(missing)} (`make engine` runs tests/ensure-ssh.sh, which installs them)")
    if not Path("/proc/self/ns/net").exists():
        problems.append("this kernel has no network namespaces")
    if problems:
        raise LabError("the SSH lab cannot be built: " + "; ".join(problems))
