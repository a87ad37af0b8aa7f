"""The environment's container on the engine: found by labels, created, started, recreated when
its configuration changed, removed. Two `up`s at once end with one container."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from docker.errors import APIError, DockerException, NotFound

from envctl.containers import (LABEL_FILE, LABEL_HASH, LABEL_IMAGE_ID, LABEL_MANIFEST, LABEL_USER, LABEL_WORKSPACE_MARK,
                               ContainerSpec)
from envctl.decisions import changed_fields
from envctl.errors import EXIT_ENGINE_FAILED, EXIT_HOST_NOT_READY, EnvctlError, WorldChanged
from envctl.locks import file_lock


class ContainerError(EnvctlError):
    """The container cannot be brought to what the plan decided (exit 5)."""

    exit_code = EXIT_HOST_NOT_READY


class ContainerRefused(ContainerError):
    """The engine refused the container's create, start or restart, or holds its name for a
    container envctl did not make; its reason is said (exit 8, as every refusal of the engine's:
    envctl/engine_errors.py)."""

    exit_code = EXIT_ENGINE_FAILED


@dataclass(frozen=True)
class ContainerOutcome:
    action: str  # unchanged | started | restarted | created | recreated
    container_id: str
    changes: tuple[str, ...] = ()
    exec_id: str | None = None  # the exec `then_exec` asked for, made right behind the start (_start_then_exec)


def find(client, name: str):
    """The envctl container with this name (running or not), or None."""
    # ignore_removed: one removed between the list and its inspection is not there (no NotFound).
    for container in client.containers.list(all=True, filters={"name": name, "label": LABEL_MANIFEST}, ignore_removed=True):
        if container.name == name:
            return container
    return None


def _listed(client, name: str):
    """The envctl container with this name as the engine's container list shows it (ID, state,
    labels: what `execute` compares with the plan, and what starting it needs), or None. One
    request: docker-py's containers.list (find) inspects each container it lists, a second
    request (a round trip on an SSH host; issue 14). The list's State is the inspection's
    State.Status and its Labels the configuration's, so the model answers .status and .labels
    as an inspected one does; anything more is inspected when needed (a restart or recreate)."""
    for entry in client.api.containers(all=True, filters={"name": name, "label": LABEL_MANIFEST}):
        if f"/{name}" in (entry.get("Names") or ()):
            return client.containers.prepare_model({"Id": entry["Id"], "Name": f"/{name}",
                                                    "State": {"Status": entry.get("State")},
                                                    "Config": {"Labels": entry.get("Labels") or {}}})
    return None


def environments(client) -> list:
    """Every container envctl created on this engine (one removed while they are inspected left out)."""
    return client.containers.list(all=True, filters={"label": LABEL_MANIFEST}, ignore_removed=True)


def _start(container, name: str) -> None:
    """Make the created, stopped or paused `container` (docker-py's model: as _listed, inspected
    or _created made it) run.
    A paused one is unpaused: the engine refuses to start it ("cannot start a paused container,
    try unpause instead"), and unpausing keeps what runs in it (its setup steps' markers too).
    Raises ContainerRefused."""
    state = container.attrs.get("State")  # absent from a model made without an inspection (_created)
    try:
        if isinstance(state, dict) and state.get("Status") == "paused":
            container.unpause()
        else:
            container.start()
    except APIError as exc:
        raise ContainerRefused(f"the engine could not start {name}: {exc.explanation or exc}") from None


def _start_then_exec(client, container, name: str, then_exec=None) -> str | None:
    """Start the new container; with `then_exec` (`(docker-py's APIClient, container ID) → an
    exec's create body, or None`: setup_steps.exec_body), also create that exec, sent right
    behind the start on the connection the plan's rounds used and left open (observe_engine.view,
    engine_socket.keep): on an engine reached through an SSH forward, one round trip for both
    instead of one each. The engine answers pipelined requests in order, so the exec is created
    only once the start has answered (a start that failed leaves nothing running, and the exec
    is refused: 409). Returns the exec's ID, or None where it was not made so (no kept
    connection, a local engine, an answer not had): the caller creates it then. A start the
    engine refused is said in `_start`'s words (docker-py's explanation is the answer's
    `message`); one whose answer was not had is asked again through docker-py (304 where it had
    started). Raises ContainerError."""
    from envctl import interrupts
    from envctl.engine_socket import EngineUnanswered, hook_trace, reused, socket_of

    interrupts.check()  # as before every request through envctl's engine wrapper (envctl/engine.py)
    api, path = socket_of(client)
    version = getattr(api, "api_version", None)
    body = then_exec(api, container.id) if then_exec is not None and path is not None and version else None
    connection = reused(path, hook_trace(api, "POST")) if body is not None else None
    if connection is not None and (connection.unread or connection.ahead):
        connection.__exit__(None, None, None)  # answers to others' requests would come first on it
        connection = None
    if connection is None:
        _start(container, name)
        return None
    started = made = 0
    refused = answer = None
    try:
        with connection:
            connection.settimeout(getattr(api, "timeout", None) or 300)  # as long as docker-py's client waits
            connection.send_post(f"/v{version}/containers/{container.id}/start")
            connection.send_post(f"/v{version}/containers/{container.id}/exec", body)
            (started, refused), (made, answer) = connection.read(2)
    except EngineUnanswered:
        pass
    if started in (204, 304):
        return answer["Id"] if made == 201 and isinstance(answer, dict) and isinstance(answer.get("Id"), str) else None
    said = refused.get("message") if isinstance(refused, dict) else None
    if started >= 400 and isinstance(said, str) and said:
        raise ContainerRefused(f"the engine could not start {name}: {said}")
    _start(container, name)  # no answer had: started meanwhile (304 there), or says why it cannot be
    return None


def _user() -> str:
    """Who runs this `up` (their login name), recorded on the container so that `envctl cards`
    and a refused plan can say whose environment holds a card."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (a bare container)
        return f"uid {os.getuid()}"


