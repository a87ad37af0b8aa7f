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
`ProxyJump none` means a direct connection. A ProxyCommand of the old bastion form,
`ssh [options] -W %h:%p BASTION` (the way to a bastion before ProxyJump, still the first one
many lab guides show), is read as a jump through BASTION with its options kept (-i, -l, -p, -F,
-o, -J), so the bastion is held to the policy too; any other ProxyCommand the user wrote (nc, a
cloud CLI, `ssh bastion nc %h %p`) is left as written: envctl checks the key of the host at its
end, but cannot check hosts that command connects through (README, "Remote hosts").

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
POLICY = ("BatchMode=yes", "StrictHostKeyChecking=yes")
# A hop that does not answer must not hang a run: ConnectTimeout where the config sets none
# (a config's own value, e.g. for a slow far bastion, is kept).
DEFAULT_CONNECT_TIMEOUT = 20
KEEPALIVE_SECONDS = 10  # the longest keepalive interval envctl's connections use (keepalive_options)
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
    envctl chose them (the config named only /dev/null). `config` is the ssh config it is
    read with (None: OpenSSH's default) and `options` the -o options given for it (those of
    an `ssh -W` ProxyCommand it was read from), both handed to the ssh that reaches it."""

    name: str
    user: str | None
    port: int | None
    settings: Mapping[str, str]
    via: "Hop | None"
    known_hosts: tuple[str, ...]
    replaced_known_hosts: bool
    config: str | None = None
    options: tuple[str, ...] = ()

    @property
    def hostname(self) -> str:
        return self.settings.get("hostname", self.name)

    @property
    def real_port(self) -> int:
        port = self.settings.get("port", "")
        return int(port) if port.isdigit() else DEFAULT_PORT

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

    def timeout_options(self) -> list[str]:
        """-o ConnectTimeout=20 where the hop's config sets no ConnectTimeout, else nothing."""
        configured = self.settings.get("connecttimeout", "none")
        return [] if configured.isdigit() else ["-o", f"ConnectTimeout={DEFAULT_CONNECT_TIMEOUT}"]

    def keepalive_options(self) -> list[str]:
        """-o ServerAliveInterval=N: the config's interval when it is shorter than 10 s (a
        bastion's NAT kept open every 5 s), else 10, so that a server gone silent (a
        partitioned link) ends the connection after ServerAliveCountMax missed answers, ~30 s
        with OpenSSH's count of 3, not after TCP's minutes, whatever interval the config keeps
        NAT open with (`ServerAliveInterval 60`, the guides' line: 3 minutes). The count stays
        the config's (a lab riding out a Wi-Fi drop with `ServerAliveCountMax 20`). `ssh -G`
        gives the interval in seconds, 0 where none is set."""
        configured = self.settings.get("serveraliveinterval", "0")
        seconds = int(configured) if configured.isdigit() and int(configured) > 0 else KEEPALIVE_SECONDS
        return ["-o", f"ServerAliveInterval={min(seconds, KEEPALIVE_SECONDS)}"]

    def known_hosts_options(self) -> list[str]:
        if not self.replaced_known_hosts:
            return []
        return ["-o", "UserKnownHostsFile=" + " ".join(_config_word(path) for path in self.known_hosts)]

    def jump_options(self) -> list[str]:
        """ssh arguments (before the destination) for a connection to this hop as a jump host."""
        argv = [arg for option in POLICY for arg in ("-o", option)] + self.timeout_options()
        # Never through a master the user's own ssh opened (it may have been opened without
        # checking the key): each hop is a connection of its own, checked by these options.
        argv += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        argv += self.known_hosts_options() + self.route_options()
        # The user's own -o options come after ours: for ssh the first value wins, so they
        # apply except where they would relax the policy.
        argv += [arg for option in self.options for arg in ("-o", option)]
        if self.user:
            argv += ["-l", self.user]
        if self.port:
            argv += ["-p", str(self.port)]
        return argv

    def route_options(self) -> list[str]:
        """The ProxyCommand that reaches this hop through the hops before it (none if direct)."""
        return ["-o", "ProxyCommand=" + proxy_command(self.via)] if self.via is not None else []


def proxy_command(jump: Hop) -> str:
    """A ProxyCommand value that opens `jump` with POLICY and forwards stdin/stdout to the
    host being connected to (`-W '[%h]:%p'`, as OpenSSH's own ProxyJump does). ssh expands
    %-tokens in it and runs it with `$SHELL -c "exec ..."` (sshconnect.c ssh_proxy_connect):
    so every argument is shell-quoted and every literal % doubled, nested hops included.
    `-W '[host]:port'` is read by parse_forward/hpdelim (misc.c), brackets included, in every
    OpenSSH that has ProxyJump (7.3 on; CentOS 7 ships 7.4, Debian 12 9.2)."""
    argv = ["ssh", *(["-F", jump.config] if jump.config else []), *jump.jump_options()]
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
    elif forced is None and (jump := ssh_w_proxy_command(settings.get("proxycommand"))) is not None:
        via = _resolve(jump.spec.host, jump.spec.user, jump.spec.port, jump.config, list(jump.options),
                       jump.chain or None, own_known_hosts, (*seen, label))
    listed = tuple(_expand_path(path) for path in known_hosts_paths(settings.get("userknownhostsfile", "~/.ssh/known_hosts")))
    kept = tuple(path for path in listed if path != os.devnull)
    return Hop(name, user, port, settings, via, kept or (own_known_hosts,), kept != listed, config, tuple(extra))


