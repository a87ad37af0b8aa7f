"""The export: one multi-node run as a cluster engine must run it, format-neutral.

Built from the same plan `up` and `exec --nodes` use (envctl.plan.build_plan), computed for a
cluster node instead of an observed host: the cards are the count the device plugin allocates
(it creates the device nodes, so none are listed), the family's driver host paths are taken as
the vendor's install puts them, artifacts and the workspace are envctl's directories on each node
(`--data-dir`, the layout `envctl fetch --hosts` fills: DATA_DIR/cache, DATA_DIR/workspaces) or a
PersistentVolumeClaim holding that same layout. The node command is the one `exec --nodes`
starts (envctl.multinode.command: the entrypoint's `nodes.run`, else its `run`, through the
manifest's shell, with --set and extra arguments applied by envctl.execute.apply_overrides).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import shlex
from dataclasses import dataclass, field, replace

from envctl.devices import family
from envctl.devices.base import DriverInfo, Snapshot
from envctl import runtime_env
from envctl.errors import EXIT_USAGE, EnvctlError
from envctl.manifest import docker_values
from envctl.manifest.overrides import recorded
from envctl.manifest.interpolate import looks_secret
from envctl.manifest.loader import Loaded
from envctl.nodes.contract import FORBIDDEN
from envctl.nodes.launchers import default_port
from envctl.observe import Observed
from envctl.plan import WORKSPACE_TARGET, Options, Plan, _command, build_plan

DEFAULT_DATA_DIR = "/root/.local/share/envctl"  # envctl's directory on a node reached as root (remote.target)
PRELUDE_DIR = "/opt/envctl/export"  # where the prelude's files are in the container
# Device-plugin resource names (research scale-out.md §1.7): MindCluster's ascend-device-plugin
# names 910A, 910B and 910A3 alike huawei.com/Ascend910 (there is no Ascend910B); Cambricon's
# cambricon-k8s-device-plugin names cambricon.com/mlu in its default mode; NVIDIA's nvidia.com/gpu.
RESOURCES = {"npu": "huawei.com/Ascend910", "mlu": "cambricon.com/mlu", "cuda": "nvidia.com/gpu"}
_DNS_LABEL = re.compile(r"[^a-z0-9-]+")
_DNS_SUBDOMAIN = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True)
class HostPath:
    """A directory or file of each node mounted into the container."""

    source: str  # path on the node (or, with a claim, the path inside the claim)
    target: str  # path in the container
    read_only: bool
    what: str  # "driver", "artifact NAME", "workspace", "manifest mount"
    claim: bool = False  # lives in the PersistentVolumeClaim (source is relative to its root)


@dataclass(frozen=True)
class Image:
    ref: str  # what the pods and containers run (a pulled image: Pulled.reference, pinned by digest)
    baked: bool  # the setup steps are inside it (an `envctl build` image)
    tarball: str | None  # where the manifest's image tarball comes from, if it names one
    pulled: object | None = None  # envctl.export.pulled.Pulled: the nodes pull it from its registry


@dataclass(frozen=True)
class Export:
    """Everything a format writes; the same for every node but the rank the prelude finds."""

    job: str  # the job's name: a DNS-1035 label (63 characters at most)
    manifest: str
    variant: str | None
    entrypoint: str
    launcher: str  # torchrun | torch.distributed.launch | deepspeed | msrun | none
    nnodes: int
    processes: int  # per node (the cards; 1 on CPU), as exec --nodes counts them
    master_port: int
    device_kind: str
    cards: int  # allocated per node by the device plugin
    resources: dict[str, str]  # device-plugin resource → count per node
    image: Image
    shell: tuple[str, ...]  # the manifest's shell, which starts the prelude as it starts every command
    command: tuple[str, ...]  # the node's command, rank-independent (exec --nodes' argv)
    workdir: str | None
    env: dict[str, str]  # container env + the entrypoint's variables (params, --set); no contract values
    host_paths: tuple[HostPath, ...]
    shm_bytes: int | None
    host_network: bool
    host_ipc: bool
    cap_add: tuple[str, ...]
    privileged: bool
    user: str | None
    runtime: str | None
    data_dir: str  # envctl's directory on every node
    claim: str | None  # PersistentVolumeClaim holding DATA_DIR's layout, instead of the node's directory
    artifacts: tuple[tuple[str, str, str], ...]  # (name, where on the node or in the claim, target)
    prerequisites: tuple[str, ...]  # what every node must have that the engine cannot say
    notes: tuple[str, ...] = ()
    timeout: int = 1800  # seconds the prelude waits for the master and the other nodes
    extra: dict = field(default_factory=dict)
    vars: dict = field(default_factory=dict)  # the --var values (name → text) the manifest was resolved with
    passed: tuple[str, ...] = ()  # container.pass_env names: given at run time (envctl.export.passed), never valued here

    @property
    def reference(self) -> str:
        """How the commands a user runs name this environment: NAME[:VARIANT] and its --var
        options, shell-quoted (`qwen:14b+merged --var size=14B`)."""
        name = f"{self.manifest}:{self.variant}" if self.variant else self.manifest
        return " ".join([name] + [f"--var {shlex.quote(f'{k}={v}')}" for k, v in self.vars.items()])

    @property
    def workspace(self) -> HostPath:
        return next(p for p in self.host_paths if p.target == WORKSPACE_TARGET)

    def prelude_line(self) -> str:
        """The shell line that starts the prelude (through the manifest's shell, so that the same
        Python the commands use runs it: a vendor virtualenv, CANN's set_env.sh)."""
        return f'exec "$(command -v python3 || command -v python)" {PRELUDE_DIR}/prelude.py'

    def container_command(self) -> tuple[str, ...]:
        """The container's whole command: the manifest's shell running the prelude line."""
        return _command(self.prelude_line(), list(self.shell))


def job_name(manifest: str, variant: str | None, entrypoint: str) -> str:
    """`<manifest>[-<variant>]-<entrypoint>` as a DNS-1035 label of at most 40 characters, so
    that engine-made names (`<job>-worker-12`, `<job>-node-0`) stay within 63."""
    raw = "-".join(part for part in (manifest, variant, entrypoint) if part)
    name = _DNS_LABEL.sub("-", raw.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)
    if len(name) > 40 or name != raw:
        # Cut or folded: two entrypoints (or variants) of one long-named manifest, or names that
        # differ only in case or punctuation, would get one job name and replace each other's
        # objects on `kubectl apply`; a digest of the whole name keeps them apart.
        digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:6]
        name = f"{name[:33].rstrip('-')}-{digest}" if name else f"envctl-job-{digest}"
    return name