def _create(client, spec: ContainerSpec, image_id: str, manifest_file: str, then_exec=None, workspace_mark: str = ""):
    """The new container, created and started: (its docker-py model, the ID of the exec
    `then_exec` asks for where it was made behind the start, else None: _start_then_exec).
    `workspace_mark`: the mark its workspace holds (paths.WORKSPACE_MARK), kept as its label."""
    labels = {LABEL_IMAGE_ID: image_id, LABEL_FILE: manifest_file, LABEL_USER: _user()}
    if workspace_mark:
        labels[LABEL_WORKSPACE_MARK] = workspace_mark
    try:
        container = _created(client, spec.api_kwargs(labels))
    except APIError as exc:
        if exc.status_code == 409:
            raise  # the name is taken: the caller says by what (_create_absent)
        if exc.status_code == 404:  # the Engine API's "no such image" (ContainerCreate)
            raise WorldChanged(f"image {spec.image} changed since the plan was made: the engine has no such image now "
                               f"to create {spec.name} from (removed or replaced meanwhile: another `up` loading the "
                               "same ref, docker rmi)", hint="run `envctl plan` again to see what up would do now") from None
        raise ContainerRefused(f"the engine refused to create {spec.name}: {exc.explanation or exc}") from None
    except DockerException as exc:  # docker-py refused a value before sending it (validate checks them too)
        raise ContainerError(f"docker-py refused the settings of {spec.name}: {exc}", hint="run `envctl validate` on the manifest") from None
    try:
        exec_id = _start_then_exec(client, container, spec.name, then_exec)
    except ContainerError:
        _remove(container)  # never leave a container that cannot start for the next `up` to find
        raise
    return container, exec_id


def _created(client, kwargs: dict):
    """`client.containers.create(**kwargs)` without its inspection of the new container: docker-py's
    create is POST /containers/create then GET /containers/{id}/json for the model, and `up` needs
    only the ID (to start it, or remove it when it cannot start): one Engine API request less,
    a round trip on an SSH host (issue 14). Relies on docker-py's own argument conversion
    (docker.models.containers._create_container_args, what its create calls), so the body
    sent is the one create sends; errors are translated as the Engine wrapper's are."""
    from docker.models.containers import _create_container_args

    from envctl.engine_errors import translate

    try:
        arguments = _create_container_args({**kwargs, "version": client.api._version})
    except Exception as exc:  # noqa: BLE001  (translate() returns bugs unchanged)
        raise translate(exc, "containers.create", getattr(client, "where", "")) from None
    answer = client.api.create_container(**arguments)
    return client.containers.prepare_model({"Id": answer["Id"]})


def _state(container) -> str:
    if container is None:
        return "absent"
    return f"{container.status}, id {container.id[:12]}, config {(container.labels.get(LABEL_HASH) or '?')[:12]}"


NOT_LISTED = object()  # list_if_free's answer when another `up` held the environment's lock


def list_if_free(client, name: str, lock_dir: Path):
    """The container's listing (_listed) taken under the environment's lock, as `execute` takes
    it, when nobody holds that lock now; NOT_LISTED when someone does (another `up` of the
    environment acting on it: `execute` then lists under the lock, waiting for it). For an `up`
    that reads it early, while its first steps run (envctl/apply_reads.py)."""
    with file_lock(lock_dir / f"{name}.lock", wait=False) as held:
        return _listed(client, name) if held else NOT_LISTED


