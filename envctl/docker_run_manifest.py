"""A manifest from a `docker run` command (envctl.docker_run): `envctl new NAME --from-docker-run`.

What the command says goes where envctl keeps it: the device family and card indices from the
device nodes (`/dev/davinciN` → npu, `/dev/cambricon_devN` → mlu, `/dev/nvidiaN` or `--gpus` →
cuda; ASCEND_VISIBLE_DEVICES with the Ascend Docker Runtime), the image as a registry image
(`pull: true`; `envctl lock` pins its digest), mounts, environment, /dev/shm, IPC, network and
PID namespaces, ulimits, capabilities, user, working directory, runtime, container name, ports,
and the command (with --entrypoint) as an entrypoint. What envctl adds itself for the device
family (envctl/devices: the control nodes, the driver's files and tools, the visibility
variables) is left out and named in a comment, so that the manifest does not say it twice.

Nothing is dropped silently: an option envctl has no setting for (`--cap-drop`, `--add-host`,
a named volume, `--restart`, ...) is a `notes:` entry of the manifest and a warning. Credentials
are never written: an `-e` variable whose name looks like one (HF_TOKEN, ...) and every `-e NAME`
without a value become `container.pass_env` (passed from the caller's environment when setup
steps and entrypoints run); `--env-file` becomes `container.env_file` with its names passed.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path


from envctl.cards import CardsError, parse_indices
from envctl.devices.cuda import GLOBAL_NODES as CUDA_NODES
from envctl.devices.mlu import CONTROL_NODE as MLU_CONTROL_NODE, MLU
from envctl.devices.npu import DRIVER_MOUNTS as NPU_MOUNTS, MANAGER_NODES as NPU_MANAGER_NODES
from envctl.devices.npu import SHARED_NODES_IF_PRESENT as NPU_SHARED_NODES
from envctl.docker_run import HOME, DockerRun, DockerRunError, Option
from envctl.docker_run_render import render as _render
from envctl.docker_run_values import UNEXPRESSED, mount_option, port_entries, read_env_file
from envctl.manifest import docker_values
from envctl.manifest.interpolate import looks_secret

MLU_MOUNTS = MLU.mount_candidates
ASCEND_DRIVER = "/usr/local/Ascend/driver"
# Variables envctl sets from the cards it passes (envctl/devices: visibility_variable, and the
# runtime's own with runtime: ascend / nvidia)
VISIBILITY = {"ASCEND_RT_VISIBLE_DEVICES": "npu", "ASCEND_VISIBLE_DEVICES": "npu", "MLU_VISIBLE_DEVICES": "mlu",
              "CUDA_VISIBLE_DEVICES": "cuda", "NVIDIA_VISIBLE_DEVICES": "cuda"}
_SECRET_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # as docker_run keeps a credential the shell would expand


@dataclass
class Draft:
    """What the command says, sorted into the manifest's places, with the comments to write."""

    kind: str = "cpu"
    cards: list[int] = field(default_factory=list)
    card_count: int | None = None  # --gpus N: a count, not indices
    card_comment: str = ""
    runtime: str | None = None
    container: dict = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    pass_env: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    ports: list[str] = field(default_factory=list)
    served: list[int] = field(default_factory=list)
    ulimits: dict = field(default_factory=dict)
    cap_add: list[str] = field(default_factory=list)
    left_to_envctl: list[str] = field(default_factory=list)  # options envctl adds itself, as written
    notes: list[str] = field(default_factory=list)  # what envctl cannot express (also printed as warnings)
    remarks: list[str] = field(default_factory=list)  # how options were read (header comments)


def manifest_from_run(name: str, run: DockerRun, cwd: Path) -> tuple[str, list[str]]:
    """(manifest text, warnings) for `run`. The text is checked to read back as the data it
    was written from. Raises DockerRunError for values Docker would refuse too."""
    draft = Draft()
    _devices(run, draft)
    for option in run.options:
        _option(option, run, draft, cwd)
    _check_no_secret_written(run, draft)
    text = _render(name, run, draft)
    return text, list(draft.notes)


