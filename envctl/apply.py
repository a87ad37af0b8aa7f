"""`up`: execute a Plan on a host (a WritableHost: this machine or an SSH host, one body for
both), step by step, by dispatching on each step's action.

Nothing is decided here: the artifact, image, container and setup actions were decided by
build_plan (envctl/decisions.py). Before each step acts, what the plan rested on is checked
again; when it changed (another `up`, a container removed, an image re-tagged, a cache pruned),
`up` stops with WorldChanged and says what changed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from envctl import runtime_env
from envctl.apply_reads import Reads
from envctl.errors import EnvctlError, FetchError, HostNotReady, WorldChanged
from envctl.lifecycle import ContainerOutcome, execute
from envctl.observe_engine import read_markers
from envctl.setup_steps import SetupFailed, StepOutcome, exec_body, run_planned

if TYPE_CHECKING:  # annotations only: an `up` with nothing to fetch or load never imports these (issue 14)
    from envctl.artifacts.cache import Cache
    from envctl.hosts.base import WritableHost
    from envctl.image_step import ImageOutcome, Progress
    from envctl.manifest.loader import Loaded
    from envctl.plan import Plan


@dataclass(frozen=True)
class Report:
    plan: Plan
    image: ImageOutcome
    container: ContainerOutcome
    setup: tuple[StepOutcome, ...]
    executed: tuple[tuple[str, str, str], ...] = ()  # (kind, name, action) in the plan's words


def check_ready(plan: Plan) -> None:
    """Refuse to start when the plan says the host is not ready or an artifact has no source."""
    problems = list(plan.blockers)
    for artifact in plan.artifacts:
        if artifact.source is None:
            problems.append(f"artifact {artifact.name} has no source: {artifact.obtain}")
    if plan.image.action == "missing" and plan.image.origin == "tarball":
        problems.append(f"image {plan.image.ref}: {plan.image.reason}: {plan.image.obtain}")
    if plan.container_action.action == "unknown":
        problems.append(f"the engine was not asked when the plan was made ({plan.container_action.reason})")
    if problems:
        raise HostNotReady(
            f"{plan.manifest} cannot start on {plan.host}:\n" + "\n".join(f"- {p}" for p in problems),
            hint=f"`envctl plan {plan.manifest}` shows the whole plan",
        )


def local_tarball(client, loaded: Loaded, plan: Plan, cache: Cache, progress, offline: bool):
    """The image tarball as a local file. One behind http(s)/ftp is downloaded into the cache
    (resumable, verified) only when it is needed: not when the image is already on the engine
    and nothing pins another ID."""
    from envctl.artifacts.sources import Source  # with the downloader below: only an image tarball needs them

    source = loaded.image_source
    if source is None or source.kind == "file":
        return source
    expected = plan.image.sha256
    if expected and cache.has_blob(expected):
        return Source("file", str(cache.blob(expected)))
    if plan.image.expected_id is None:
        from docker.errors import ImageNotFound

        try:
            client.images.get(plan.image.ref)
            return None  # present, and nothing to compare it with short of downloading GBs
        except ImageNotFound:
            pass
    if offline:
        raise FetchError(f"image tarball {source.display} is not in the cache and --offline was given")
    # One download of a tarball at a time, as for artifacts: two `up`s (or two hosts of one
    # `up --hosts`) would otherwise append to the same partial file.
    with cache.locked(f"image-tarball:{source.display}"):
        if expected and cache.has_blob(expected):  # the other one finished it meanwhile
            return Source("file", str(cache.blob(expected)))
        if source.kind == "ftp":
            from envctl.artifacts.ftp import fetch_ftp

            sha, _ = fetch_ftp(source, expected, cache)
        else:
            # requests, through the downloader: imported only when a tarball is downloaded
            from envctl.artifacts.download import Downloader, RemoteFile
            from envctl.artifacts.fetch import with_credentials

            url, auth = with_credentials(source)
            sha, _ = Downloader(cache, progress=progress).fetch(RemoteFile("", url, source.display, None, expected, auth=auth))
        cache.remember_source(source.identity(), sha)  # so that `cache gc` keeps it for this manifest
    return Source("file", str(cache.blob(sha)))


def prepare(host: WritableHost, loaded: Loaded, plan: Plan, echo: Callable[[str], None], progress: Progress | None = None,
            offline: bool = False, executed: list | None = None, reads: Reads | None = None) -> ImageOutcome:
    """Everything before the container, on any host: readiness, the artifacts, the workspace,
    the image, each as the plan says (envctl/artifact_steps.py, envctl/image_actions.py).
    `reads`: the checks' reads started early (envctl/apply_reads.py started)."""
    from envctl import artifact_steps, image_actions

    check_ready(plan)
    if artifact_steps.pushes(host, plan):
        done, outcome, word = _pushing_beside_the_image(host, loaded, plan, echo, progress, offline)
    else:
        done = artifact_steps.place(host, loaded, plan, echo, progress, offline)
        # The workspace is made while the image step runs: on an SSH host each is a round trip or
        # more, and neither needs the other (the container, which mounts the workspace, is created
        # only after both ended). A failure of either is raised here, the image step's first.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            made = pool.submit(host.make_workspace, plan.workspace, plan.workspace_mark)
            try:
                outcome, word = image_actions.ensure(host, loaded, plan, artifact_steps.local_cache(host), echo,
                                                     progress, offline, reads.image if reads is not None else None)
            finally:
                failed = made.exception()  # waits: the directory is there (or failed) before anything goes on
            if failed is not None:
                raise failed
    if executed is not None:
        executed += done
        executed.append(("image", plan.image.ref, word))
    return outcome