def cluster_observed(loaded: Loaded) -> Observed:
    """A cluster node as the plan sees it: no device nodes (the device plugin creates them), the
    family's driver paths present as the vendor installs them, no engine, an empty cache."""
    fam = family(loaded.manifest.device.kind)
    devices = Snapshot("/", frozenset(), frozenset(fam.mount_candidates))
    return Observed("cluster-node", "/", (), DriverInfo(None, "cluster node", "not observed"), devices)


def _cards(loaded: Loaded, cards: int | None) -> int:
    if loaded.manifest.device.kind == "cpu":
        if cards:
            raise EnvctlError("a cpu environment has no cards: drop --cards", exit_code=EXIT_USAGE)
        return 0
    if cards is not None:
        if cards < 1:  # the device plugin would allocate none (0) or refuse the quantity (-1)
            raise EnvctlError(f"--cards {cards}: give one or more cards per node", exit_code=EXIT_USAGE)
        return cards
    wanted = loaded.manifest.device.cards
    return len(wanted) if isinstance(wanted, list) else (wanted or 1)


def build_export(loaded: Loaded, entrypoint: str, nnodes: int, *, cards: int | None = None,
                 master_port: int | None = None, sets: tuple[str, ...] = (), extra: tuple[str, ...] = (),
                 data_dir: str = DEFAULT_DATA_DIR, claim: str | None = None, image: str | None = None,
                 image_baked: bool = False, timeout: int = 1800, pull_secret: str | None = None,
                 environ=None) -> Export:
    """The export of `entrypoint` on `nnodes` nodes. `pull_secret`: a kubernetes.io/dockerconfigjson
    Secret the pods name in imagePullSecrets (a pulled image); `environ` (default os.environ):
    where the user configuration file, and so the registry mirror the README names, is found.
    container.pass_env values are never read. Raises EnvctlError (exit 2): no such entrypoint,
    one without `nodes:`, fewer than two nodes, a relative data directory, a bad --pull-secret;
    ManifestError for a user configuration file that cannot be read."""
    from envctl import execute

    manifest = loaded.manifest
    declared = manifest.entrypoints.get(entrypoint)
    if declared is None:
        raise EnvctlError(f"{manifest.name} has no entrypoint '{entrypoint}'; entrypoints: "
                          f"{', '.join(manifest.entrypoints) or 'none'}", exit_code=EXIT_USAGE)
    if declared.nodes is None:
        raise EnvctlError(f"entrypoint {entrypoint} of {manifest.name} does not say it can run on several nodes",
                          hint="add nodes: {launcher: torchrun|torch.distributed.launch|deepspeed|msrun|none} to it in "
                               "the manifest (and make its command take the ENVCTL_* node contract)", exit_code=EXIT_USAGE)
    if nnodes < 2:
        raise EnvctlError(f"--nodes {nnodes}: an export for several nodes needs two or more", exit_code=EXIT_USAGE)
    if claim is not None and not _DNS_SUBDOMAIN.fullmatch(claim):
        # A PersistentVolumeClaim's name is a DNS-1123 subdomain (Kubernetes' object names): the
        # pod would be accepted and stay Pending on a claim that cannot exist.
        raise EnvctlError(f"--pvc {claim!r}: not a PersistentVolumeClaim name (lowercase letters, digits, '-' and '.', "
                          "253 characters at most, starting and ending with a letter or digit)", exit_code=EXIT_USAGE)
    if not posixpath.isabs(data_dir):
        raise EnvctlError(f"--data-dir {data_dir}: give an absolute path on the nodes", exit_code=EXIT_USAGE)
    if pull_secret is not None and not _DNS_SUBDOMAIN.fullmatch(pull_secret):
        raise EnvctlError(f"--pull-secret {pull_secret!r}: not a Secret name (lowercase letters, digits, '-' and '.', "
                          "253 characters at most, starting and ending with a letter or digit)", exit_code=EXIT_USAGE)
    count = _cards(loaded, cards)
    node_environ = {"ENVCTL_CACHE": posixpath.join(data_dir, "cache"), "ENVCTL_WORKSPACE": posixpath.join(data_dir, "workspaces")}
    # No run-time environment: the export never reads a container.pass_env value (nor the env
    # file), and this machine's unset names are no warning about the cluster's nodes.
    plan = build_plan(loaded, cluster_observed(loaded), Options(cards=count or None), node_environ,
                      runtime=runtime_env.RuntimeEnv())
    entry = next(e for e in plan.entrypoints if e.name == entrypoint)
    if declared.nodes.run is not None:  # as exec --nodes: the multi-node form of the command
        entry = replace(entry, argv=_command(declared.nodes.run, manifest.container.shell),
                        shell_line=isinstance(declared.nodes.run, str))
    argv, variables = execute.apply_overrides(entry, list(sets), list(extra))
    port = default_port(declared.nodes.launcher, dict(declared.params), master_port)
    env = {**plan.container.env, **variables}
    for name in FORBIDDEN:  # the contract never sets them; launchers do, per process
        env.pop(name, None)
    # A value holding a secret (a token the manifest took from the environment, or a --set of a
    # secret-looking parameter, as plan --nodes hides them) is never written: the pod reads it
    # from a Secret the user creates (a node prerequisite).
    hidden = _secrets(loaded, sets)
    _refuse_secret_in_command(argv, entry.workdir, hidden, entrypoint)
    secret_env = tuple(k for k, v in env.items() if any(secret in v for secret in hidden))
    env = {k: v for k, v in env.items() if k not in secret_env}
    host_paths, artifacts = _host_paths(plan, data_dir, claim)
    built = Export(
        job=job_name(manifest.name, manifest.variant, entrypoint), manifest=manifest.name, variant=manifest.variant,
        vars=recorded(loaded.overrides),
        entrypoint=entrypoint, launcher=declared.nodes.launcher, nnodes=nnodes, processes=count or 1,
        master_port=port, device_kind=manifest.device.kind, cards=count,
        resources={RESOURCES[manifest.device.kind]: str(count)} if count and manifest.device.kind in RESOURCES else {},
        image=_image(plan, image, image_baked, environ),
        passed=tuple(getattr(manifest.container, "pass_env", None) or ()),
        shell=tuple(manifest.container.shell), command=tuple(argv), workdir=entry.workdir, env=env,
        host_paths=host_paths, shm_bytes=docker_values.size_bytes(plan.container.shm_size) if plan.container.shm_size else None,
        host_network=plan.container.network_mode == "host", host_ipc=plan.container.ipc_mode == "host",
        cap_add=tuple(plan.container.cap_add), privileged=plan.container.privileged, user=plan.container.user,
        runtime=plan.container.runtime, data_dir=data_dir, claim=claim, artifacts=artifacts, prerequisites=(),
        notes=tuple(plan.notes), timeout=timeout,
        extra={"device_model": manifest.device.model, "host_pid": plan.container.pid_mode == "host",
               "secret_env": secret_env, "pull_secret": pull_secret, "env_file": _env_file(loaded),
               # host indices of the cards (the shell format's --device): the manifest's list, else the first N
               "card_indices": (tuple(manifest.device.cards) if cards is None and isinstance(manifest.device.cards, list)
                                else tuple(range(count))),
               "options": _options(cards, master_port, sets, extra, data_dir, claim, image, hidden, pull_secret)},
    )
    from envctl.export.prerequisites import prerequisites

    return replace(built, prerequisites=prerequisites(built, plan, loaded))