def execute(client, spec: ContainerSpec, action: str, expected, image_id: str, manifest_file: str, lock_dir: Path,
            before_remove=None, listed=None, then_exec=None, workspace_mark: str = "") -> ContainerOutcome:
    """Do to the container exactly what the plan decided (`action`: create | recreate | start |
    restart | unchanged), after checking, under the environment's lock, that it is still as observed
    (`expected`: plan.World); a container the plan found absent is created without a look first,
    the engine's refusal of a name in use being that check (_create_absent).
    `before_remove(container)` may raise to keep a container from being removed (running work).
    `listed()`: for "unchanged" only, the listing list_if_free took under the lock earlier (or
    NOT_LISTED), which is then compared instead of asking again. `then_exec`: what gives an
    exec's create body (as for _start_then_exec), made right behind the start of a container
    created here (ContainerOutcome.exec_id). `workspace_mark`: as for _create."""
    if action == "unchanged" and listed is not None:
        current = listed()  # raises what the listing raised, as it would have here
        if current is not NOT_LISTED:  # read under the lock: nothing is acted on, so nothing more is held
            _check_as_planned(spec, expected, current)
            return ContainerOutcome("unchanged", current.id)
    with file_lock(lock_dir / f"{spec.name}.lock"):  # `up`s of one environment, one at a time
        if action == "create" and expected.container_id is None:
            # Not listed first: the engine refuses a name in use (409), which says the same as a
            # listing would, in the create's own round trip rather than one more (issue 14).
            return _create_absent(client, spec, image_id, manifest_file, then_exec, workspace_mark)
        current = _listed(client, spec.name)
        _check_as_planned(spec, expected, current)
        if action == "unchanged":
            return ContainerOutcome("unchanged", current.id)
        if action == "start":
            _start(current, spec.name)
            return ContainerOutcome("started", current.id)
        if action in ("restart", "recreate"):
            current = client.containers.get(current.id)  # inspected whole: what runs in it is read from there
        if action == "restart":
            if before_remove is not None:
                before_remove(current)  # a restart kills what runs, as a removal does
            try:
                current.restart()
            except APIError as exc:
                raise ContainerRefused(f"the engine could not restart {spec.name}: {exc.explanation or exc}") from None
            return ContainerOutcome("restarted", current.id)
        if action == "recreate":
            changes = changed_fields(current.labels, spec, image_id)
            if before_remove is not None:
                before_remove(current)
            _remove(current)
            made, exec_id = _create(client, spec, image_id, manifest_file, then_exec, workspace_mark)
            return ContainerOutcome("recreated", made.id, tuple(changes), exec_id)
        if action == "create":  # a plan that saw a container never asks to create it (decisions.container)
            raise ContainerError(f"the plan asks to create container {spec.name}, which it found there",
                                 hint="run `envctl plan` again to see what up would do now")
        raise ContainerError(f"the plan asks to '{action}' container {spec.name}, which up does not apply",
                             hint="the engine could not be asked when the plan was made: run `envctl plan` again")


def _create_absent(client, spec: ContainerSpec, image_id: str, manifest_file: str,
                   then_exec=None, workspace_mark: str = "") -> ContainerOutcome:
    """Create the container the plan found absent. The engine refuses a name in use (409):
    WorldChanged when an envctl container has it now (made meanwhile by another `up`, on this
    machine or another with this engine), ContainerError when a container envctl did not make
    has it (which the plan, listing envctl's containers only, does not see)."""
    try:
        made, exec_id = _create(client, spec, image_id, manifest_file, then_exec, workspace_mark)
        return ContainerOutcome("created", made.id, exec_id=exec_id)
    except APIError as exc:
        if exc.status_code != 409:
            raise
        said = exc.explanation or exc
    try:
        holder = client.api.inspect_container(spec.name)
        # The name's holder only, not a container whose ID the name also begins (the engine's
        # fallback once the name is free again): gone again, it is said as a change.
        foreign = holder.get("Name") == f"/{spec.name}" and LABEL_MANIFEST not in (holder["Config"]["Labels"] or {})
    except (APIError, KeyError, TypeError, AttributeError):
        foreign = False  # unreadable: said as a change, which planning again sorts out
    if foreign:
        raise ContainerRefused(f"a container named {spec.name} that envctl did not make is on the engine ({said})",
                             hint=f"remove or rename it (docker rm / docker rename {spec.name} ...), or give this "
                                  "environment another container.name in the manifest")
    raise WorldChanged(f"container {spec.name} changed since the plan was made: it was absent, and another has that "
                       f"name now ({said})", hint="run `envctl plan` again to see what up would do now")


def _check_as_planned(spec: ContainerSpec, expected, current) -> None:
    """Raises WorldChanged when the listed container (`current`, None: absent) is not the one
    the plan observed (`expected`: plan.World)."""
    now = (current.id, current.status, current.labels.get(LABEL_HASH)) if current is not None else None
    then = (expected.container_id, expected.container_status, expected.container_hash) if expected.container_id else None
    if now != then:
        planned = f"{expected.container_status}, id {expected.container_id[:12]}, config {(expected.container_hash or '?')[:12]}" \
            if then else "absent"
        raise WorldChanged(f"container {spec.name} changed since the plan was made: it was {planned}, it is {_state(current)}",
                           hint="run `envctl plan` again to see what up would do now")


def _remove(container) -> None:
    try:
        container.remove(force=True)
    except NotFound:
        pass


def remove(client, name: str) -> bool:
    existing = find(client, name)
    if existing is None:
        return False
    _remove(existing)
    return True