def _pushing_beside_the_image(host: WritableHost, loaded: Loaded, plan: Plan, echo: Callable[[str], None],
                              progress: Progress | None, offline: bool) -> tuple[list, ImageOutcome, str]:
    """The artifact steps, the image step and the workspace at once, once the artifacts' check
    passed (nothing acts before it): sending artifacts to an SSH host and sending or loading
    its image are each bound by round trips and the SSH channel's window, not by this machine,
    so side by side they take about the longer one's time, not the sum (a fresh `up` of
    bench_remote's environment at 50 ms: its 16 MiB artifact and its image tarball). The image
    step's lines are said after the artifacts', as one after the other would say them (its
    progress bar shows at once). Every step ends before anything is raised: the artifacts'
    failure first, then the image step's, then the workspace's. Two pushes of the same bytes
    (an artifact file that is also the image tarball) take turns (transfer.push_then).
    Returns (the artifacts' executed steps, the image's outcome, the image's word)."""
    from concurrent.futures import ThreadPoolExecutor

    from envctl import artifact_steps, image_actions

    checked = artifact_steps.check(host, loaded, plan)
    said: list[str] = []
    with ThreadPoolExecutor(2) as pool:
        image = pool.submit(image_actions.ensure, host, loaded, plan, artifact_steps.local_cache(host), said.append,
                            progress, offline, None)
        made = pool.submit(host.make_workspace, plan.workspace, plan.workspace_mark)
        try:
            done = artifact_steps.place(host, loaded, plan, echo, progress, offline, checked)
        finally:
            failures = [image.exception(), made.exception()]  # waits for both (Ctrl-C reached their ssh commands too)
            for line in said:
                echo(line)
    for failed in failures:
        if failed is not None:
            raise failed
    outcome, word = image.result()
    return done, outcome, word


def up(host: WritableHost, loaded: Loaded, plan: Plan, echo: Callable[[str], None], progress: Progress | None = None,
       offline: bool = False, runtime=None) -> Report:
    """Execute the plan on `host` (this machine or an SSH host, one body for both): each step's
    action, nothing else; stops with WorldChanged when what the plan rested on changed. The
    report lists what was executed, in the plan's words. `runtime`: the run-time-only variables
    for the setup steps (envctl/runtime_env.py RuntimeEnv; None: the manifest's own, without
    --env-file)."""
    from envctl import apply_reads
    from envctl.card_lock import hold

    executed: list = []
    for note in plan.notes:
        if note.startswith("warning: "):  # the plan's warnings (an unhealthy card asked for by index)
            echo(f"warning    {note.removeprefix('warning: ')}")
    check_ready(plan)  # before any read starts: a plan that cannot start asks nothing
    # The engine's reads the checks compare with the plan go out now, together, while the
    # artifacts' check (the first step's, an ssh session on an SSH host) runs on this thread:
    # each a round trip there, none waiting for another (issue 14; envctl/apply_reads.py).
    with apply_reads.started(host, plan) as reads:
        try:
            image = prepare(host, loaded, plan, echo, progress, offline, executed, reads)
        finally:
            _discard_sessions_ahead(host)
        report = start(host.engine(), loaded, plan, image, Path(host.lock_dir), echo, executed, lambda: hold(host, echo),
                       runtime, reads)
    note_container = getattr(host, "note_container", None)  # an SSH host's: the next plan's first round asks by it
    if note_container is not None:
        note_container(plan.container.name, report.container.container_id)
    return report


def _discard_sessions_ahead(host: WritableHost) -> None:
    """The SSH sessions opened for pushes while `up` planned and not taken (the pushes are done,
    or were not needed): ended now, not at exit (envctl/remote/standby.py discard)."""
    connection = getattr(host, "connection", None)
    if connection is not None:
        from envctl.remote import standby

        standby.discard(connection)