def _image(plan: Plan, given: str | None, baked: bool, environ) -> Image:
    """The image the nodes run: --image (a baked one, on the nodes already), else the plan's; a
    pulled one by its canonical name and pinned digest, with this machine's registry mirror for
    the README (envctl.export.pulled says why the mirror's name is not what the pods run)."""
    if given:
        return Image(given, baked, None)
    if plan.image.origin != "pull":  # a pulled image names no tarball
        return Image(plan.image.ref, False, plan.image.source if plan.image.origin == "tarball" else None)
    import os

    from envctl import mirror_routes
    from envctl.export.pulled import of_plan

    pulled = of_plan(plan.image.ref, plan.image.digest,
                     mirror_routes.here(os.environ if environ is None else environ).registries)
    return Image(pulled.reference, False, None, pulled)


def _env_file(loaded: Loaded) -> str | None:
    """The manifest's container.env_file as a path on this machine (the README names it)."""
    own = getattr(loaded.manifest.container, "env_file", None)
    return str(loaded.directory / own) if own else None


def _options(cards, master_port, sets, extra, data_dir, claim, image, hidden, pull_secret=None) -> tuple[str, ...]:
    """The options of `envctl export` beyond the reference, entrypoint, nodes and format, as shell
    words (quoted) that reproduce this export, `-- ARGS` last. A --set whose value is a secret is
    written as a reference to the variable it becomes ("$KEY", which the export itself reads from
    the environment), never as the value."""
    words = []
    if cards is not None:
        words += ["--cards", str(cards)]
    if master_port is not None:
        words += ["--master-port", str(master_port)]
    for item in sets:
        key, _sep, value = item.partition("=")
        secret = bool(value) and any(s in value for s in hidden)
        words += ["--set", f'{_quote(key + "=")}"${key.upper()}"' if secret else _quote(item)]
    if data_dir != DEFAULT_DATA_DIR:
        words += ["--data-dir", _quote(data_dir)]
    if claim is not None:
        words += ["--pvc", _quote(claim)]
    if image:
        words += ["--image", _quote(image)]
    if pull_secret:
        words += ["--pull-secret", _quote(pull_secret)]
    if extra:
        words += ["--", *map(_quote, extra)]
    return tuple(words)