def _devices(run: DockerRun, draft: Draft) -> None:
    families: dict[str, list[int]] = {}
    for option in (o for o in run.options if o.name == "device"):
        # host[:container][:permissions] (`/dev/davinci0:rwm` names permissions, not a path)
        parts = str(option.value).split(":")
        host = parts[0]
        inside = parts[1] if len(parts) > 1 and parts[1].startswith("/") else host
        for kind, pattern in (("npu", r"/dev/davinci([0-9]+)"), ("mlu", r"/dev/cambricon_dev([0-9]+)"),
                              ("cuda", r"/dev/nvidia([0-9]+)")):
            match = re.fullmatch(pattern, host)
            if match:
                families.setdefault(kind, []).append(int(match.group(1)))
                draft.left_to_envctl.append(option.written)
                if inside != host:
                    draft.notes.append(f"docker run {option.written}: envctl passes a card's node at its own path "
                                       f"({host}), not at {inside}")
                break
        else:
            family = _family_node(host)
            if family:
                families.setdefault(family, [])
                draft.left_to_envctl.append(option.written)
            else:
                draft.notes.append(f"docker run {option.written}: envctl passes only the device family's own nodes; "
                                   f"{host} is not one of them")
    runtime = next((str(v) for v in reversed(run.values("runtime"))), None)
    env = _env_values(run)
    if runtime == "ascend" or ("ASCEND_VISIBLE_DEVICES" in env and not families):
        families.setdefault("npu", []).extend(_indices(env.get("ASCEND_VISIBLE_DEVICES"), "ASCEND_VISIBLE_DEVICES"))
        draft.runtime = "ascend"
        if runtime != "ascend":
            draft.remarks.append("ASCEND_VISIBLE_DEVICES without --runtime: the Ascend Docker Runtime is the engine's "
                                 "default runtime there; runtime: ascend names it")
    if runtime == "nvidia":  # the NVIDIA runtime passes NVIDIA_VISIBLE_DEVICES' GPUs (CUDA images: all)
        families.setdefault("cuda", []).extend(_indices(env.get("NVIDIA_VISIBLE_DEVICES"), "NVIDIA_VISIBLE_DEVICES"))
    for gpus in run.values("gpus"):
        families.setdefault("cuda", []).extend(_gpus(str(gpus), draft))
    if len(families) > 1:
        raise DockerRunError(f"the command passes devices of more than one family ({', '.join(sorted(families))}); "
                             f"an envctl environment has one")
    if families:
        draft.kind, cards = next(iter(families.items()))
        draft.cards = list(dict.fromkeys(cards))
    if draft.kind != "cpu" and not draft.cards and draft.card_count is None:
        draft.card_comment = ("no card was named (a privileged container or --gpus all sees every card): "
                              "set cards to a count or indices")


def _family_node(path: str) -> str | None:
    if path in NPU_MANAGER_NODES or path in NPU_SHARED_NODES:
        return "npu"
    if path == MLU_CONTROL_NODE or re.fullmatch(r"/dev/(cambricon_ipcm|commu)[0-9]+", path):
        return "mlu"
    if path in CUDA_NODES:
        return "cuda"
    return None


def _indices(text: str | None, what: str) -> list[int]:
    if not text or text in ("all", "none", "void"):
        return []
    try:
        return list(parse_indices(text))
    except CardsError as problem:
        raise DockerRunError(f"{what}={text}: {problem}") from None


def _gpus(value: str, draft: Draft) -> list[int]:
    """--gpus all | N | device=0,2 | '"device=0,2"' | count=N[,capabilities=...] (Docker's GPU request)."""
    text = value.strip().strip('"').strip("'")
    if text.startswith("device="):
        devices = text[len("device="):]
        if re.fullmatch(r"[0-9]+(,[0-9]+)*", devices):
            return [int(d) for d in devices.split(",")]
        draft.notes.append(f"docker run --gpus {value}: GPUs named by UUID; set device.cards to their indices")
        return []
    count = re.fullmatch(r"(?:count=)?([0-9]+)(,.*)?", text)
    if count or text in ("all", "count=all") or text.startswith(("all,", "count=all,")):
        if count:
            draft.card_count = int(count.group(1))
        return []
    raise DockerRunError(f"--gpus {value}: not a GPU request Docker reads (all, a count, or device=0,2)")


def _env_values(run: DockerRun) -> dict[str, str]:
    values = {}
    for value in run.values("env"):
        key, equals, text = str(value).partition("=")
        if equals:
            values[key] = text
    return values