def start(client, loaded: Loaded, plan: Plan, image: ImageOutcome, lock_dir: Path, echo: Callable[[str], None],
          executed: list | None = None, card_lock: Callable | None = None, runtime=None,
          reads: Reads | None = None) -> Report:
    """The container and its setup steps, as the plan decided, once the image is there.
    `card_lock()`: the host-wide lock (envctl/card_lock.py hold) under which a container that
    takes cards is created or started, after checking that nobody took its cards since the plan.
    `runtime`: as for `up`; its values reach the steps' processes only, never the container.
    `reads`: as for `prepare` (the container's listing and the markers, when read early)."""
    executed = [] if executed is None else executed
    reads = reads if reads is not None else Reads()

    def before_remove(current) -> None:  # running work is killed only when the plan said so (--force)
        from envctl.runs import refuse_unplanned

        refuse_unplanned(client, current, plan.container.name, plan.container_action.stops,
                         "restarting" if plan.container_action.action == "restart" else "recreating")

    action = plan.container_action.action
    runtime = runtime if runtime is not None else runtime_env.for_manifest(loaded)
    # The first step to run, on a container made now: its exec made right behind the container's
    # start (lifecycle._start_then_exec), one round trip less on an SSH host.
    first = next((step for step in plan.setup if step.action == "run"), None) if not plan.baked else None
    then_exec = (lambda api, container_id: exec_body(api, container_id, first, runtime.values)) \
        if first is not None and action in ("create", "recreate") else None
    try:
        if card_lock is not None and plan.devices.cards and action in ("create", "recreate", "start"):
            from envctl.card_lock import check_still_free

            with card_lock():  # two ups on one host: one chooses and creates at a time
                check_still_free(client, plan)
                container = execute(client, plan.container, action, plan.world, image.image_id, str(loaded.file),
                                    lock_dir, before_remove, then_exec=then_exec, workspace_mark=plan.workspace_mark)
        else:
            container = execute(client, plan.container, action, plan.world, image.image_id, str(loaded.file), lock_dir,
                                before_remove, reads.listing, then_exec, plan.workspace_mark)
    except EnvctlError as exc:  # a ulimit the runtime refused is named with the manifest line that set it
        located = _ulimit_located(exc, loaded, plan)
        if located is exc:
            raise
        raise located from None
    detail = f": {', '.join(container.changes)} changed" if container.changes else ""
    echo(f"container  {plan.container.name}: {container.action}{detail}")
    for run in plan.container_action.stops if container.action in ("recreated", "restarted") else ():
        echo(f"stopped    {run.describe()} (--force)")
    executed.append(("container", plan.container.name, _CONTAINER_WORDS[container.action]))
    if plan.container_action.action in ("unchanged", "start", "restart") and plan.setup and not plan.baked:
        # Read early only of the container the plan found, which the check above found again.
        early = reads.markers is not None and container.container_id == plan.world.container_id
        now = tuple(sorted(reads.markers() if early else read_markers(client, container.container_id)))
        if now != plan.world.markers and early:
            # The early read ran beside this up's own steps: a mount's source that up made again
            # meanwhile (the workspace, beside the image step) can answer the archive request as
            # missing and the stat of the root after it as present, which read_setup_state takes
            # for no state directory (observe_engine). Asked again now that every step before it
            # is done, before saying that another up ran setup.
            now = tuple(sorted(read_markers(client, container.container_id)))
        if now != plan.world.markers:
            raise WorldChanged(f"the setup markers in {plan.container.name} changed since the plan was made "
                               "(another up ran setup meanwhile)", hint="run `envctl plan` again to see what up would do now")
    try:
        steps = run_planned(client, container.container_id, plan.setup, echo, passed=runtime.values,
                            masked=runtime.secrets, made=(first.index, container.exec_id) if container.exec_id else None)
    except SetupFailed as failed:  # a step that needs a passed variable not given: say which
        unset = [p.name for p in runtime.passed if p.state != "set"]
        if unset:
            failed.hint = (f"{', '.join(unset)} (container.pass_env) {'was' if len(unset) == 1 else 'were'} not set or "
                           f"empty: export {'it' if len(unset) == 1 else 'them'} or give --env-file FILE if the step "
                           f"needs {'it' if len(unset) == 1 else 'them'}; " + (failed.hint or ""))
        raise
    executed += [("setup", s.name, "run" if s.action == "ran" else "skip") for s in steps]
    ran = sum(1 for s in steps if s.action == "ran")
    if steps:
        echo(f"setup      {ran} step(s) ran, {len(steps) - ran} unchanged")
    return Report(plan, image, container, tuple(steps), tuple(executed))


def _ulimit_located(exc: EnvctlError, loaded: Loaded, plan: Plan) -> EnvctlError:
    from envctl.engine_errors import with_ulimit_origin
    from envctl.manifest.provenance import origin_of

    trace = getattr(loaded, "trace", None)
    return with_ulimit_origin(exc, plan.container.name, dict(plan.container.ulimits),
                              lambda path: origin_of(path, trace) if trace is not None else None)


_CONTAINER_WORDS = {"created": "create", "recreated": "recreate", "started": "start", "restarted": "restart",
                    "unchanged": "unchanged"}
