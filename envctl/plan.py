"""The plan: every step `up` will take on a host, fully resolved, each with its action and why,
computed without side effects.

`plan` and `up --dry-run` render a Plan; `up` executes the same Plan object by dispatching on
each step's action (envctl/apply.py) and never re-derives anything, so what a user reviewed is
exactly what runs. The actions are decided in envctl/decisions.py from what observe saw.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from envctl import decisions, local_sources
from envctl.artifacts.sources import artifact_key
from envctl.cards import Cards
from envctl.containers import ContainerSpec
from envctl.devices import family
from envctl.devices.base import Mount, Selection
from envctl.manifest.loader import Loaded, build_context
from envctl.observe import Observed
from envctl.paths import WORKSPACE_TARGET, cache_dir, workspace_dir
from envctl.readiness import Readiness, of_entrypoint
from envctl.versions import satisfies



@dataclass(frozen=True)
class Options:
    cards: Cards | None = None  # --cards or the inventory's: a count or indices, overriding device.cards
    skip_driver_check: bool = False
    force: bool = False  # recreate the container even while work runs in it (--force)
    share_cards: bool = False  # take cards asked for by index even when another container holds them
    env_files: tuple[str, ...] = ()  # --env-file: values for container.pass_env (envctl/runtime_env.py)


@dataclass(frozen=True)
class CheckDriver:
    kind: str
    required: str | None
    found: str | None
    source: str
    status: str  # ok | mismatch | unknown | skipped | not-required


@dataclass(frozen=True)
class EnsureImage:
    ref: str
    expected_id: str | None
    origin: str  # tarball | build | present
    source: str | None  # tarball source as shown (credentials redacted), or build context
    sha256: str | None
    obtain: str | None
    present: bool | None
    action: str = "unknown"  # present | tag | load | download+load | build | pull | push | missing | unknown
    reason: str = ""
    bytes: int | None = None  # the tarball's size, or a pull's compressed layers, when known
    digest: str | None = None  # pull: the pinned manifest digest (image.ref's @sha256:, else the lock's)
    mirror: str | None = None  # pull: the mirror's repository prefix it goes through
    mirror_from: str | None = None  # ... and where that was configured (as an artifact's mirror_from)


@dataclass(frozen=True)
class FetchArtifact:
    name: str
    kind: str
    source: str | None
    revision: str | None
    cache_path: str | None
    host_path: str | None  # what is mounted: the cache entry (ro) or a workspace copy (rw)
    target: str
    mode: str
    sha256: str | None
    subpath: str | None
    include: tuple[str, ...]
    extract: bool
    obtain: str | None
    action: str = "unknown"  # cached | fetch | push | fetch+push | copy | fetch+copy | missing
    reason: str = ""
    bytes: int | None = None  # what is fetched or pushed, when known (the lock file, the cache record)
    # The mirror it is downloaded through, when one applies (hub endpoint or rewritten git URL),
    # and where that was set ("FILE:LINE", "environment variable HF_ENDPOINT"): envctl.mirror_routes.
    mirror: str | None = None
    mirror_from: str | None = None


@dataclass(frozen=True)
class RunSetup:
    index: int
    name: str
    argv: tuple[str, ...]
    workdir: str | None
    env: dict[str, str]
    uses: tuple[str, ...]
    step_hash: str  # changes when this step or anything before it changes
    action: str = "unknown"  # skip | run | unknown
    reason: str = ""


@dataclass(frozen=True)
class Entrypoint:
    name: str
    description: str | None
    argv: tuple[str, ...]
    workdir: str | None
    env: dict[str, str]
    params: dict[str, str]
    cards: tuple[int, ...]
    ports: tuple[int, ...]
    interactive: bool
    shell_line: bool  # run: was a line of shell (argv ends with it), not an argument list
    problem: str | None = None  # why it cannot run in this environment (it asks for cards it lacks)
    # A server's `ready:` (envctl.readiness.Readiness: port, http path, timeout in seconds): when
    # `envctl exec NAME --detach` returns. None: it declares none (exec --detach returns once started).
    ready: Readiness | None = None


@dataclass(frozen=True)
class ContainerAction:
    action: str  # create | recreate | start | unchanged | unknown
    reason: str
    changes: tuple[str, ...] = ()  # recreate: the fields that changed
    stops: tuple = ()  # recreate with --force: the running work it kills (envctl/runs.py Run); up kills no other


@dataclass(frozen=True)
class World:
    """What the decisions rest on, as observed: `up` checks it again right before it acts and
    stops when it changed (another `up`, a container removed, an image re-tagged)."""

    engine: bool = False  # the engine was asked
    image_id: str | None = None  # what the image ref named
    container_id: str | None = None
    container_status: str | None = None
    container_hash: str | None = None  # its config-hash label
    markers: tuple[str, ...] = ()  # setup marker files in it
    card_holders: tuple[str, ...] = ()  # other containers holding any of the chosen cards (shared on purpose)


@dataclass(frozen=True)
class Plan:
    manifest: str
    variant: str | None
    manifest_file: str
    host: str
    host_root: str
    driver: CheckDriver
    devices: Selection
    image: EnsureImage
    artifacts: tuple[FetchArtifact, ...]
    container: ContainerSpec
    setup: tuple[RunSetup, ...]
    entrypoints: tuple[Entrypoint, ...]
    blockers: tuple[str, ...]  # what stops `up` on this host as it is
    needs: tuple[str, ...]  # what a user must provide (files without a public source)
    notes: tuple[str, ...]
    baked: str | None = None  # an image `envctl build` made with the setup inside, used instead
    container_action: ContainerAction = ContainerAction("unknown", "the engine was not asked")
    world: World = World()
    passed: tuple = ()  # container.pass_env: runtime_env.PassedVariable (names and whether set, never values)
    secrets: frozenset[str] = field(default_factory=frozenset, repr=False, compare=False)
    # The mark `up` leaves in the workspace and on a container it creates (paths.WORKSPACE_MARK):
    # the existing container's, else the container name's (workspace_mark).
    workspace_mark: str = field(default="", repr=False, compare=False)

    @property
    def ready(self) -> bool:
        """`up` can proceed as planned: nothing blocks it, nothing is left to provide (`needs`),
        and the engine was asked (without it the image, container and setup are undecided)."""
        return not self.blockers and not self.needs and self.world.engine

    @property
    def workspace(self) -> str:
        """The host directory mounted at WORKSPACE_TARGET (logs, outputs, writable copies)."""
        return next(m.source for m in self.container.mounts if m.target == WORKSPACE_TARGET)


def _command(run: str | list[str], shell: list[str]) -> tuple[str, ...]:
    return tuple(run) if isinstance(run, list) else (*shell, run)


def _check_driver(loaded: Loaded, observed: Observed, options: Options) -> CheckDriver:
    device = loaded.manifest.device
    found = observed.driver
    if device.kind == "cpu" or not device.driver:
        status = "not-required"
    elif options.skip_driver_check:
        status = "skipped"
    elif found.version is None:
        status = "unknown"
    else:
        verdict = satisfies(found.version, device.driver)
        status = "unknown" if verdict is None else ("ok" if verdict else "mismatch")
    return CheckDriver(device.kind, device.driver, found.version, found.source, status)


def _driver_blocker(check: CheckDriver, observed: Observed, manifest_name: str) -> str | None:
    if check.status == "mismatch":
        return (
            f"host driver v{check.found} does not satisfy {check.required} required by {manifest_name} "
            f"(read from {check.source}); install a matching driver, or pass --skip-driver-check to try anyway"
        )
    if check.status == "unknown":
        why = observed.driver.problem or f"'{check.found}' cannot be compared"
        return f"cannot tell the host driver version ({why}); pass --skip-driver-check to go on without it"
    return None


def _artifact(name: str, loaded: Loaded, cache: Path, workspace: Path) -> FetchArtifact:
    artifact = loaded.manifest.artifacts[name]
    source = loaded.sources.get(name)
    cache_path = str(cache / "artifacts" / artifact_key(source, artifact.subpath, artifact.include)) if source else None
    if artifact.mode == "rw":
        host_path = str(workspace / "artifacts" / name)
    elif cache_path and artifact.subpath:
        host_path = posixpath.join(cache_path, artifact.subpath.strip("/"))  # only that directory is placed
    else:
        host_path = cache_path
    return FetchArtifact(
        name=name,
        kind=source.kind if source else "unknown",
        source=source.display if source else None,
        revision=source.revision if source else None,
        cache_path=cache_path,
        host_path=host_path,
        target=loaded.artifact_target(name),
        mode=artifact.mode,
        sha256=artifact.sha256,
        subpath=artifact.subpath,
        include=tuple(artifact.include),
        extract=artifact.extract,
        obtain=artifact.obtain,
    )


def _setup_steps(loaded: Loaded, image: EnsureImage, artifacts: dict[str, FetchArtifact]) -> tuple[RunSetup, ...]:
    manifest = loaded.manifest
    steps = []
    # The image is not part of a step's identity: a container whose image changed is recreated
    # (its image-id label) and runs every step, so only what names the same image can reach
    # here, and it must not re-run steps: `envctl lock` recording the tarball's sha256, or an
    # image.id pin of the image already run, re-ran every setup step. The seed is the one an
    # unpinned, unlocked image always had, so that existing containers keep their markers.
    previous = hashlib.sha256(json.dumps([image.ref, None, None]).encode()).hexdigest()
    for index, step in enumerate(manifest.setup):
        argv = _command(step.run, manifest.container.shell)
        used = [[a.source, a.revision, a.sha256, a.target] for a in (artifacts[n] for n in step.uses)]
        material = json.dumps([previous, argv, step.workdir, step.env, used], sort_keys=True, ensure_ascii=False)
        previous = hashlib.sha256(material.encode()).hexdigest()
        steps.append(RunSetup(index, step.name, argv, step.workdir, dict(step.env), tuple(step.uses), previous))
    return tuple(steps)


def _param_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _entrypoints(loaded: Loaded, selection: Selection) -> tuple[Entrypoint, ...]:
    manifest = loaded.manifest
    fam = family(manifest.device.kind)
    out = []
    for name, entry in manifest.entrypoints.items():
        params = {key.upper(): _param_text(value) for key, value in entry.params.items()}
        env = {**entry.env, **params}
        # The entrypoint's own `cards` narrows the environment's (numbered from 0 inside).
        if entry.cards is None:
            cards = tuple(range(len(selection.cards)))
        elif isinstance(entry.cards, int):
            cards = tuple(range(entry.cards))
        else:
            cards = tuple(entry.cards)
        if fam.visibility_variable and entry.cards is not None:
            env[fam.visibility_variable] = ",".join(map(str, cards))
        # Launchers (torchrun, deepspeed, msrun) take their process count from the selection.
        env["ENVCTL_NUM_CARDS"] = str(len(cards))
        problem = None
        if manifest.device.kind != "cpu" and entry.cards is not None and (not selection.cards or max(cards) >= len(selection.cards)):
            # Visibility would name devices the container does not have (the environment's are
            # renumbered from 0): refused when it is run, not silently started on fewer.
            problem = (f"entrypoint {name} asks for cards {','.join(map(str, cards))} (numbered from 0 in the container), "
                       f"but the environment has {len(selection.cards)}")
        out.append(
            Entrypoint(
                name, entry.description, _command(entry.run, manifest.container.shell),
                entry.workdir or manifest.container.workdir, env, params, cards, tuple(entry.ports), entry.interactive,
                isinstance(entry.run, str), problem, of_entrypoint(entry),
            )
        )
    return tuple(out)


def build_plan(loaded: Loaded, observed: Observed, options: Options = Options(), environ: Mapping[str, str] | None = None,
               runtime=None) -> Plan:
    """Pure: the same inputs always give the same plan. `runtime`: the run-time environment
    (envctl/runtime_env.py RuntimeEnv, resolved by the caller); by default resolved from
    `environ` and options.env_files. Only its names and states enter the plan."""
    from envctl import runtime_env

    manifest = loaded.manifest
    if runtime is None:
        runtime = runtime_env.for_manifest(loaded, options.env_files, environ)
    fam = family(manifest.device.kind)
    blockers: list[str] = []
    needs: list[str] = []

    driver = _check_driver(loaded, observed, options)
    blocker = _driver_blocker(driver, observed, manifest.name)
    if blocker:
        blockers.append(blocker)

    wanted = options.cards if options.cards is not None else manifest.device.cards
    why, card_warnings = "", ()
    if manifest.device.kind == "cpu":
        cards, card_problems = [], (["a cpu environment has no cards: drop --cards"] if options.cards else [])
    else:
        choice = _choose_cards(fam, manifest, observed, wanted, options)
        cards, card_problems, why, card_warnings = list(choice.cards), list(choice.problems), choice.why, choice.warnings
    blockers += card_problems
    selection = dataclasses.replace(fam.select(observed.devices, cards, manifest.container.runtime), why=why)
    blockers += list(selection.problems)

    image = _image_step(loaded, observed)

    cache = cache_dir(environ)
    container_name = manifest.container_name
    workspace = workspace_dir(container_name, environ)
    artifacts = {name: _artifact(name, loaded, cache, workspace) for name in manifest.artifacts}
    for artifact in artifacts.values():
        if artifact.source is None:
            needs.append(f"artifact {artifact.name}: {artifact.obtain}")

    if observed.workspace_in_the_way:  # up's mkdir would fail there, after acting on the rest
        blockers.append(f"workspace {observed.workspace_in_the_way} is not a directory on {observed.host}: move it "
                        "away (up makes the directory)")
    for missing in sorted(observed.missing_mount_sources):
        blockers.append(f"mount source {missing} does not exist on {observed.host}")

    setup = _setup_steps(loaded, image, artifacts)
    base = observed.image_config or observed.image_id  # the config digest: one key for both image stores
    baked = observed.baked.get(bake_key(base, setup)) if base else None
    spec = _container_spec(loaded, selection, artifacts, workspace, baked)

    # The decisions: what up does to each thing, and why.
    chosen_for = [(name, a.cache_path, a.mode,
                   decisions.artifact(name, loaded.sources[name].kind if loaded.sources.get(name) else None, a.mode,
                                      observed))
                  for name, a in artifacts.items()]
    artifacts = {name: _decided(artifacts[name], d)
                 for (name, *_), d in zip(chosen_for, decisions.one_fetch_per_source(chosen_for))}
    image = _decided(image, decisions.image(image.origin, image.source, baked, observed))
    if image.source is None and image.origin == "tarball" and image.action not in ("present", "tag"):
        # Asked, the engine said whether it holds the image: one already there needs no tarball.
        unasked = "" if observed.engine is not None else " (unless the engine has the image: it could not be asked)"
        needs.insert(0, f"image {image.ref}: {image.obtain}{unasked}")
    needs += local_sources.needs(loaded, image, observed)
    if image.action == "missing" and image.origin == "present":  # (a tarball without source is in `needs`)
        how = image.obtain or "give image.tarball.source (a docker save tarball) or image.build in the manifest, or pull it from its registry (image.pull: true)"
        blockers.append(f"image {image.ref}: {image.reason}; {how}")
    replaced = tuple(name for name, a in artifacts.items() if a.action not in ("cached", "missing", "unknown"))
    chosen = decisions.container(spec, decisions.wanted_image_id(image, baked, observed), observed, replaced)
    running = observed.container.runs if observed.container is not None else ()
    stops = ()
    if chosen.action in ("recreate", "restart") and running:  # running work is never killed by surprise
        if options.force:
            # Without the start times the engine's host derives from elapsed seconds (they move by
            # a second between two observations): a saved plan (`up --plan`) compares equal.
            stops = tuple(r if r.kind == "entrypoint" else dataclasses.replace(r, since=None) for r in running)
        else:
            from envctl.runs import blocker  # (tarfile, uuid, socket: only such a plan needs them)

            blockers.append(blocker(spec.name, running, "recreating" if chosen.action == "recreate" else "restarting"))
    steps = decisions.setup(setup, chosen, baked, observed)
    setup = tuple(dataclasses.replace(s, action=d.action, reason=d.reason) for s, d in zip(setup, steps))
    blockers += decisions.setup_in_progress(setup, chosen, observed)
    world = _world(observed, selection.cards, manifest.container_name)
    return Plan(
        manifest=manifest.name,
        variant=manifest.variant,
        manifest_file=str(loaded.file),
        host=observed.host,
        host_root=observed.root,
        driver=driver,
        devices=selection,
        image=image,
        artifacts=tuple(artifacts.values()),
        container=spec,
        setup=setup,
        entrypoints=_entrypoints(loaded, selection),
        blockers=tuple(blockers),
        needs=tuple(needs),
        notes=tuple(manifest.notes) + tuple(f"warning: {w}" for w in (*card_warnings, *runtime.warnings)),
        baked=baked,
        container_action=ContainerAction(chosen.action, chosen.reason, chosen.changes, stops),
        world=world,
        passed=runtime.passed,
        secrets=loaded.secrets | runtime.secrets,
        workspace_mark=workspace_mark(observed, manifest.container_name),
    )


def workspace_mark(observed: Observed, container_name: str) -> str:
    """The mark for the workspace (paths.WORKSPACE_MARK, 32 hex digits): the one on the
    existing container (its label: a restart after the workspace was made again mounts a
    directory holding it again), else one derived from the container's name. The same for two
    `up`s at once of one environment: neither leaves a mark the other's container lacks. What
    it tells apart is a directory envctl marked from one made by anything else, never envctl's
    own two."""
    from envctl.containers import LABEL_WORKSPACE_MARK
    from envctl.observe import is_mark

    current = observed.container
    label = current.labels.get(LABEL_WORKSPACE_MARK, "") if current is not None else ""
    if is_mark(label):
        return label
    return hashlib.sha256(f"envctl workspace\0{container_name}".encode()).hexdigest()[:32]


def _choose_cards(fam, manifest, observed: Observed, wanted, options: Options):
    """envctl/card_choice.py's decision from what was observed: the cards present, who holds
    them, the environment's own container and its cards, the vendor topology."""
    from envctl.card_choice import choose, topology
    from envctl.cards import CardsError, parse_indices
    from envctl.containers import LABEL_CARDS

    own_cards: tuple[int, ...] = ()
    if observed.container is not None and observed.container.labels.get(LABEL_CARDS):
        try:
            own_cards = parse_indices(observed.container.labels[LABEL_CARDS])
        except CardsError:
            own_cards = ()  # not envctl's writing: chosen afresh (recreate says what changed)
    where = f"under {observed.root}" if observed.root != "/" else "on this host"
    reading = observed.reading
    tool = reading.tool.split()[0].rsplit("/", 1)[-1] if reading is not None else "the vendor tool"
    return choose(fam.label, tuple(observed.cards), wanted, observed.holders, manifest.container_name, own_cards,
                  options.share_cards, topology(manifest.device.kind, reading, tuple(observed.cards)), where,
                  observed.engine_problem or "the engine was not asked",
                  reading.unhealthy() if reading is not None else None, tool)