def _option(option: Option, run: DockerRun, draft: Draft, cwd: Path) -> None:
    name, value = option.name, option.value
    if name in ("device", "gpus"):
        return  # read by _devices
    handlers = {"env": _env, "env-file": _env_file, "volume": _volume, "mount": _mount, "publish": _publish}
    if name in handlers:
        handlers[name](option, run, draft, cwd)
    elif name in ("shm-size", "ipc", "network", "pid", "user", "workdir", "name", "runtime"):
        _container_value(option, draft)
    elif name == "privileged":
        if value:
            draft.container["privileged"] = True
    elif name == "ulimit":
        _ulimit(option, draft)
    elif name == "cap-add":
        for cap in str(value).split(","):
            _checked(option, docker_values.capability, cap)
            draft.cap_add.append(cap)
    elif name in ("rm", "interactive", "tty", "detach", "attach", "sig-proxy", "detach-keys", "quiet",
                  "disable-content-trust", "entrypoint"):
        pass  # how the command is attached and removed: envctl decides (the entrypoint below says how)
    elif name == "pull":
        if value not in ("always", "missing", "never"):
            raise DockerRunError(f"--pull {value}: Docker takes always, missing or never")
        if value == "never":
            draft.notes.append(f"docker run {option.written}: the image was already on that host; envctl pulls it "
                               f"(pull: true) unless you give image.tarball or image.build instead")
    else:
        why = UNEXPRESSED.get(name, "envctl has no setting for it")
        draft.notes.append(f"docker run {option.written}: not in the manifest ({why})")


def _checked(option: Option, check, *value):
    try:
        return check(*value)
    except ValueError as exc:
        raise DockerRunError(f"docker run {option.written}: {exc}") from None


def _container_value(option: Option, draft: Draft) -> None:
    value = str(option.value)
    key = {"shm-size": "shm_size", "name": "name"}.get(option.name, option.name)
    check = {"shm-size": docker_values.size_bytes, "ipc": docker_values.ipc_mode, "network": docker_values.network_mode,
             "pid": docker_values.pid_mode, "user": docker_values.user, "name": docker_values.container_name,
             "runtime": docker_values.runtime}.get(option.name)
    if check:
        _checked(option, check, value)
    if option.name == "workdir" and not posixpath.isabs(value):
        raise DockerRunError(f"docker run {option.written}: the working directory must be an absolute path")
    draft.container[key] = value


def _env(option: Option, run: DockerRun, draft: Draft, cwd: Path) -> None:
    key, equals, value = str(option.value).partition("=")
    if not key:
        raise DockerRunError(f"docker run {option.written}: no variable name")
    if key in VISIBILITY:
        draft.left_to_envctl.append(option.written)
        passed = ",".join(str(i) for i in range(len(draft.cards)))  # what envctl sets: the cards from 0
        if key in ("ASCEND_RT_VISIBLE_DEVICES", "MLU_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES") and equals \
                and value != passed:
            draft.notes.append(f"docker run {option.written}: envctl sets {key} from the cards it passes (0, 1, ... "
                               f"inside the container); to use only some of them, write those host indices in "
                               f"device.cards")
        return
    if not equals or looks_secret(key):
        if key not in draft.pass_env:
            draft.pass_env.append(key)
        if equals and looks_secret(key):
            draft.notes.append(f"docker run -e {key}=***: the value is not written into the manifest; {key} is in "
                               f"container.pass_env, so export it before `envctl up` and `envctl exec`")
        return
    draft.env[key] = value


def _env_file(option: Option, run: DockerRun, draft: Draft, cwd: Path) -> None:
    value = str(option.value)
    if value.startswith(HOME + "/"):
        # ~/x or $HOME/x: kept as ${HOME}/x for every user, read here from this user's home
        written, path = value, Path.home() / value[len(HOME) + 1:]
    else:
        path = (cwd / value).resolve() if not value.startswith("/") else Path(value)
        written = str(path)
    if draft.container.get("env_file"):
        draft.notes.append(f"docker run {option.written}: envctl reads one env file; only the first is kept")
        return
    draft.container["env_file"] = written
    names, problem = read_env_file(path)
    if problem:
        draft.notes.append(f"docker run {option.written}: {problem}; list the variables it holds in "
                           f"container.pass_env")
    for key in names:
        if key not in draft.pass_env and key not in draft.env:
            draft.pass_env.append(key)


def _volume(option: Option, run: DockerRun, draft: Draft, cwd: Path) -> None:
    mount, problem = mount_option(str(option.value), cwd)
    _add_mount(option, mount, problem, draft)


