"""The values envctl hands to Docker, read as Docker reads them.

Each function takes a manifest value and returns it in the form the Engine API takes, or
raises ValueError with a message in the user's terms (the loader adds file:line). `validate`
therefore refuses what `up` would otherwise hand to docker-py or the engine and fail on.

Sources of the rules, each checked against Docker 20.10's engine and CLI:
- sizes: the Docker CLI's go-units RAMInBytes, `(?i)^(\\d+(\\.\\d+)*) ?([kmgtp])?i?b?$`, binary
  multipliers (docker/go-units size.go). docker-py's parse_bytes takes only b/k/m/g and the
  20.10 CLI refuses `64Gi` ("invalid suffix: 'gi'"), so envctl converts sizes to bytes itself;
  `64Gi`, `64GiB`, `64gb` and `64g` are all 64 GiB, as current Docker CLIs and Kubernetes read
  them.
- ulimits: go-units ParseUlimit (names, `soft:hard`, -1 for unlimited, soft <= hard); `as` is
  not offered by Docker, and the engine passes unknown names to runc, which fails at start.
- capabilities: the Linux list (include/uapi/linux/capability.h), case-insensitive, `CAP_`
  optional, as moby normalises them; engines older than the kernel list (20.10 lacks PERFMON,
  BPF, CHECKPOINT_RESTORE) refuse the newest at `up`, with the engine's own message.
- IPC and PID modes: moby's IpcMode.Valid / PidMode.Valid; network modes: host, bridge, none,
  default, container:<name>, or a network's name.
- container names: moby's `^[a-zA-Z0-9][a-zA-Z0-9_.-]+$` (two characters at least).
- image references: distribution/reference's grammar (lowercase repository, tag of at most 128
  characters, optional digest, name at most 255 characters).
- published ports: `[ip:]host:container[/tcp|udp|sctp]` or one port for both sides, 1-65535.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# The engine reads sizes and limits as Go int64s ("json: cannot unmarshal number ... of type int64").
INT64_MAX = (1 << 63) - 1

_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def size_bytes(value: int | str) -> int:
    """`64g`, `64Gi`, `64GiB`, `512m`, `1.5g` or a number of bytes → bytes (int, > 0)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"{value} is not a size: give a positive number of bytes, or e.g. 64g")
        if value > INT64_MAX:
            raise ValueError(f"{value} is larger than Docker can hold (at most {INT64_MAX} bytes)")
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a size (write e.g. 64g, 64Gi, 512m or a number of bytes)")
    size = int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])
    if size <= 0:
        raise ValueError(f"{value!r} is not a size: it is less than one byte")
    if size > INT64_MAX:
        raise ValueError(f"{value!r} is larger than Docker can hold")
    return size


def size_text(size: int) -> str:
    """Bytes in the largest unit that holds them exactly (`64g`), a form every Docker CLI and
    docker-py take."""
    for unit in ("g", "m", "k"):
        if size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
                "rss", "rtprio", "rttime", "sigpending", "stack")


def ulimit(name: str, value: int | str) -> tuple[int, int]:
    """`nofile: 65536` or `nofile: "1024:65536"` → (soft, hard); -1 is unlimited."""
    if name not in ULIMIT_NAMES:
        hint = " (Docker does not offer it)" if name == "as" else ""
        raise ValueError(f"'{name}' is not a ulimit Docker sets{hint}; one of: {', '.join(ULIMIT_NAMES)}")
    return ulimit_limits(value)