def _decided(step, decision: decisions.Decision):
    return dataclasses.replace(step, action=decision.action, reason=decision.reason, bytes=decision.bytes)


def _world(observed: Observed, cards: tuple[int, ...], own: str) -> World:
    from envctl.containers import LABEL_HASH

    seen = observed.engine
    if seen is None:
        return World()
    sharing = tuple(sorted({h.container for h in observed.holders or () if h.holds and h.container != own
                            and set(h.cards) & set(cards)}))
    current = seen.container
    if current is None:
        return World(True, seen.image_id, card_holders=sharing)
    return World(True, seen.image_id, current.id, current.status, current.labels.get(LABEL_HASH), tuple(sorted(seen.markers)),
                 sharing)


def bake_key(base_image_id: str, setup: tuple[RunSetup, ...]) -> str:
    """What a baked image is made of: the base image (its config digest, which both of Docker's
    image stores agree on) and every setup step (whose chained hash covers the artifacts they
    use). The same inputs give the same key, and so the same tag."""
    last = setup[-1].step_hash if setup else ""
    return hashlib.sha256(f"{base_image_id}|{last}".encode()).hexdigest()[:16]


def _image_step(loaded: Loaded, observed: Observed) -> EnsureImage:
    image = loaded.manifest.image
    if image.build is not None:
        context = build_context(image.build, loaded.directory)
        return EnsureImage(image.ref, image.id, "build", str(context), None, None, observed.image_present)
    if image.tarball is not None:
        source = loaded.image_source.display if loaded.image_source else None
        # A digest in the manifest wins; otherwise the one `envctl lock` recorded.
        sha256 = image.tarball.sha256 or (loaded.image_lock.files[0].sha256 if loaded.image_lock else None)
        return EnsureImage(image.ref, image.id, "tarball", source, sha256, image.tarball.obtain, observed.image_present)
    if image.pull:
        from envctl.registry_plan import pinned_image, pulled_from

        pinned, _ = pinned_image(image.ref, loaded.image_lock)
        return EnsureImage(pinned.tagged, image.id, "pull", pulled_from(observed.registry, pinned), None, None,
                           observed.image_present, digest=pinned.digest,
                           mirror=_mirror(observed.registry)[0], mirror_from=_mirror(observed.registry)[1])
    return EnsureImage(image.ref, image.id, "present", None, None, None, observed.image_present)


