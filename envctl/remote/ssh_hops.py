"""The way to a host through its bastions, with envctl's host-key policy held on every hop.

Why: with ProxyJump, OpenSSH starts the jump connection as a new `ssh` process built from the
jump spec alone — `ssh [-l USER] [-p PORT] [-J EARLIER,HOPS] [-F CONFIG] [-v] -W '[%h]:%p'
JUMPHOST` (openssh-portable ssh.c, "If ProxyJump option specified, then construct a
ProxyCommand now"; the same since ProxyJump came in 7.3). Our `-o StrictHostKeyChecking=yes
-o BatchMode=yes` never reach it: a bastion whose config entry says `StrictHostKeyChecking no`
or `UserKnownHostsFile /dev/null` would be trusted blindly, and one that asks for a password
would wait for an answer a parallel run never gives.

So envctl reads the chain itself with `ssh -G` (OpenSSH's own resolution of Host, Match and
Include; `ssh -G` exists since 6.8) and hands ssh a ProxyCommand of its own per hop, each an
`ssh -W` to the next host with the same policy (POLICY below), nested as deep as the chain.
The chain is read as OpenSSH reads it (readconf.c parse_jump): `ProxyJump a,b` reaches b
through a, and b's own ProxyJump is then ignored; the first hop, a, follows its own config;
`ProxyJump none` means a direct connection. A ProxyCommand the user wrote is left as written:
envctl checks the key of the host at its end, but cannot check hosts that command connects
through (README, "Remote hosts").

Known hosts: each hop is checked against the UserKnownHostsFile its config names. Where that
is only /dev/null (keys never kept, so nothing could be checked), envctl checks the hop
against its own file instead, ~/.config/envctl/known_hosts (`envctl_known_hosts`).
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import subprocess
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

from envctl.errors import EXIT_REMOTE_FAILED, EnvctlError

# Held on every hop: keys checked against known_hosts whatever the config says, and never a
# prompt (password, keyboard-interactive, passphrase, "continue connecting?"): a prompt would
# hang a run on many hosts, so a hop that wants one fails at once instead.
POLICY = ("BatchMode=yes", "StrictHostKeyChecking=yes", "ConnectTimeout=20")
MAX_HOPS = 16  # a longer chain is taken for a loop in the config
DEFAULT_PORT = 22


class RouteError(EnvctlError):
    """The way to a host cannot be worked out (a config ssh refuses, a ProxyJump loop)."""

    exit_code = EXIT_REMOTE_FAILED


@dataclass(frozen=True)
class JumpSpec:
    """One element of a ProxyJump list: `[user@]host[:port]`, `[user@][v6addr]:port` or
    `ssh://[user@]host[:port]` (ssh_config(5), ProxyJump)."""

    host: str
    user: str | None = None
    port: int | None = None


def parse_jump(spec: str) -> JumpSpec:
    """One ProxyJump element, as OpenSSH's parse_ssh_uri / parse_user_host_port read it.
    Raises RouteError for a port that is not a number."""
    text = spec.strip()
    if text.lower().startswith("ssh://"):
        text = text[len("ssh://"):].rstrip("/")
    user, at, hostport = text.rpartition("@")  # OpenSSH splits at the last '@'
    user = user.split(";", 1)[0] if at else None  # ssh:// URIs may carry ";params" after the user
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = hostport.partition(":")
    if port_text and not port_text.isdigit():
        raise RouteError(f"ProxyJump {spec!r}: the port {port_text!r} is not a number")
    return JumpSpec(host, user or None, int(port_text) if port_text else None)


def parse_jump_list(value: str | None) -> list[JumpSpec]:
    """`ssh -G`'s `proxyjump` value (comma-separated, first hop first); [] for none."""
    if not value or value.strip().lower() == "none":
        return []
    return [parse_jump(part) for part in value.split(",") if part.strip()]


