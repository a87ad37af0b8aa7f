"""Values of docker run options as envctl's manifest takes them: a `-v` mount, a `-p` port
publication, the names in an `--env-file`, and why the options envctl has no setting for are
left out. Docker's rules are from its run reference (docs.docker.com/reference/cli/docker/
container/run/) and `docker run --help` of Docker 28.2."""

from __future__ import annotations

import re
from pathlib import Path

from envctl.manifest import docker_values

# Why an option is not in the manifest (a `notes:` entry names the option and this reason).
UNEXPRESSED = {
    "add-host": "envctl sets no /etc/hosts entries; add them in a setup step",
    "cap-drop": "envctl adds capabilities only",
    "security-opt": "envctl sets no security options",
    "device-cgroup-rule": "envctl passes device nodes, not cgroup rules",
    "group-add": "envctl adds no supplementary groups",
    "hostname": "envctl keeps Docker's host name",
    "restart": "envctl starts and stops its containers itself",
    "publish-all": "envctl publishes the ports named in container.ports only",
    "tmpfs": "envctl mounts host paths only",
    "volumes-from": "envctl mounts host paths only",
    "platform": "envctl runs the image as the engine picks it for this host",
    "memory": "envctl sets no memory limit",
    "cpus": "envctl sets no CPU limit",
    "sysctl": "envctl sets no sysctls",
    "init": "envctl runs no init process in the container",
    "label": "envctl writes its own labels",
    "read-only": "envctl needs a writable root file system for setup",
    "cidfile": "envctl records its containers itself",
    "expose": "ports a container serves are an entrypoint's ports",
}
_MOUNT_MODES = {"ro", "rw"}
_KNOWN_MOUNT_OPTIONS = {"z", "Z", "shared", "slave", "private", "rshared", "rslave", "rprivate", "nocopy",
                        "consistent", "cached", "delegated"}
MAX_RANGE = 100  # ports in one published range written out one per entry


def mount_option(value: str, cwd: Path) -> tuple[str | None, str | None]:
    """`-v host:container[:opts]` → (envctl's `host:container[:ro]`, a remark or None); (None,
    why) for what envctl cannot mount: a named or anonymous volume. Relative host paths are
    taken against `cwd`, as the Docker CLI (23.0 and later) takes them."""
    parts = value.split(":")
    if len(parts) == 1:
        return None, "an anonymous volume; envctl mounts host paths only"
    if len(parts) > 3:
        return None, "not host:container[:options]"
    host, inside = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) == 3 and parts[2] else []
    if not (host.startswith(("/", "./", "../", "${HOME}")) or host in (".", "..")):
        return None, f"'{host}' is a named volume; envctl mounts host paths only"
    if host.startswith("."):
        host = str((cwd / host).resolve())
    if not inside.startswith("/"):
        return None, f"the container path '{inside}' is not absolute"
    unknown = [o for o in options if o not in _MOUNT_MODES | _KNOWN_MOUNT_OPTIONS]
    if unknown:
        return None, f"'{':'.join(unknown)}' is not a mount option Docker takes"
    mode = "ro" if "ro" in options else None
    dropped = [o for o in options if o not in _MOUNT_MODES]
    remark = f"mount option {', '.join(dropped)} not kept (envctl mounts host:container[:ro|rw])" if dropped else None
    return f"{host}:{inside}{':ro' if mode else ''}", remark


def port_entries(value: str) -> tuple[list[str], list[int], str | None]:
    """`-p` → (container.ports entries, container ports served, a remark or None). A range
    (`8000-8002:8000-8002`) is one entry per port; `-p 8000` (a host port Docker picks) is
    written as 8000 on both sides, with a remark."""
    spec, slash, protocol = value.partition("/")
    suffix = f"/{protocol}" if slash else ""
    parts = spec.rsplit(":", 2) if not spec.startswith("[") else None
    if parts is None:
        return _single(value)
    inside = parts[-1]
    host = parts[-2] if len(parts) >= 2 else None
    address = parts[0] + ":" if len(parts) == 3 else ""
    if "-" in inside or (host and "-" in host):
        low, _, high = inside.partition("-")
        host_low, _, host_high = (host or inside).partition("-")
        if not (low.isdigit() and high.isdigit() and host_low.isdigit() and host_high.isdigit()):
            return [], [], "not a port range Docker takes"
        count = int(high) - int(low)
        if count != int(host_high) - int(host_low) or count < 0 or count >= MAX_RANGE:
            return [], [], f"a range envctl does not write out (the two sides must be equal and under {MAX_RANGE} ports)"
        entries = [f"{address}{int(host_low) + k}:{int(low) + k}{suffix}" for k in range(count + 1)]
        return entries, [int(low) + k for k in range(count + 1)], None
    if host == "":
        return [], [], "a host port Docker picks; write the host port in container.ports"
    if host is None:
        entries, served, _ = _single(value)
        return entries, served, ("published on a host port Docker picks; envctl publishes it on the same port "
                                 "number" if entries else None)
    return _single(value)


def _single(value: str) -> tuple[list[str], list[int], str | None]:
    try:
        mapping = docker_values.port_mapping(value)
    except ValueError as exc:
        return [], [], str(exc)
    return [value], [mapping.container_port], None


def read_env_file(path: Path) -> tuple[list[str], str | None]:
    """The variable names in a Docker env file (`NAME=VALUE` or `NAME` lines; `#` comments and
    blank lines skipped), or ([], why) when it cannot be read. Values are not read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], f"cannot read {path} ({exc.strerror if isinstance(exc, OSError) else 'not UTF-8'})"
    names = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name = line.partition("=")[0].strip()
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name not in names:
            names.append(name)
    return names, None