def _mirror(view) -> tuple[str | None, str | None]:
    mirror = view.mirror if view is not None else None
    return (mirror.prefix, mirror.origin) if mirror else (None, None)


def _manifest_mount(spec: str, base: Path) -> Mount:
    parts = spec.split(":")
    source = parts[0] if posixpath.isabs(parts[0]) else str((base / parts[0]).resolve())
    return Mount(source, parts[1], read_only=(len(parts) == 3 and parts[2] == "ro"))


def run_name(ref: str) -> str:
    """What a container of a pulled image runs: registry/repository:tag (Docker tags no image with a digest)."""
    from envctl.registry_refs import parse

    return parse(ref).tagged


def recorded(overrides: dict) -> dict[str, str]:
    from envctl.manifest.overrides import recorded as text_of

    return text_of(overrides)


def _container_spec(loaded: Loaded, selection: Selection, artifacts: dict[str, FetchArtifact], workspace: Path,
                    baked: str | None = None) -> ContainerSpec:
    manifest = loaded.manifest
    container = manifest.container
    mounts = list(selection.mounts)
    mounts += [_manifest_mount(m, loaded.directory) for m in container.mounts]
    mounts += [Mount(a.host_path, a.target, a.mode == "ro") for a in artifacts.values() if a.host_path]
    mounts.append(Mount(str(workspace), WORKSPACE_TARGET, read_only=False))
    # Device selection decides visibility: it reflects --cards, which a manifest value must not undo.
    env = {**container.env, **selection.env, "ENVCTL_ENV": manifest.container_name}
    return ContainerSpec(
        name=manifest.container_name,
        image=baked or (run_name(manifest.image.ref) if manifest.image.pull else manifest.image.ref),
        manifest=manifest.name,
        variant=manifest.variant,
        vars=recorded(loaded.overrides),
        cards=selection.cards,
        devices=selection.nodes,
        mounts=tuple(mounts),
        env=env,
        shm_size=container.shm_size,
        ipc_mode=container.ipc,
        network_mode=container.network,
        pid_mode=container.pid,
        privileged=container.privileged,
        runtime=container.runtime,
        user=container.user,
        working_dir=container.workdir,
        ulimits=dict(container.ulimits),
        cap_add=tuple(container.cap_add),
        ports=tuple(container.ports),
    )