def ulimit_limits(value: int | str) -> tuple[int, int]:
    """A ulimit's value: a number, -1 (unlimited) or "soft:hard" → (soft, hard)."""
    if isinstance(value, int) and not isinstance(value, bool):
        soft = hard = value
    elif isinstance(value, str) and re.match(r"^-?[0-9]+(:-?[0-9]+)?$", value):
        soft_text, _, hard_text = value.partition(":")
        soft, hard = int(soft_text), int(hard_text or soft_text)
    elif isinstance(value, dict) and set(value) <= {"soft", "hard"} and value:
        # Compose's `nofile: {soft: 1024, hard: 65536}`; envctl takes Docker's own form.
        soft, hard = value.get("soft", "?"), value.get("hard", "?")
        raise ValueError(f"write \"{soft}:{hard}\" (soft:hard) for a ulimit with two limits")
    else:
        raise ValueError(f"{value!r} is not a limit (write a number, -1 for unlimited, or 'soft:hard')")
    if max(soft, hard) > INT64_MAX:
        raise ValueError(f"{value!r} is larger than Docker can hold (at most {INT64_MAX}; -1 is unlimited)")
    if soft < -1 or hard < -1:
        raise ValueError(f"{value!r}: a limit is a number of at least 0, or -1 for unlimited")
    if hard != -1 and (soft == -1 or soft > hard):
        raise ValueError(f"{value!r}: the soft limit ({soft}) must not exceed the hard limit ({hard}; -1 is unlimited)")
    return soft, hard


CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
)


def capability(name: str) -> str:
    bare = name.upper().removeprefix("CAP_")
    if bare != "ALL" and bare not in CAPABILITIES:
        raise ValueError(f"'{name}' is not a Linux capability (e.g. SYS_PTRACE, IPC_LOCK, SYS_ADMIN)")
    return name


_NAME = r"[a-zA-Z0-9][a-zA-Z0-9_.-]*"
CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def _other_container(mode: str, what: str) -> None:
    if not CONTAINER_NAME.match(mode.removeprefix("container:")):
        raise ValueError(f"'{mode}': write container:<name or ID> to share another container's {what}")


def ipc_mode(mode: str) -> str:
    if mode.startswith("container:"):
        _other_container(mode, "IPC namespace")
    elif mode not in ("host", "private", "shareable", "none"):
        raise ValueError(f"'{mode}' is not an IPC mode (host, private, shareable, none or container:<name>)")
    return mode


def pid_mode(mode: str) -> str:
    if mode.startswith("container:"):
        _other_container(mode, "PID namespace")
    elif mode != "host":
        raise ValueError(f"'{mode}' is not a PID mode (host or container:<name>; leave it out for the container's own)")
    return mode


def network_mode(mode: str) -> str:
    if mode.startswith("container:"):
        _other_container(mode, "network")
    elif not re.match(f"^{_NAME}$", mode):
        raise ValueError(f"'{mode}' is not a network mode (host, bridge, none, container:<name> or a network's name)")
    return mode


def container_name(name: str) -> str:
    if not CONTAINER_NAME.match(name):
        raise ValueError(f"'{name}' is not a container name (two or more of letters, digits, '.', '_', '-', "
                         f"starting with a letter or digit)")
    return name


_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN = r"(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_REFERENCE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::[\w][\w.-]{0,127})?(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)
# go-digest's algorithms and their encoded lengths; the engine refuses any other digest
# ("unsupported digest algorithm", "invalid checksum digest length/format").
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


