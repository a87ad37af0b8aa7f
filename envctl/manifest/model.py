"""The manifest format as typed, frozen models.

These models are the single source of truth for the format: the loader validates against them,
`envctl schema` is generated from them, and the README's reference describes them. Field
validators raise messages in the user's terms (the loader adds file, line and dotted path).
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator,
                      model_validator)
from pydantic_core import PydanticCustomError

from envctl.cards import CardsError, parse_cards
from envctl.manifest import docker_values

from envctl.versions import SpecifierError, parse_specifier

DeviceKind = Literal["mlu", "npu", "cuda", "cpu"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
IMAGE_ID_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")

Scalar = str | int | float | bool
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


def _fail(message: str, entry: str | None = None, at_key: bool = False) -> PydanticCustomError:
    """A problem in the user's words. `entry`: the key of the mapping entry it is about, when a
    validator checks a whole mapping (the loader then points at that entry's line, at its key
    when `at_key`)."""
    context = {"entry": entry, "at_key": at_key} if entry is not None else None
    return PydanticCustomError("envctl", message, context)


def _describe(value: Any) -> str:
    kind = {str: "text", int: "an integer", float: "a number", bool: "a boolean",
            list: "a list", dict: "a mapping", type(None): "nothing (null)"}.get(type(value), type(value).__name__)
    if isinstance(value, (str, int, float, bool)):
        return f"{kind} ({value!r})"
    return kind


def _check_cards(value: Any) -> Any:
    """A card count (2) or card indices ([0, 1], "0-3", "0,2-3"), read by envctl.cards as the
    command line and the inventory read them; indices are kept as a list."""
    if value is None:
        return value
    try:
        cards = parse_cards(value)
    except CardsError as problem:
        raise _fail(str(problem)) from None
    return cards if isinstance(cards, int) else list(cards)


def _check_env(value: Any) -> Any:
    """Environment values are text; numbers are accepted and written as text."""
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if not key or "=" in key or "\0" in key:
            raise _fail(f"'{key}' cannot be an environment variable name (it is empty or holds '=')", key, at_key=True)
        if isinstance(item, bool):
            raise _fail(
                "YAML reads yes/no/on/off/true/false as a boolean; quote the value "
                "('\"1\"', '\"true\"') to say exactly what the variable should hold", key
            )
        if isinstance(item, (int, float, datetime.date)):
            item = str(item)  # the loader refuses those whose text YAML changed (1.10, 2024-1-1)
        if not isinstance(item, str):
            raise _fail(f"expected text, got {_describe(item)}", key)
        if "\0" in item:
            raise _fail("an environment value cannot hold a NUL character", key)
        out[key] = item
    return out


def _check_scalars(value: Any) -> Any:
    """Parameters and variables are single values: text, numbers or booleans."""
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if isinstance(item, datetime.date):
            item = str(item)  # `date: 2024-01-01` is text; the loader refuses dates whose text YAML changed
        if not isinstance(item, (str, int, float, bool)):
            raise _fail(f"expected a single value (text, number, boolean), got {_describe(item)}", key)
        out[key] = item
    return out


def _check_text_or_list(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise _fail(f"expected a name or a list of names, got {_describe(value)}")


def _argument(value: Any) -> Any:
    """An argument as text: numbers and booleans as YAML read them (the loader refuses those
    whose text YAML 1.1 changed, such as 1.10 or 0022)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, datetime.date)):
        return str(value)
    return value