@dataclass(frozen=True)
class Hop:
    """One host on the way, the destination included (the last hop).

    `name` is the name ssh is given (an alias of the config, or a host), `user`/`port` come
    from a jump spec (ssh's -l/-p), `settings` is `ssh -G` of it (lower-case keys), `via`
    the hop before it (None: a direct connection or the user's own ProxyCommand),
    `known_hosts` the files its key is checked against and `replaced_known_hosts` whether
    envctl chose them (the config named only /dev/null)."""

    name: str
    user: str | None
    port: int | None
    settings: Mapping[str, str]
    via: "Hop | None"
    known_hosts: tuple[str, ...]
    replaced_known_hosts: bool

    @property
    def hostname(self) -> str:
        return self.settings.get("hostname", self.name)

    @property
    def real_port(self) -> int:
        port = self.settings.get("port", "")
        return int(port) if port.isdigit() else DEFAULT_PORT

    @property
    def own_proxy_command(self) -> str | None:
        """The ProxyCommand of the user's config (run as written), or None."""
        command = self.settings.get("proxycommand")
        return None if self.via is not None or not command or command.lower() == "none" else command

    @property
    def key_name(self) -> str:
        """The name its key has in known_hosts (sshconnect.c get_hostfile_hostname_ipaddr)."""
        alias = self.settings.get("hostkeyalias")
        if alias and alias.lower() != "none":
            return alias
        return self.hostname if self.real_port == DEFAULT_PORT else f"[{self.hostname}]:{self.real_port}"

    def chain(self) -> Iterator["Hop"]:
        """This hop and those before it, nearest first."""
        hop: Hop | None = self
        while hop is not None:
            yield hop
            hop = hop.via

    def known_hosts_options(self) -> list[str]:
        if not self.replaced_known_hosts:
            return []
        return ["-o", "UserKnownHostsFile=" + " ".join(_config_word(path) for path in self.known_hosts)]

    def jump_options(self, config: str | None) -> list[str]:
        """ssh arguments (before the destination) for a connection to this hop as a jump host."""
        argv = [arg for option in POLICY for arg in ("-o", option)]
        # Never through a master the user's own ssh opened (it may have been opened without
        # checking the key): each hop is a connection of its own, checked by these options.
        argv += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        argv += self.known_hosts_options() + self.route_options(config)
        if self.user:
            argv += ["-l", self.user]
        if self.port:
            argv += ["-p", str(self.port)]
        return argv

    def route_options(self, config: str | None) -> list[str]:
        """The ProxyCommand that reaches this hop through the hops before it (none if direct)."""
        return ["-o", "ProxyCommand=" + proxy_command(self.via, config)] if self.via is not None else []


def proxy_command(jump: Hop, config: str | None) -> str:
    """A ProxyCommand value that opens `jump` with POLICY and forwards stdin/stdout to the
    host being connected to (`-W '[%h]:%p'`, as OpenSSH's own ProxyJump does). ssh expands
    %-tokens in it and runs it with `$SHELL -c "exec ..."` (sshconnect.c ssh_proxy_connect):
    so every argument is shell-quoted and every literal % doubled, nested hops included.
    `-W '[host]:port'` is read by parse_forward/hpdelim (misc.c), brackets included, in every
    OpenSSH that has ProxyJump (7.3 on; CentOS 7 ships 7.4, Debian 12 9.2)."""
    argv = ["ssh", *(["-F", config] if config else []), *jump.jump_options(config)]
    return _percent(shlex.join(argv)) + " -W '[%h]:%p' -- " + _percent(shlex.quote(jump.name))


def resolve_route(destination: str, config: str | None, extra: Sequence[str] = (),
                  own_known_hosts: str | None = None) -> Hop:
    """The destination as a Hop, with every hop before it (`.via`), read with `ssh -G`.
    `extra`: -o options given for the destination only. Raises RouteError when ssh refuses
    the config (its own message, with file and line) or the chain loops."""
    own = own_known_hosts or envctl_known_hosts()
    return _resolve(destination, None, None, config, list(extra), None, own, ())


def _resolve(name: str, user: str | None, port: int | None, config: str | None, extra: list[str],
             forced: list[JumpSpec] | None, own_known_hosts: str, seen: tuple[str, ...]) -> Hop:
    label = (f"{user}@" if user else "") + name + (f":{port}" if port else "")
    if label in seen or len(seen) >= MAX_HOPS:
        raise RouteError("the ProxyJump chain of your ssh config loops: " + " -> ".join((*seen, label)),
                         hint="`ssh -G HOST | grep proxyjump` shows each host's next hop")
    settings = ssh_settings(name, config, extra, user, port)
    # From a chain (`ProxyJump a,b`), OpenSSH starts the hop b with `-J a`, which wins over
    # b's own ProxyJump; the first hop of a chain follows its own config.
    jumps = forced if forced is not None else parse_jump_list(settings.get("proxyjump"))
    via = None
    if jumps:
        last = jumps[-1]
        via = _resolve(last.host, last.user, last.port, config, [], jumps[:-1] or None, own_known_hosts,
                       (*seen, label))
    listed = tuple(_expand_path(path) for path in settings.get("userknownhostsfile", "~/.ssh/known_hosts").split())
    kept = tuple(path for path in listed if path != os.devnull)
    return Hop(name, user, port, settings, via, kept or (own_known_hosts,), kept != listed)


