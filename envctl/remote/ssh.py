"""One SSH connection to a lab server, through the system's OpenSSH client.

Why OpenSSH rather than a Python SSH library: it reads the user's ~/.ssh/config exactly as
`ssh` does (Match, Include, ProxyJump chains through bastions, certificates, agents, GSSAPI),
and its transfers are the speed our users compare us with (`scp`). One master connection per
host (ControlMaster) carries every command, transfer and the forwarded Docker socket, so each
further call costs one round trip and no handshake.

Security: host keys are always checked (StrictHostKeyChecking=yes, whatever the config says),
on every hop: through bastions, envctl builds the ProxyJump chain itself (remote/ssh_hops.py) so
that each jump host is held to the same policy. An unknown key, of the host or of a bastion on
the way, stops with its fingerprint and `--accept-host-key FINGERPRINT` adds exactly that key;
a changed key always stops. Never a prompt (BatchMode) on any hop. Commands are argument lists,
quoted one by one for the remote shell (ssh hands the server one command line).
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from envctl import interrupts
from envctl.errors import EXIT_REMOTE_FAILED, EnvctlError
from envctl.hosts.base import CommandResult
from envctl.regular_file import read_regular_text
from envctl.remote import command_log
from envctl.remote.live_master import answers, control_name, forward_name
from envctl.remote.ssh_hops import POLICY, Hop, describe, envctl_known_hosts, hop_refusing_login, refusing_hop, resolve_route

FAR_HOST_SECONDS = 0.02  # a command's round trip beyond which a host counts as far (not on the LAN)
AES_GCM = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
SSH_FAILED = 255  # ssh's own exit code when the connection (not the command) failed


class RemoteError(EnvctlError):
    """A remote host could not be reached or refused us; the message says why."""

    exit_code = EXIT_REMOTE_FAILED


@dataclass(frozen=True)
class SSHSettings:
    """How envctl calls ssh: which config file, which host key the user accepted."""

    config: str | None = None  # --ssh-config / ENVCTL_SSH_CONFIG; None: OpenSSH's own default
    accept_host_key: str | None = None  # "SHA256:..." from --accept-host-key
    control_dir: str | None = None  # where master sockets live; default below
    extra: tuple[str, ...] = field(default_factory=tuple)  # more -o options (tests, benchmarks)
    known_hosts: str | None = None  # envctl's own known_hosts (hops whose config says /dev/null)

    @classmethod
    def from_environ(cls, config: str | None = None, accept_host_key: str | None = None,
                     environ: Mapping[str, str] | None = None) -> "SSHSettings":
        environ = os.environ if environ is None else environ
        return cls(config or environ.get("ENVCTL_SSH_CONFIG") or None, accept_host_key,
                   environ.get("ENVCTL_SSH_CONTROL_DIR") or None, known_hosts=envctl_known_hosts(environ))


def _control_dir(settings: SSHSettings) -> str:
    # Unix socket paths are limited to ~100 bytes, so a short private directory, and %C (a
    # hash of the connection) as the file name.
    directory = settings.control_dir or os.path.join(tempfile.gettempdir(), f"envctl-ssh-{os.getuid()}")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    return directory


class SSHConnection:
    def __init__(self, destination: str, settings: SSHSettings | None = None):
        self.destination = destination
        self.settings = settings or SSHSettings()
        # One master per destination and config: two aliases of one server (with their own
        # known_hosts or keys) never borrow each other's connection, nor does a command after
        # the config was edited (live_master.control_name). Masters outlive envctl by
        # ControlPersist, so `up` then `exec` costs one handshake, not two.
        self.control_path = os.path.join(_control_dir(self.settings), control_name(destination, self.settings.config))
        self._route: Hop | None = None
        # Counts the commands started here that may change the host (every one but those run
        # with reads_only): what was read from the host stays true while it has not moved.
        self.generation = 0

    def route(self) -> Hop:
        """The destination and the jump hosts before it, as the ssh config says (read once).
        Raises RouteError (a RemoteError's sibling) when ssh cannot read the config."""
        if self._route is None:
            self._route = resolve_route(self.destination, self.settings.config, self.settings.extra,
                                        self.settings.known_hosts)
        return self._route

    # -- the ssh command line -------------------------------------------------------------
    def base(self, *more: str, master: bool = True, first: Sequence[str] = (), kind: str | None = None) -> list[str]:
        """`first`: -o options that must win over ours (for ssh, the first value given wins).
        `kind`: the trace's word for the process (default: what `trace` says for it)."""
        argv = ["ssh"]
        if self.settings.config:
            argv += ["-F", self.settings.config]
        for option in first:
            argv += ["-o", option]
        for option in POLICY:  # keys checked, never a prompt (it would hang a parallel run)
            argv += ["-o", option]
        # The hops before the destination, each held to POLICY (a ProxyJump of the config would
        # start them without it), and the known_hosts envctl checks against where the config
        # names only /dev/null.
        route = self.route()
        argv += (route.keepalive_options() + route.timeout_options() + route.known_hosts_options()
                 + route.route_options())
        if master:
            argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={self.control_path}",
                     "-o", "ControlPersist=120"]
        else:
            argv += ["-o", "ControlPath=none"]
        # AES-GCM first among the ciphers the config allows (ssh -G's list; none added or
        # removed): with the CPU's AES instructions it costs about half of ChaCha20, OpenSSH's
        # first choice, and a LAN transfer is CPU-bound. The server still picks from the list.
        if ciphers := gcm_first(route.settings.get("ciphers")):
            argv += ["-o", f"Ciphers={ciphers}"]
        for option in self.settings.extra:
            argv += ["-o", option]
        trace(kind or ("mux" if "-O" in more else "session" if master else "connection"), self.destination, more)
        return argv + list(more)

    def command(self, argv: Sequence[str], tty: bool = False, reads_only: bool = False) -> list[str]:
        """The local argv that runs `argv` on the remote host. `reads_only`: the command
        changes nothing there (what was read before it still holds; see `generation`)."""
        interrupts.check()  # nothing new after Ctrl-C, on any thread (a push's retry, the next step)
        if not reads_only:
            self.generation += 1
        local = self.base("-t" if tty else "-T", self.destination, "--", shlex.join(argv))
        command_log.built(local, reads_only)
        return local

    def bulk_command(self, argv: Sequence[str]) -> list[str]:
        """Like `command`, for a large transfer on an SSH connection of its own (its own TCP
        connection, window and ssh process; see remote/segments.py), uncompressed."""
        interrupts.check()
        self.generation += 1
        local = self.base("-T", "-o", "Compression=no", self.destination, "--", shlex.join(argv), master=False)
        command_log.built(local, False)
        return local

    # -- running --------------------------------------------------------------------------
    def connect(self, first: Sequence[str] = ("true",), reads_only: bool = False) -> str:
        """Open (or reuse) the master connection, running `first` on the way (one round trip
        for both); explain host key and login failures. Returns what `first` printed."""
        result = self._raw(first, timeout=60, reads_only=reads_only)
        if result.returncode == 0:
            return result.stdout
        result = self._with_hop_messages(result)
        if result.returncode == SSH_FAILED and _unknown_key(result.stderr) and self.settings.accept_host_key:
            self._accept_key(self.settings.accept_host_key, result.stderr)
            result = self._raw(first, timeout=60, reads_only=reads_only)
            if result.returncode == 0:
                return result.stdout
            result = self._with_hop_messages(result)
        raise self.explain(result)

    def remembered(self, any_master: bool = False) -> str | None:
        """What `remember` kept while the master connection alive now was up, else None: facts
        about the host read over that very connection (its account's home, its engine), so a
        command that finds the master up asks them again in no round trip. The master's socket
        is made when it starts, so a note older than the socket is another master's.
        `any_master`: the note whatever master it was kept under (hints, not facts)."""
        if not any_master:
            try:
                master = os.stat(self.control_path)
                note = os.stat(self._note_path)
            except OSError:
                return None
            if note.st_mtime_ns < master.st_mtime_ns or not answers(self.control_path):
                return None
        try:
            return read_regular_text(self._note_path)
        except (OSError, ValueError):  # ValueError: not UTF-8
            return None

    def remember(self, text: str) -> None:
        """Keep `text` beside the master connection (in envctl's private control directory),
        for `remembered`. Written whole or not at all: a concurrent envctl reads either."""
        temporary = f"{self._note_path}.{os.getpid()}.tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(temporary, self._note_path)
        except OSError:
            pass  # only a round trip saved next time

    @property
    def _note_path(self) -> str:
        return self.control_path + ".facts"

    def _with_hop_messages(self, result: CommandResult) -> CommandResult:
        """`result` of a failed connection, with what the jump hosts said. A master with
        ControlPersist sends its ProxyCommand's stderr to /dev/null (sshconnect.c
        ssh_proxy_connect, "error messages may be printed on the user's terminal"), so a hop's
        own message is lost; one attempt without the master shows it."""
        if result.returncode != SSH_FAILED or self.route().via is None:
            return result
        argv = self.base("-T", self.destination, "--", "true", master=False)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return result
        return CommandResult(result.returncode, result.stdout, done.stderr + result.stderr)

    def run(self, argv: Sequence[str], timeout: float | None = 300, input: bytes | None = None,
            reads_only: bool = False) -> CommandResult:
        """Run a command remotely. A failed connection is raised as RemoteError; the
        command's own exit code is returned. `reads_only`: as for `command`."""
        result = self._raw(argv, timeout, input, reads_only)
        if result.returncode == SSH_FAILED and _connection_failed(result.stderr):
            raise self.explain(self._with_hop_messages(result))
        return result

    def check(self, argv: Sequence[str], what: str, timeout: float | None = 300, input: bytes | None = None) -> str:
        result = self.run(argv, timeout, input)
        if result.returncode != 0:
            detail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-3:]
            raise RemoteError(f"{self.destination}: {what} failed (exit {result.returncode})" +
                              ("".join(f"\n  {line}" for line in detail)))
        return result.stdout

    def _raw(self, argv: Sequence[str], timeout: float | None, input: bytes | None = None,
             reads_only: bool = False) -> CommandResult:
        local = self.command(argv, reads_only=reads_only)
        try:
            done = subprocess.run(local, input=input if input is not None else b"", capture_output=True,
                                  timeout=timeout, check=False)
        except FileNotFoundError:
            raise RemoteError("the OpenSSH client (ssh) is not installed here",
                              hint="install it: sudo apt-get install openssh-client") from None
        except subprocess.TimeoutExpired:
            return CommandResult(124, "", f"no answer from {self.destination} within {timeout:.0f}s")
        command_log.answered(local, input, done.returncode, done.stdout, done.stderr)
        return CommandResult(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))

    def forward_socket(self, remote_socket: str) -> str:
        """Forward a local unix socket to a remote one (the Docker engine's) over the master;
        returns the local path."""
        local = os.path.join(_control_dir(self.settings), forward_name(self.destination, self.settings.config, remote_socket))
        if answers(local):
            return local  # forwarded by the live master (an earlier or concurrent envctl): shared
        if os.path.exists(local):
            self._forward("cancel", local, remote_socket)  # a stale socket from an earlier master
            try:
                os.unlink(local)
            except FileNotFoundError:
                pass
        result = self._forward("forward", local, remote_socket)
        if result.returncode != 0:  # no master (it ended since): open one and try again
            self.connect()
            result = self._forward("forward", local, remote_socket)
        if result.returncode != 0:
            raise RemoteError(f"{self.destination}: cannot forward the Docker socket {remote_socket}: "
                              f"{result.stderr.strip() or 'no reason given'}",
                              hint="AllowStreamLocalForwarding must not be disabled in the server's sshd_config")
        return local

    def _forward(self, operation: str, local: str, remote: str):
        argv = self.base("-O", operation, "-o", "StreamLocalBindUnlink=yes", "-L", f"{local}:{remote}", self.destination)
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)

    def close(self) -> None:
        """End the master connection (and its forwards)."""
        subprocess.run(self.base("-O", "exit", self.destination), capture_output=True, timeout=30, check=False)

    # -- failures ---------------------------------------------------------------------------
    def explain(self, result: CommandResult) -> RemoteError:
        """A failed connection in envctl's words, naming the hop that failed (the host or a
        jump host on the way to it)."""
        text = result.stderr
        who = self.destination
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "has changed and you have requested" in text:
            route = self.route()
            hop = refusing_hop(route, text) or route
            offered = _fingerprint_in(text)
            return RemoteError(
                f"{who}: the host key of {describe(hop, route)} has CHANGED since it was recorded in known_hosts"
                + (f" (now {offered})" if offered else "")
                + ". This can mean someone is intercepting the connection; envctl does not connect.",
                hint="if the server was reinstalled, check the new key with its administrator, then remove the old "
                     f"one: ssh-keygen -R {shlex.quote(hop.key_name)} -f {shlex.quote(hop.known_hosts[0])}")
        if _unknown_key(text):
            route = self.route()
            hop = refusing_hop(route, text) or route
            about = describe(hop, route)
            fingerprint = self._offered_fingerprint(hop)
            kept = (f"; its config keeps keys in /dev/null, so envctl records it in {hop.known_hosts[0]}"
                    if hop.replaced_known_hosts else "")
            if fingerprint:
                return RemoteError(
                    f"{who}: the host key of {about} is not known (offered: {fingerprint})",
                    hint=f"check the fingerprint with the server's administrator, then run again with "
                         f"--accept-host-key {fingerprint}{kept}")
            return RemoteError(f"{who}: the host key of {about} is not known",
                               hint=f"connect once with `ssh {hop.name}` and check the key it shows")
        if "Permission denied" in text:
            route = self.route()
            hop = hop_refusing_login(route, text) or route
            line = _line_with(text, "Permission denied")
            if hop is not route:
                return RemoteError(
                    f"{who}: {describe(hop, route)} refused our key ({line})",
                    hint="envctl never answers a password or other prompt on any hop (BatchMode): the jump host must "
                         f"accept a key; check IdentityFile / ssh-agent for it (`ssh -G {hop.name}`)")
            return RemoteError(f"{who}: the server refused our key ({line})",
                               hint="check IdentityFile / ssh-agent for this host in your ssh config (`ssh -G "
                                    f"{who}` shows what ssh uses); envctl never answers a password prompt")
        if "Could not resolve hostname" in text:
            return RemoteError(f"{who}: {_line_with(text, 'Could not resolve hostname')}",
                               hint="is the name in your ssh config or inventory?")
        if result.returncode == 124:
            return RemoteError(f"{who}: {text.strip()}")
        return RemoteError(f"{who}: cannot connect ({_last_line(text) or f'ssh exit {result.returncode}'})")

    def _offered_fingerprint(self, hop: Hop) -> str | None:
        """The fingerprint of the key `hop` offers (the hops before it already trusted)."""
        try:
            return self._offered_key(hop)[0]
        except RemoteError:
            return None

    def _offered_key(self, hop: Hop) -> tuple[str | None, str]:
        """(fingerprint, known_hosts lines) of the key `hop` offers: one connection to it with
        a throwaway known_hosts that takes whatever key is offered (written right after the key
        exchange, whether or not we may log in); the hops before it are still checked."""
        with tempfile.TemporaryDirectory(prefix="envctl-hostkey-") as scratch:
            scratch_file = os.path.join(scratch, "known_hosts")
            # Recorded as ssh itself would record it: hashed where the hop's config says
            # HashKnownHosts yes (Debian's and Ubuntu's /etc/ssh/ssh_config do, for every host).
            hashed = "yes" if hop.settings.get("hashknownhosts", "no").lower() == "yes" else "no"
            first = (f"UserKnownHostsFile={scratch_file}", "StrictHostKeyChecking=accept-new", f"HashKnownHosts={hashed}")
            if hop is self.route():
                argv = self.base("-T", self.destination, "--", "true", master=False, first=first)
            else:
                argv = (["ssh", *(["-F", hop.config] if hop.config else [])]
                        + [arg for option in first for arg in ("-o", option)]
                        + hop.jump_options() + ["-T", "--", hop.name, "true"])
            try:
                subprocess.run(argv, capture_output=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                pass
            if not os.path.exists(scratch_file):
                raise RemoteError(f"{self.destination}: could not read the host key of {describe(hop, self.route())}")
            lines = Path(scratch_file).read_text(encoding="utf-8")
            listed = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", scratch_file], capture_output=True,
                                    text=True, check=False).stdout
            return _fingerprint_in(listed), lines

    def _accept_key(self, fingerprint: str, refused: str) -> None:
        """Record the key of the hop that was refused (from ssh's messages in `refused`) in
        its known_hosts, but only if it is the one the user checked."""
        route = self.route()
        hop = refusing_hop(route, refused) or route
        offered, lines = self._offered_key(hop)
        if offered != fingerprint:
            raise RemoteError(f"{self.destination}: {describe(hop, route)} offers host key {offered}, not the "
                              f"{fingerprint} you accepted; nothing was recorded")
        known = Path(hop.known_hosts[0])
        known.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(known, "a", encoding="utf-8") as out:
            out.write(lines)

    def resolved(self) -> dict[str, str]:
        """This destination's settings as OpenSSH resolves them (hostname, user, port, ...)."""
        return dict(self.route().settings)