def _check_run(value: Any) -> Any:
    """A command: one shell line run with `sh -c`, or an argument list run as it is."""
    if isinstance(value, str):
        if not value.strip():
            raise _fail("the command is empty")
        return value
    if isinstance(value, list) and value:
        value = [_argument(v) for v in value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    if isinstance(value, list) and value:
        index, item = next((i, v) for i, v in enumerate(value) if not isinstance(v, str))
        raise _fail(f"an argument is text (or a number), got {_describe(item)}", index)
    raise _fail(f"expected a command line or a non-empty list of arguments, got {_describe(value)}")


class _Strict(BaseModel):
    # strict: YAML already types values; "2" is not silently a card count. forbid: a typo in a
    # key is an error, never a silently ignored setting.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Device(_Strict):
    kind: DeviceKind = Field(description="accelerator family: mlu (Cambricon), npu (Ascend), cuda, cpu")
    cards: int | list[int] | None = Field(
        None, description="how many cards (first free ones) or which indices; --cards overrides"
    )
    driver: str | None = Field(None, description="version specifier checked against the host driver, e.g. '>=5.10.22'")
    model: str | None = Field(None, description="the card model the workflow was validated on, e.g. MLU370-X8")

    _cards = field_validator("cards", mode="before")(_check_cards)

    @field_validator("driver")
    @classmethod
    def _driver_specifier(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            parse_specifier(value)  # vendor spellings too: '>=24.1.RC2', '==24.1.rc2.2'
        except SpecifierError as exc:
            reason = f": {exc.reason}" if exc.reason else " (write e.g. '>=5.10.22' or '==23.0.rc2')"
            raise _fail(f"'{value}' is not a version specifier{reason}") from None
        return value


def _docker(check, *value: Any) -> Any:
    """Run a docker_values check; its ValueError becomes a located manifest problem. A value
    still holding `${` had a variable that is not set, which is reported already."""
    if any(isinstance(v, str) and "${" in v for v in value):
        return value[-1]
    try:
        return check(*value)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _check_sha256(value: str | None) -> str | None:
    if value is not None and not SHA256_PATTERN.match(value):
        raise _fail(f"'{value}' is not a sha256 digest (64 lowercase hex digits)")
    return value


class Tarball(_Strict):
    source: str | None = Field(None, description="URL or path of the image tarball (docker save output, .tar or .tar.gz)")
    sha256: str | None = Field(None, description="sha256 of the tarball file; `envctl lock` records it")
    obtain: str | None = Field(None, description="how to get the tarball when no source can be published")

    _sha256 = field_validator("sha256")(_check_sha256)


class Image(_Strict):
    ref: str = Field(description="the image reference the workflow runs, as named inside the tarball; with pull, "
                                 "registry/repository:tag, pinned by @sha256:<manifest digest> (or by `envctl lock`)")
    id: str | None = Field(None, description="pinned image ID (sha256:...); a different image is refused")
    pull: bool = Field(False, description="pull ref from its registry (through mirrors.registries of the user "
                                          "configuration when one is set)")
    tarball: Tarball | None = None
    build: str | None = Field(None, description="a Dockerfile context directory (relative to the manifest or images/)")
    build_args: dict[str, str] = Field(default_factory=dict, description="--build-arg values (text; plain numbers are written as text)")

    _build_args = field_validator("build_args", mode="before")(_check_env)

    @field_validator("ref")
    @classmethod
    def _reference(cls, value: str) -> str:
        return _docker(docker_values.image_reference, value)

    @field_validator("id")
    @classmethod
    def _image_id(cls, value: str | None) -> str | None:
        if value is not None and not IMAGE_ID_PATTERN.match(value):
            raise _fail(f"'{value}' is not an image ID (sha256: followed by 64 hex digits)")
        return value

    @model_validator(mode="after")
    def _one_origin(self) -> "Image":
        if self.tarball is not None and self.build is not None:
            raise _fail("give either tarball or build, not both")
        if self.pull and (self.tarball is not None or self.build is not None):
            raise _fail("give one origin of the image: pull, tarball or build", entry="pull", at_key=True)
        if self.pull and "${" not in self.ref and "@" in self.ref and ":" not in self.ref.split("@", 1)[0].rsplit("/", 1)[-1]:
            # Docker tags no image with a digest: a pulled image is run by its tag (envctl/registry_refs.py).
            name = self.ref.split("@", 1)[0]
            raise _fail(f"'{self.ref}' names no tag: a pulled image is run and tagged by name:tag, and Docker tags no image "
                        f"with a digest; write {name}:TAG@{self.ref.split('@', 1)[1]}", entry="ref")
        origin = "tarball" if self.tarball is not None else "build" if self.build is not None else None
        if origin and "@" in self.ref and "${" not in self.ref:
            raise _fail(_digest_with_origin(self.ref, origin), entry="ref")
        return self


def _digest_with_origin(ref: str, origin: str) -> str:
    """Why `name[:tag]@sha256:...` cannot name a loaded or built image. A registry digest is the
    digest of the manifest a registry serves; `docker save` keeps none (the image's RepoDigests
    are not written into it) and Docker tags no image with a digest (checked on Docker 20.10:
    `docker tag IMAGE x/y@sha256:...` answers "refusing to create a tag with a digest
    reference"), so up could never find the loaded or built image under this name."""
    name = ref.split("@", 1)[0]
    made = "a `docker save` tarball keeps no registry digest" if origin == "tarball" else "a built image has no registry digest"
    return (f"'{ref}' names a digest, but the image comes from image.{origin}: {made} and Docker tags no image "
            f"with a digest; write ref: {name if ':' in name.rsplit('/', 1)[-1] else name + ':TAG'} and, to pin the "
            f"image, give image.id (its config digest, as `docker inspect --format '{{{{.Id}}}}'` shows it on the "
            f"classic store; a registry digest is not it)")


def _port(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # `- 8501`; the loader refuses `- 22:22` (base 60) and `- 0022`
    if isinstance(value, str):
        _docker(docker_values.port_mapping, value)
    return value


def _ulimit_value(value: Any) -> Any:
    if isinstance(value, (int, str, dict)) and not isinstance(value, bool):
        _docker(docker_values.ulimit_limits, value)  # the name is checked on the key
    return value


def _ulimit_name(name: str) -> str:
    if name not in docker_values.ULIMIT_NAMES:
        _docker(docker_values.ulimit, name, 0)
    return name


def _served_port(value: Any) -> Any:
    """A port an entrypoint serves, written as container.ports writes one: a number (`8000`)
    or text (`"8000"`, `"8000/tcp"`), checked by the same rules (docker_values.port_mapping)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return value  # the schema says what is expected
    if isinstance(value, int) and not 1 <= value <= 65535:
        raise _fail(f"{value} is not a port (1 to 65535)")
    if isinstance(value, str) and "${" in value:
        return value  # an unset variable, reported already
    mapping = _docker(docker_values.port_mapping, value)
    if mapping.host_ip is not None or mapping.host_port != mapping.container_port:
        raise _fail(f"'{value}': an entrypoint names the one port it serves in the container (e.g. "
                    f"{mapping.container_port}); a host side belongs in container.ports")
    return mapping.container_port


# Checked one item at a time, so that each bad item is reported at its own line.
# Both spellings in both places: a number (`- 8000`) or text (`- "8000"`, `- "8000/tcp"`).
_PORT_SCHEMA = WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1, "maximum": 65535}, {"type": "string"}]})
ServedPort = Annotated[int, BeforeValidator(_served_port), _PORT_SCHEMA]
Port = Annotated[str, BeforeValidator(_port), _PORT_SCHEMA]
Capability = Annotated[str, AfterValidator(lambda name: _docker(docker_values.capability, name))]
UlimitName = Annotated[str, AfterValidator(_ulimit_name)]
UlimitValue = Annotated[int | str, BeforeValidator(_ulimit_value)]


def _passed_name(value: Any) -> Any:
    """A pass_env name: one a POSIX shell can export (HF_TOKEN), since it is read from one, and
    not one the Docker client reads. An entrypoint gets its passed values through `docker exec
    -e NAME` with the value in that client's own environment (envctl/execute.py; also each
    node's client under `exec --nodes`), so a passed DOCKER_HOST, DOCKER_CONTEXT, DOCKER_CONFIG
    (the CLI's variables: docs.docker.com/engine/reference/commandline/cli/#environment-variables)
    or HOME (where the client finds config.json and its current context) would send envctl's
    own exec to another engine or configuration: `No such container`, or worse, the wrong one."""
    if isinstance(value, str) and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value):
        raise _fail(f"'{value}' is not an environment variable name (letters, digits and _, not starting with a digit)")
    if isinstance(value, str) and (value.startswith("DOCKER_") or value == "HOME"):
        raise _fail(f"'{value}' is read by the Docker client that envctl exec runs entrypoints through, whose "
                    f"environment carries passed values: it would redirect envctl's own exec; pass it under another "
                    f"name, or set it in container.env")
    return value


PassedName = Annotated[str, AfterValidator(_passed_name)]


class Container(_Strict):
    """Everything here reaches Docker; each value is checked as Docker reads it
    (docker_values), so that `validate` refuses what `up` would fail on."""

    name: str | None = Field(None, description="container name; default envctl-<name>[-<variant>] (the manifest's name, and the variant chosen, if any; combined variants a+b as -a-b-<first 6 hex digits of sha256 of \"a+b\">)")
    shm_size: str | int | None = Field(None, description="size of /dev/shm: 64g, 64Gi, 512m (binary units, as Docker) or bytes")
    ipc: str | None = Field(None, description="IPC namespace: host, private, shareable, none, container:<name>")
    network: str | None = Field(None, description="network mode: host, bridge, none, container:<name> or a network name")
    pid: str | None = Field(None, description="PID namespace: host or container:<name>")
    privileged: bool = Field(False, description="run privileged (all host devices); off unless asked for")
    runtime: str | None = Field(None, description="OCI runtime, e.g. 'ascend' for the Ascend Docker Runtime")
    user: str | None = Field(None, description="user[:group], names or numeric IDs")
    env: dict[str, str] = Field(default_factory=dict)
    mounts: list[str] = Field(default_factory=list, description="host:container[:ro|rw]; relative hosts are beside the manifest")
    ports: list[Port] = Field(
        default_factory=list,
        description="published ports [ip:]host:container[/tcp|udp|sctp], or one port for both (a number or text); for network modes other than host",
    )
    workdir: str | None = None
    ulimits: dict[UlimitName, UlimitValue] = Field(default_factory=dict, description="name: limit or 'soft:hard', -1 for unlimited")
    cap_add: list[Capability] = Field(default_factory=list, description="Linux capabilities, e.g. SYS_PTRACE (CAP_ optional)")
    shell: list[str] = Field(
        default_factory=lambda: ["/bin/sh", "-c"],
        min_length=1,
        description="how text commands (setup and entrypoint `run:` lines) are started, e.g. [/bin/bash, -lc]",
    )
    pass_env: list[PassedName] = Field(
        default_factory=list,
        description="variables passed from the caller's environment (or an env file) to setup steps and entrypoints "
                    "when they run, never into the container's configuration, labels, config hash, plans or logs "
                    "(tokens: HF_TOKEN); envctl/runtime_env.py",
    )
    env_file: str | None = Field(None, description="an env file (NAME=VALUE lines, as docker run --env-file reads them) "
                                                   "with values for pass_env, relative to the manifest; may be missing")

    _env = field_validator("env", mode="before")(_check_env)

    @model_validator(mode="after")
    def _passed_not_baked(self) -> "Container":
        """A name is either baked (env) or passed (pass_env), once: with both, the token would be
        in the container's configuration after all."""
        seen: set[str] = set()
        for name in self.pass_env:
            if name in seen:
                raise _fail(f"'{name}' is listed twice", entry="pass_env")
            seen.add(name)
            if name in self.env:
                raise _fail(f"'{name}' is in both env (baked into the container's configuration) and pass_env "
                            f"(passed at run time only); keep it in pass_env", entry="pass_env")
        if self.env_file is not None and not self.env_file.strip():
            raise _fail("env_file is empty: give a path (relative to the manifest), or leave it out", entry="env_file")
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return value if value is None else _docker(docker_values.container_name, value)

    @field_validator("shm_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, (bool, float)) or not isinstance(value, (int, str)):
            raise _fail(f"{value!r} is not a size (write e.g. 64g, 64Gi, 512m or a number of bytes)")
        _docker(docker_values.size_bytes, value)
        return value

    @field_validator("ipc")
    @classmethod
    def _ipc(cls, value: str | None) -> str | None:
        return value if value is None else _docker(docker_values.ipc_mode, value)

    @field_validator("pid")
    @classmethod
    def _pid(cls, value: str | None) -> str | None:
        return value if value is None else _docker(docker_values.pid_mode, value)

    @field_validator("network")
    @classmethod
    def _network(cls, value: str | None) -> str | None:
        return value if value is None else _docker(docker_values.network_mode, value)

    @field_validator("runtime")
    @classmethod
    def _runtime(cls, value: str | None) -> str | None:
        return value if value is None else _docker(docker_values.runtime, value)

    @field_validator("user", mode="before")
    @classmethod
    def _user(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # a UID; the loader refuses 0022-style numbers whose text YAML changed
        return _docker(docker_values.user, value) if isinstance(value, str) else value

    @field_validator("shell")
    @classmethod
    def _shell(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise _fail("the shell's first item is the program to run; it cannot be empty")
        return value


class Artifact(_Strict):
    source: str | None = Field(
        None,
        description="hf://org/repo@rev, modelscope://org/repo@tag, http(s)://, ftp://, git+https://...@ref, file:// or a path",
    )
    target: str | None = Field(None, description="absolute path in the container; default /opt/envctl/artifacts/<name>")
    sha256: str | None = Field(None, description="sha256 of a single-file artifact; `envctl lock` records it")
    subpath: str | None = Field(None, description="only this directory of a repository")
    include: list[str] = Field(default_factory=list, description="glob patterns of the files to fetch (default all)")
    extract: bool = Field(False, description="unpack a .tar(.gz) or .zip into target")
    mode: Literal["ro", "rw"] = Field("ro", description="ro: shared read-only mount; rw: a writable copy for setup to modify")
    obtain: str | None = Field(None, description="how to get it when there is no public source (shown at up time)")
    description: str | None = None

    _sha256 = field_validator("sha256")(_check_sha256)

    @model_validator(mode="after")
    def _source_or_how(self) -> "Artifact":
        if not self.source and not self.obtain:
            raise _fail("no source: give a source, or an 'obtain' note telling users how to get it")
        return self


class SetupStep(_Strict):
    name: str = Field(description="what the step does, shown in plans and progress")
    run: str | list[str] = Field(description="shell line (run with sh -c) or argument list")
    workdir: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    uses: list[str] = Field(default_factory=list, description="artifacts the step reads: a change to them re-runs it")

    _run = field_validator("run", mode="before")(_check_run)
    _env = field_validator("env", mode="before")(_check_env)


Launcher = Literal["torchrun", "torch.distributed.launch", "deepspeed", "msrun", "none"]


def _check_optional_run(value: Any) -> Any:
    return value if value is None else _check_run(value)


class Nodes(_Strict):
    """An entrypoint that one training may run on several hosts at once (`exec --nodes`). The
    loader refuses a multi-node command still pinned to one node (envctl.nodes.pins)."""

    launcher: Launcher = Field(description="what starts the processes on each node: torchrun, torch.distributed.launch, "
                                           "deepspeed, msrun, or none (the command reads the ENVCTL_* contract itself)")
    run: str | list[str] | None = Field(
        None, description="the command each node runs when two or more run together; default: the entrypoint's run"
    )

    _run = field_validator("run", mode="before")(_check_optional_run)


def _http_path(value: str | None) -> str | None:
    """A path asked on the entrypoint's own port: `/health`, `/v1/models?x=1`; not a URL."""
    if value is None:
        return value
    if not value.startswith("/") or any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in value):
        raise _fail(f"{value!r} is not an HTTP path (it starts with / and holds no spaces; the host and port are "
                    f"the container's and ready.port)")
    return value


class Ready(_Strict):
    """When a run started with `envctl exec ENTRY --detach` is ready: a socket of the run
    listens on `port` in the container and, with `http`, a GET of that path there answers 2xx."""

    port: ServedPort | None = Field(None, description="the port that answers; default: the entrypoint's only port")
    http: str | None = Field(None, description="a path asked with GET on that port (e.g. /health): ready on a 2xx answer")
    timeout: float = Field(120, gt=0, description="seconds to wait for it; then the run is stopped and exec fails")

    _http = field_validator("http")(_http_path)


class Entrypoint(_Strict):
    description: str | None = None
    run: str | list[str]
    workdir: str | None = None
    params: dict[str, Scalar] = Field(
        default_factory=dict, description="defaults exported as upper-case environment variables; --set key=value overrides"
    )
    env: dict[str, str] = Field(default_factory=dict)
    cards: int | list[int] | None = Field(None, description="cards this entrypoint uses, within the environment's")
    ports: list[ServedPort] = Field(default_factory=list, description="ports it serves in the container (8000 or \"8000/tcp\"), for information and port checks")
    interactive: bool = Field(False, description="needs a terminal (a chat CLI)")
    nodes: Nodes | None = Field(None, description="can run on several hosts at once (exec --nodes), and how")
    ready: Ready | None = Field(None, description="a server: when `envctl exec ENTRY --detach` may return (its port "
                                                  "answers, or an HTTP path answers 2xx)")

    _run = field_validator("run", mode="before")(_check_run)
    _env = field_validator("env", mode="before")(_check_env)
    _cards = field_validator("cards", mode="before")(_check_cards)
    _params = field_validator("params", mode="before")(_check_scalars)

    @model_validator(mode="after")
    def _ready_port(self) -> "Entrypoint":
        """`ready` names one of the ports served, or the only one; a server needs no terminal."""
        if self.ready is None:
            return self
        if self.interactive:
            raise _fail("an interactive entrypoint needs a terminal and cannot run detached; drop ready or interactive",
                        entry="ready")
        served = ", ".join(map(str, self.ports))
        if self.ready.port is None and len(self.ports) != 1:
            raise _fail("say which port answers: ready.port" + (f" (one of {served})" if self.ports else
                                                               ", or list it in ports"), entry="ready")
        if self.ready.port is not None and self.ports and self.ready.port not in self.ports:
            raise _fail(f"ready.port {self.ready.port} is not one of the ports it serves ({served})", entry="ready")
        return self

    @property
    def ready_port(self) -> int | None:
        """The port readiness is checked on: ready.port, else the only port served."""
        if self.ready is None:
            return None
        return self.ready.port if self.ready.port is not None else self.ports[0]


class Manifest(_Strict):
    name: Name
    description: str
    extends: str | list[str] | None = Field(None, description="profile(s) merged underneath this manifest")
    vars: dict[str, Scalar] = Field(default_factory=dict, description="values for ${name} references")
    variants: dict[Name, dict[str, Any]] = Field(
        default_factory=dict, description="named overlays (e.g. 7b, 13b) merged on top when selected as NAME:VARIANT"
    )
    default_variant: str | None = None
    variant: str | None = Field(None, description="set by the loader: the variant this manifest was resolved for")
    device: Device
    image: Image
    container: Container = Field(default_factory=Container)
    artifacts: dict[Name, Artifact] = Field(default_factory=dict)
    setup: list[SetupStep] = Field(default_factory=list)
    entrypoints: dict[Name, Entrypoint] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list, description="facts a user should know: unknown pins, moved files")

    _vars = field_validator("vars", mode="before")(_check_scalars)
    _extends = field_validator("extends", mode="before")(_check_text_or_list)

    @property
    def container_name(self) -> str:
        suffix = f"-{variant_slug(self.variant)}" if self.variant else ""
        return self.container.name or f"envctl-{self.name}{suffix}"


def variant_slug(variant: str) -> str:
    """The variant as part of a Docker name (the default container name, a baked image's
    repository): a single variant as it is; a combination `14b+merged`, whose '+' no Docker
    name may hold, as its parts joined by '-' and a digest of the combination (`14b-merged-
    5d1c3a`), so that it stays the same from run to run and cannot be taken for a variant named
    `14b-merged` or for `merged+14b` (applied in the other order, which may differ)."""
    if "+" not in variant:
        return variant
    import hashlib

    return "-".join(variant.split("+")) + "-" + hashlib.sha256(variant.encode()).hexdigest()[:6]
