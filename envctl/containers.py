"""The container envctl creates: its full specification, labels and config hash.

A ContainerSpec is plain data computed by the planner. It renders to Docker Engine API create
arguments (what `up` sends) and to the equivalent `docker create` command line (what a plan
shows, and what a user can run by hand), from the same fields.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from envctl import __version__
from envctl.cards import cards_text
from envctl.devices.base import DeviceNode, Mount
from envctl.manifest import docker_values

LABEL_PREFIX = "io.envctl."
LABEL_MANIFEST = LABEL_PREFIX + "manifest"
LABEL_VARIANT = LABEL_PREFIX + "variant"
LABEL_VARS = LABEL_PREFIX + "vars"  # the --var values it was brought up with, JSON {name: text}
LABEL_HASH = LABEL_PREFIX + "config-hash"
LABEL_VERSION = LABEL_PREFIX + "version"
LABEL_CARDS = LABEL_PREFIX + "cards"
LABEL_SPEC = LABEL_PREFIX + "spec"  # the spec (env values hashed), to say what changed on recreate
LABEL_IMAGE_ID = LABEL_PREFIX + "image-id"
LABEL_FILE = LABEL_PREFIX + "manifest-file"
LABEL_WORKSPACE_MARK = LABEL_PREFIX + "workspace-mark"  # the token in its workspace's paths.WORKSPACE_MARK
LABEL_USER = LABEL_PREFIX + "user"  # who brought the environment up (their login name), shown as a card's holder
LABEL_BAKED_FOR = LABEL_PREFIX + "baked-for"  # on images made by `envctl build`: the manifest
LABEL_BAKE_KEY = LABEL_PREFIX + "bake-key"  # ... and the hash of the base image and setup steps
KEEP_ALIVE = ("sleep", "infinity")


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    manifest: str
    variant: str | None
    cards: tuple[int, ...]
    devices: tuple[DeviceNode, ...] = ()
    mounts: tuple[Mount, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    shm_size: str | int | None = None
    ipc_mode: str | None = None
    network_mode: str | None = None
    pid_mode: str | None = None
    privileged: bool = False
    runtime: str | None = None
    user: str | None = None
    working_dir: str | None = None
    ulimits: dict[str, int | str] = field(default_factory=dict)
    cap_add: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    command: tuple[str, ...] = KEEP_ALIVE
    # --var values (overrides.recorded): part of what the environment is, so that exec, status
    # and a later up resolve its manifest as up did; left out of the hash and the spec label
    # when none were given, so that environments made before --var existed keep their hash.
    vars: dict[str, str] = field(default_factory=dict)

    def _fields(self) -> dict:
        data = asdict(self)
        if not self.vars:
            del data["vars"]
        return data

    def config_hash(self) -> str:
        """sha256 over everything that shapes the container; a change means recreate."""
        canonical = json.dumps(self._fields(), sort_keys=True, default=list, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def summary(self) -> dict:
        """The spec as recorded in a label: env values replaced by short digests, so that a
        later `up` can name the variables that changed without the label holding secrets."""
        data = self._fields()
        data["env"] = {k: hashlib.sha256(v.encode()).hexdigest()[:12] for k, v in self.env.items()}
        return data

    def labels(self) -> dict[str, str]:
        labels = {
            LABEL_MANIFEST: self.manifest,
            LABEL_HASH: self.config_hash(),
            LABEL_VERSION: __version__,
        }
        if self.cards:
            labels[LABEL_CARDS] = cards_text(self.cards)  # read back by envctl.cards.parse_indices
        if self.variant:
            labels[LABEL_VARIANT] = self.variant
        if self.vars:
            labels[LABEL_VARS] = json.dumps(self.vars, sort_keys=True, ensure_ascii=False)
        return labels

    def cli_args(self) -> list[str]:
        """The equivalent `docker create` argument list."""
        args = ["docker", "create", "--name", self.name]
        for key, value in sorted(self.labels().items()):
            args += ["--label", f"{key}={value}"]
        for device in self.devices:
            args += ["--device", f"{device.host_path}:{device.container_path}:rwm"]
        for mount in self.mounts:
            args += ["--mount", f"type=bind,source={mount.source},target={mount.target}" + (",readonly" if mount.read_only else "")]
        for key, value in self.env.items():
            args += ["--env", f"{key}={value}"]
        for flag, value in (
            # In bytes' largest exact unit: the 20.10 CLI refuses `64Gi`, which the manifest may hold.
            ("--shm-size", docker_values.size_text(docker_values.size_bytes(self.shm_size)) if self.shm_size is not None else None),
            ("--ipc", self.ipc_mode),
            ("--network", self.network_mode),
            ("--pid", self.pid_mode),
            ("--runtime", self.runtime),
            ("--user", self.user),
            ("--workdir", self.working_dir),
        ):
            if value is not None:
                args += [flag, str(value)]
        if self.privileged:
            args.append("--privileged")
        for name, limit in self.ulimits.items():
            args += ["--ulimit", f"{name}={limit}"]
        for cap in self.cap_add:
            args += ["--cap-add", cap]
        for port in self.ports:
            args += ["--publish", _cli_port(docker_values.port_mapping(port))]
        return args + [self.image, *self.command]

    def api_kwargs(self, extra_labels: dict[str, str] | None = None) -> dict:
        """Arguments for docker-py's `containers.create` (the Engine API). `extra_labels` are
        facts about this creation (image ID, manifest file) that are not part of the config."""
        host_config: dict = {
            "name": self.name,
            "image": self.image,
            "command": list(self.command),
            "labels": {**self.labels(), LABEL_SPEC: json.dumps(self.summary(), sort_keys=True, default=list), **(extra_labels or {})},
            "environment": dict(self.env),
            "devices": [f"{d.host_path}:{d.container_path}:rwm" for d in self.devices],
            "mounts": [_api_mount(m) for m in self.mounts],
            "privileged": self.privileged,
            "ulimits": [_api_ulimit(name, limit) for name, limit in self.ulimits.items()],
            "cap_add": list(self.cap_add),
        }
        optional = {
            # Bytes: docker-py's parse_bytes knows only b/k/m/g and fails on `64Gi` (client-side).
            "shm_size": docker_values.size_bytes(self.shm_size) if self.shm_size is not None else None,
            "ipc_mode": self.ipc_mode,
            "network_mode": self.network_mode,
            "pid_mode": self.pid_mode,
            "runtime": self.runtime,
            "user": self.user,
            "working_dir": self.working_dir,
        }
        host_config.update({k: v for k, v in optional.items() if v is not None})
        if self.ports:
            mappings = [docker_values.port_mapping(p) for p in self.ports]
            host_config["ports"] = {m.container_key: m.host_binding for m in mappings}
        return host_config


def _api_ulimit(name: str, limit: int | str):
    from docker.types import Ulimit  # imported lazily: planning never needs the docker package

    soft, hard = docker_values.ulimit(name, limit)
    return Ulimit(name=name, soft=soft, hard=hard)


def _api_mount(mount: Mount):
    from docker.types import Mount as DockerMount

    return DockerMount(target=mount.target, source=mount.source, type="bind", read_only=mount.read_only)


def _cli_port(mapping: docker_values.PortMapping) -> str:
    """`--publish` as the API call publishes it (a lone `8501` on the CLI would pick a random
    host port; envctl's `8501` is 8501 on both sides)."""
    host_ip = f"[{mapping.host_ip}]:" if mapping.host_ip and ":" in mapping.host_ip else f"{mapping.host_ip}:" if mapping.host_ip else ""
    protocol = "" if mapping.protocol == "tcp" else f"/{mapping.protocol}"
    return f"{host_ip}{mapping.host_port}:{mapping.container_port}{protocol}"