def image_reference(ref: str) -> str:
    match = _REFERENCE.match(ref)
    if match is None:
        lowered = _REFERENCE.match(ref.lower())
        if lowered is not None and ref.rsplit(":", 1)[0] != ref.rsplit(":", 1)[0].lower():
            raise ValueError(f"'{ref}': Docker needs the repository name in lowercase")
        raise ValueError(f"'{ref}' is not an image reference (write [registry/]repository[:tag][@sha256:digest], "
                         f"e.g. pytorch/pytorch:2.1.0; a tag is at most 128 letters, digits, '_', '.', '-')")
    first, slash, _ = match.group("name").partition("/")
    if slash and first != first.lower() and not any(c in first for c in ".:[") and first != "localhost":
        # Not a registry host by Docker's rule (a '.', a ':PORT' or localhost), only by its capitals:
        # Docker 20.10 refuses the name ("repository name must be lowercase"), newer engines
        # (distribution/reference's splitDockerDomain) look up a host named so. Either way no pull.
        raise ValueError(f"'{ref}': Docker needs the repository name in lowercase ('{first}' is no registry "
                         f"host: one has a '.' or a ':PORT', or is localhost)")
    if len(match.group("name")) > 255:
        raise ValueError(f"'{ref}': a repository name is at most 255 characters")
    if match.group("digest"):
        algorithm, _, encoded = match.group("digest").partition(":")
        length = _DIGEST_HEX_LENGTHS.get(algorithm)
        if length is None:
            raise ValueError(f"'{ref}': '{algorithm}' is not a digest algorithm Docker takes (sha256, sha384, sha512)")
        if len(encoded) != length or encoded != encoded.lower():
            has = f"this one has {len(encoded)}" if len(encoded) != length else "this one has capitals"
            raise ValueError(f"'{ref}': a {algorithm} digest is {length} lowercase hex digits ({has})")
    return ref


def repository_component(name: str) -> bool:
    """Whether `name` can be one path component of a repository (envctl-baked/<name>)."""
    return re.match(f"^{_PATH_COMPONENT}$", name) is not None


def user(value: str) -> str:
    if not re.match(r"^[^:\s]+(:[^:\s]+)?$", value):
        raise ValueError(f"'{value}' is not a user (write a name or UID, optionally :group or :GID)")
    return value


def runtime(value: str) -> str:
    if not re.match(f"^{_NAME}$", value):
        raise ValueError(f"'{value}' is not a runtime name (as the engine's daemon.json names them, e.g. nvidia)")
    return value


@dataclass(frozen=True)
class PortMapping:
    host_ip: str | None
    host_port: int
    container_port: int
    protocol: str  # tcp | udp | sctp

    @property
    def container_key(self) -> str:
        """docker-py's key: `80/tcp`."""
        return f"{self.container_port}/{self.protocol}"

    @property
    def host_binding(self) -> tuple[str, int] | int:
        """docker-py's binding: a host port, or (host IP, host port)."""
        return (self.host_ip, self.host_port) if self.host_ip else self.host_port


def _port(text: str, side: str, written: str) -> int:
    if "-" in text:
        raise ValueError(f"'{written}': port ranges are not taken; write one entry per port")
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"'{written}': the {side} port must be a number from 1 to 65535")
    return int(text)


def port_mapping(value: str | int) -> PortMapping:
    """`8501` (the same port on both sides), `8080:80`, `127.0.0.1:8080:80`, `[::1]:8080:80`,
    each optionally `/udp` or `/sctp`."""
    written = str(value)
    main, slash, protocol = written.partition("/")
    protocol = protocol if slash else "tcp"
    if protocol not in ("tcp", "udp", "sctp"):
        raise ValueError(f"'{written}': the protocol is tcp, udp or sctp")
    host_ip = None
    if main.startswith("["):
        address, bracket, rest = main[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(f"'{written}' is not a port mapping (write [::1]:8080:80)")
        host_ip, main = address, rest[1:]
    parts = main.split(":")
    if len(parts) == 3 and host_ip is None:
        host_ip, parts = parts[0], parts[1:]
    if host_ip is not None:
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise ValueError(f"'{written}': '{host_ip}' is not an IP address") from None
        if len(parts) != 2:
            raise ValueError(f"'{written}' is not a port mapping (write ip:host_port:container_port)")
    if len(parts) == 1:
        port = _port(parts[0], "container", written)
        return PortMapping(host_ip, port, port, protocol)
    if len(parts) == 2:
        return PortMapping(host_ip, _port(parts[0], "host", written), _port(parts[1], "container", written), protocol)
    raise ValueError(f"'{written}' is not a port mapping (write 8501:8501, or ip:8501:8501)")