@dataclass(frozen=True)
class SshJumpCommand:
    """A ProxyCommand `ssh [options] -W %h:%p BASTION` read as a jump: the bastion (with -l
    and -p), the config it names (-F, else None: OpenSSH's default), its -o options (-i as
    IdentityFile, -4/-6 as AddressFamily, -C as Compression, -A as ForwardAgent) and the jumps
    of its -J, first hop first."""

    spec: JumpSpec
    config: str | None
    options: tuple[str, ...]
    chain: list[JumpSpec]


# ssh(1)'s flags that an `ssh -W` ProxyCommand may carry and that change nothing envctl must
# know (quiet, verbose, no tty, no agent/X11 forwarding), and those with a meaning as -o.
_IGNORED_FLAGS = set("qvTNaxn")
_FLAG_OPTIONS = {"4": "AddressFamily=inet", "6": "AddressFamily=inet6", "C": "Compression=yes",
                 "A": "ForwardAgent=yes"}
_VALUE_FLAGS = set("iloFpJWc")
_SHELL_SYNTAX = re.compile(r"[|&;<>()$`\\*?{}\n]")


def ssh_w_proxy_command(command: str | None) -> SshJumpCommand | None:
    """The jump an `ssh ... -W %h:%p HOST` ProxyCommand (optionally after `exec`) stands for,
    or None for any other command (nc, a script, shell syntax, an ssh flag envctl does not
    know, a remote command, %-tokens outside -W): those run as written."""
    if not command or command.lower() == "none" or _SHELL_SYNTAX.search(command):
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if words[:1] == ["exec"]:
        words = words[1:]
    if not words or os.path.basename(words[0]) != "ssh":
        return None
    user = port = config = forward = None
    options: list[str] = []
    chain: list[JumpSpec] = []
    hosts: list[str] = []
    rest = words[1:]
    # ssh takes options before and after the destination (`ssh bastion -W %h:%p` is common).
    while rest:
        word, rest = rest[0], rest[1:]
        if word == "--":
            hosts += rest
            break
        if not word.startswith("-") or word == "-":
            hosts.append(word)
            continue
        for index, flag in enumerate(word[1:], 1):
            if flag in _IGNORED_FLAGS:
                continue
            if flag in _FLAG_OPTIONS:
                options.append(_FLAG_OPTIONS[flag])
                continue
            if flag not in _VALUE_FLAGS:
                return None
            value = word[index + 1:]
            if not value:
                if not rest:
                    return None
                value, rest = rest[0], rest[1:]
            if flag == "W":
                forward = value
            elif "%" in value:
                return None  # a token of the outer ssh's: not a fixed setting
            elif flag == "i":
                options.append("IdentityFile=" + _config_word(value))
            elif flag == "o":
                if re.split(r"[\s=]", value.strip(), maxsplit=1)[0].lower() in ("proxycommand", "proxyjump"):
                    return None  # a way to the bastion of its own: envctl cannot hold it
                options.append(value)
            elif flag == "c":
                options.append("Ciphers=" + value)
            elif flag == "l":
                user = value
            elif flag == "F":
                config = os.path.expanduser(value)
            elif flag == "J":
                chain = parse_jump_list(value)
            elif flag == "p":
                if not value.isdigit():
                    return None
                port = int(value)
            break
    if forward not in ("%h:%p", "[%h]:%p") or len(hosts) != 1 or "%" in hosts[0]:
        return None
    if not hosts[0].lower().startswith("ssh://") and ":" in hosts[0].rpartition("@")[2]:
        return None  # ssh reads no port there (a bare IPv6 address or a typo): left to ssh
    spec = parse_jump(hosts[0])
    return SshJumpCommand(JumpSpec(spec.host, user or spec.user, port or spec.port), config, tuple(options), chain)


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


def known_hosts_paths(value: str) -> list[str]:
    """The files of `ssh -G`'s `userknownhostsfile` line. ssh -G prints them space-separated and
    unquoted, so a path with a space (written in quotes in the config) comes out in pieces: a
    piece that does not start a path (/, ~ or a %-token; ssh 9.x prints them expanded, older
    ones as written) continues the one before it."""
    paths: list[str] = []
    for piece in value.split(" "):
        if paths and not piece.startswith(("/", "~", "%")):
            paths[-1] += " " + piece
        elif piece:
            paths.append(piece)
    return paths


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