def trace(kind: str, destination: str, what: Sequence[str]) -> None:
    """With ENVCTL_SSH_TRACE=FILE, append `KIND DESTINATION @UNIXTIME WHAT` to FILE, one line per ssh
    process envctl starts (kind "session": a command on the master, one channel there and
    back, also a command given to a session opened ahead of it, whose WHAT then starts with
    "opened-ahead:"; "standby": such a session opened, its channel's round trip waited for by
    nobody, envctl/remote/standby.py;
    "connection": a connection of its own, with its handshake; "mux": a request to the local
    master only, no round trip) and per engine request through a forwarded socket (kind
    "api", envctl/hosts/ssh.py). A debugging and benchmark aid: bench/bench_remote.py counts a
    command's round trips with it."""
    path = os.environ.get("ENVCTL_SSH_TRACE")
    if path:
        from envctl.remote.trace_file import append

        append(path, kind, destination, what)


def gcm_first(ciphers: str | None) -> str | None:
    """`ciphers` (a comma-separated list, as `ssh -G` prints the config's) with the AES-GCM
    ciphers it holds moved to the front, the others in their order. None when nothing would
    change: the list holds no AES-GCM cipher or starts with them already, or this CPU has no
    AES instructions (there ChaCha20, OpenSSH's own first choice, is the faster one)."""
    names = [name for name in (ciphers or "").split(",") if name]
    preferred = [name for name in AES_GCM if name in names]
    ordered = preferred + [name for name in names if name not in preferred]
    if not preferred or ordered == names or not _aes_instructions():
        return None
    return ",".join(ordered)