def _quote(word: str) -> str:
    """shlex.quote, but a word holding a control character (a newline in a --set value) as bash's
    $'...', so that the command stays one line (it is a comment line in the slurm and shell scripts)."""
    if not any(ord(c) < 32 or ord(c) == 127 for c in word):
        return shlex.quote(word)
    escaped = "".join("\\\\" if c == "\\" else "\\'" if c == "'" else f"\\x{ord(c):02x}" if ord(c) < 32 or ord(c) == 127
                      else c for c in word)
    return f"$'{escaped}'"


def _secrets(loaded: Loaded, sets: tuple[str, ...]) -> frozenset[str]:
    """The values an export never writes: those the manifest took from secret-looking variables
    and the values of --set for a secret-looking parameter (`--set hub_token=...`)."""
    given = {value for key, sep, value in (item.partition("=") for item in sets) if sep and looks_secret(key) and value}
    return frozenset(s for s in loaded.secrets if s) | frozenset(given)


def _refuse_secret_in_command(argv, workdir: str | None, hidden: frozenset[str], entrypoint: str) -> None:
    """The node's command is written whole into every export (node.json, the README, the
    scripts), so a secret expanded into it would be stored in clear. Raises EnvctlError (exit 2)."""
    if any(secret in word for secret in hidden for word in [*argv, workdir or ""]):
        raise EnvctlError(f"the command of entrypoint {entrypoint} holds a secret's value (a variable whose name looks "
                          "secret, expanded by envctl, or an extra argument holding one): an export would write it "
                          "into every file", hint="let the container's shell expand it at run time: write $${NAME} "
                          "(not ${NAME}) in the manifest's command and put NAME in container.env, which the export "
                          "reads from a Secret", exit_code=EXIT_USAGE)


def _host_paths(plan: Plan, data_dir: str, claim: str | None):
    """The plan's mounts as node paths: driver mounts and the manifest's own mounts as they are;
    artifacts and the workspace under DATA_DIR, or inside the claim (relative to its root)."""
    artifact_targets = {a.target: a for a in plan.artifacts if a.host_path}
    driver_targets = {m.target for m in plan.devices.mounts}
    paths, artifacts = [], []
    for mount in plan.container.mounts:
        under_data = mount.source.startswith(data_dir.rstrip("/") + "/")
        source = posixpath.relpath(mount.source, data_dir) if (claim and under_data) else mount.source
        if mount.target == WORKSPACE_TARGET:
            what = "workspace"
        elif mount.target in artifact_targets:
            what = f"artifact {artifact_targets[mount.target].name}"
            artifacts.append((artifact_targets[mount.target].name, source, mount.target))
        elif mount.target in driver_targets:
            what = "driver"
        else:
            what = "manifest mount"
        paths.append(HostPath(source, mount.target, mount.read_only, what, bool(claim and under_data)))
    return tuple(paths), tuple(artifacts)