def ssh_settings(name: str, config: str | None = None, extra: Sequence[str] = (), user: str | None = None,
                 port: int | None = None) -> dict[str, str]:
    """`ssh -G` of a host: OpenSSH's settings for it after Host, Match and Include (lower-case
    keys; the first value of a repeated key)."""
    argv = ["ssh", *(["-F", config] if config else [])]
    argv += [arg for option in extra for arg in ("-o", option)]
    argv += (["-l", user] if user else []) + (["-p", str(port)] if port else []) + ["-G", "--", name]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise RouteError("the OpenSSH client (ssh) is not installed here",
                         hint="install it: sudo apt-get install openssh-client") from None
    if done.returncode != 0:
        reason = [line for line in done.stderr.splitlines() if line.strip()]
        raise RouteError(f"{name}: ssh cannot read its settings: " + ("; ".join(reason[-3:]) or f"ssh -G exit {done.returncode}"),
                         hint=f"`ssh {' '.join(shlex.quote(a) for a in argv[1:])}` shows the same")
    settings: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key.lower(), value)
    return settings


def envctl_known_hosts(environ: Mapping[str, str] | None = None) -> str:
    """envctl's own known_hosts, used for hops whose config keeps keys only in /dev/null:
    $XDG_CONFIG_HOME/envctl/known_hosts, else ~/.config/envctl/known_hosts."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(environ.get("HOME") or _login_home(), ".config")
    return os.path.join(base, "envctl", "known_hosts")


def refusing_hop(route: Hop, text: str) -> Hop | None:
    """The hop whose host key OpenSSH refused, from its messages ("No ED25519 host key is
    known for NAME and ..." / "Host key for NAME has changed and ...", sshconnect.c)."""
    names = re.findall(r"host key is known for (\S+) and", text) + re.findall(r"Host key for (\S+) has changed", text)
    return _hop_named(route, names)


def hop_refusing_login(route: Hop, text: str) -> Hop | None:
    """The hop that refused to log us in ("USER@HOST: Permission denied (METHODS).")."""
    return _hop_named(route, [host for _, host in re.findall(r"(\S+)@(\S+): Permission denied", text)])


def _hop_named(route: Hop, names: Sequence[str]) -> Hop | None:
    for name in names:
        for hop in route.chain():
            if name in (hop.key_name, hop.hostname, hop.name):
                return hop
    return None


def describe(hop: Hop, route: Hop) -> str:
    """How messages name a hop: "lab2 (10.0.0.2)" or "jump host lab1 (10.0.0.1) on the way to lab9"."""
    where = hop.hostname if hop.real_port == DEFAULT_PORT else f"{hop.hostname}:{hop.real_port}"
    named = hop.name if where == hop.name else f"{hop.name} ({where})"
    return named if hop is route else f"jump host {named} on the way to {route.name}"


def _percent(text: str) -> str:
    return text.replace("%", "%%")


def _config_word(path: str) -> str:
    # ssh_config splits UserKnownHostsFile at spaces; a path with spaces is written in quotes
    # (understood by OpenSSH 8.x and later), and its % (a token there since 8.4) doubled.
    path = path.replace("%", "%%")
    return f'"{path}"' if any(c.isspace() for c in path) else path


def _login_home() -> str:
    return pwd.getpwuid(os.getuid()).pw_dir


def _expand_path(path: str) -> str:
    """~ and %d as ssh expands them in a known_hosts path (from the account's home, not $HOME):
    `ssh -G` of 9.x prints them expanded already, older versions as written."""
    home = _login_home()
    if path == "~" or path.startswith("~/"):
        path = home + path[1:]
    return path.replace("%d", home)