def _mount(option: Option, run: DockerRun, draft: Draft, cwd: Path) -> None:
    fields = dict(part.partition("=")[::2] for part in str(option.value).split(","))
    kind = fields.get("type", "volume")
    source = fields.get("source", fields.get("src"))
    target = fields.get("target", fields.get("destination", fields.get("dst")))
    if kind != "bind":
        _add_mount(option, None, f"a {kind} mount; envctl mounts host paths only", draft)
        return
    if not source or not target:
        missing = " and ".join(k for k, v in (("source", source), ("target", target)) if not v)
        _add_mount(option, None, f"a bind mount without a {missing}, which Docker refuses too", draft)
        return
    if not (source.startswith(("/", "./", "../", "${HOME}")) or source in (".", "..")):
        # A bind's source is always a host path, never a volume's name; the shell expands no ~
        # inside `source=~/x`, and Docker refuses a path that is not absolute there.
        tilde = " (the shell expands no ~ inside --mount)" if source.startswith("~") else ""
        _add_mount(option, None, f"the bind source '{source}' is not an absolute path, which Docker refuses{tilde}; "
                                 f"write the host path", draft)
        return
    readonly = any(k in fields and fields[k] in ("", "1", "true") for k in ("readonly", "ro"))
    mount, problem = mount_option(f"{source}:{target}{':ro' if readonly else ''}", cwd)
    extra = sorted(set(fields) - {"type", "source", "src", "target", "destination", "dst", "readonly", "ro"})
    if extra and not problem:
        draft.notes.append(f"docker run {option.written}: {', '.join(extra)} not kept (envctl mounts host:container[:ro])")
    _add_mount(option, mount, problem, draft)


def _add_mount(option: Option, mount: str | None, problem: str | None, draft: Draft) -> None:
    if problem and mount is None:
        draft.notes.append(f"docker run {option.written}: not in the manifest ({problem})")
        return
    if problem:
        draft.notes.append(f"docker run {option.written}: {problem}")
    host, inside = mount.split(":")[:2]
    covered = _covered_by_device(host, inside, draft.kind)
    if covered:
        draft.left_to_envctl.append(f"{option.written}  ({covered})")
        return
    draft.mounts.append(mount)


def _covered_by_device(host: str, inside: str, kind: str) -> str | None:
    """Why envctl mounts this path itself for the device family, or None."""
    host, inside = host.rstrip("/") or "/", inside.rstrip("/") or "/"
    if host != inside:
        return None
    candidates = {"npu": NPU_MOUNTS, "mlu": MLU_MOUNTS}.get(kind, ())
    for path in candidates:
        if host == path:
            return "mounted read-only by envctl"
        if host.startswith(path + "/"):
            return f"inside {path}, which envctl mounts read-only"
    if kind == "npu" and host == ASCEND_DRIVER:
        return "envctl mounts the driver's lib64, include, tools, topo and version.info read-only"
    return None


def _publish(option: Option, run: DockerRun, draft: Draft, cwd: Path) -> None:
    entries, served, problem = port_entries(str(option.value))
    if problem:
        draft.notes.append(f"docker run {option.written}: {problem}")
    draft.ports += entries
    draft.served += [port for port in served if port not in draft.served]


def _ulimit(option: Option, draft: Draft) -> None:
    name, equals, limits = str(option.value).partition("=")
    if not equals:
        raise DockerRunError(f"docker run {option.written}: write --ulimit name=soft[:hard]")
    soft, hard = _checked(option, docker_values.ulimit, name, limits)
    draft.ulimits[name] = soft if soft == hard else f"{soft}:{hard}"


def _check_no_secret_written(run: DockerRun, draft: Draft) -> None:
    """A credential the host's shell would have expanded, outside `-e NAME=$NAME`, would be
    written into the manifest (or expanded into the container's configuration by envctl's
    ${NAME}): refused. `$NAME` that the command single-quoted is left for the container's shell."""
    written = [*draft.env.values(), *draft.mounts, *draft.container.values(), run.image, *run.command,
               *(str(v) for v in run.values("entrypoint"))]
    for text in written:
        for match in _SECRET_REFERENCE.finditer(str(text)):
            if looks_secret(match.group(1)):
                name = match.group(1)
                raise DockerRunError(f"'{text}' uses ${{{name}}}, which the shell would replace by its value: a credential "
                                     f"is never written into a manifest",
                                     hint=f"pass it with -e {name} (it becomes container.pass_env) and let the "
                                          f"container's shell read it: bash -c '... ${name} ...' (single quotes)")