@functools.lru_cache(maxsize=1)
def _aes_instructions() -> bool:
    """Whether this CPU encrypts AES in hardware (x86 AES-NI, ARMv8's crypto extension: both
    list `aes` among their flags in /proc/cpuinfo). True where there is no /proc/cpuinfo
    (macOS: every Mac since 2010 has AES instructions)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            text = info.read()
    except OSError:
        return True
    return any(line.split(":", 1)[0].strip().lower() in ("flags", "features") and "aes" in line.split(":", 1)[1].split()
               for line in text.splitlines() if ":" in line)


_FINGERPRINT = re.compile(r"(SHA256:[A-Za-z0-9+/=]+)")


def _fingerprint_in(text: str) -> str | None:
    found = None
    for line in text.splitlines():
        # "debug1: Server host key: ssh-ed25519 SHA256:..." — with ProxyJump the jump host's key
        # comes first; the refused one is the last before the failure.
        if "Server host key:" in line or "key sent by the remote host" in line or line.startswith("SHA256:") \
                or re.match(r"^\d+ SHA256:", line):
            match = _FINGERPRINT.search(line)
            if match:
                found = match.group(1)
    if found is None:
        for match in _FINGERPRINT.finditer(text):
            found = match.group(1)
    return found


def _unknown_key(text: str) -> bool:
    return "host key is known for" in text or "Host key verification failed" in text and "CHANGED" not in text


def _connection_failed(text: str) -> bool:
    markers = ("Host key verification failed", "Permission denied", "Could not resolve hostname", "Connection refused",
               "Connection timed out", "No route to host", "Connection closed by", "kex_exchange_identification",
               "connect to host", "REMOTE HOST IDENTIFICATION HAS CHANGED", "Network is unreachable",
               "Connection reset", "Broken pipe", "port forwarding failed", "ProxyJump")
    return any(marker in text for marker in markers)


def _line_with(text: str, marker: str) -> str:
    return next((line.strip() for line in text.splitlines() if marker in line), _last_line(text))


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("debug")]
    return lines[-1] if lines else ""
