"""What a Docker engine holds that a plan depends on: the manifest's image (by ref, by pinned
ID, baked variants), the environment's container (labels and state) and the setup markers in it.

Only reads: image inspection, the container list (its summary: name, ID, state, labels; no
inspection), and `GET /containers/{id}/archive` for the marker directory (after a 404, a `HEAD`
of the container's root), which works on a stopped container as on a running one (no exec is
started, nothing runs in the container). Engine API reference: ContainerArchive,
ContainerArchiveInfo, ImageInspect, ContainerList.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from dataclasses import dataclass, field

from envctl.containers import LABEL_BAKE_KEY, LABEL_BAKED_FOR, LABEL_MANIFEST
from envctl.markers import CLAIM_DIR, MARKER_DIR, STATE_DIR


@dataclass(frozen=True)
class ContainerState:
    """The environment's container as the engine reports it."""

    name: str
    id: str
    status: str  # the engine's State.Status: created | running | paused | restarting | exited | dead
    labels: dict = field(default_factory=dict, compare=False)
    runs: tuple = ()  # the work running in it (envctl/runs.py Run): what removing it would kill


@dataclass(frozen=True)
class EngineView:
    image_id: str | None = None  # the engine's .Id of what the manifest's ref names
    image_config: str | None = None  # its config digest (the same on both image stores)
    image_present: bool = False  # the ref names the wanted image (pinned ID or built context)
    pinned_id: str | None = None  # the engine's .Id of the wanted image, found under another name (or none)
    baked: dict = field(default_factory=dict)  # bake key → ref
    baked_ids: dict = field(default_factory=dict)  # baked ref → the engine's .Id
    container: ContainerState | None = None
    markers: frozenset[str] = frozenset()  # file names in MARKER_DIR of that container
    # The image tarball was not read: compressed, not read before, and the engine has neither
    # the ref's image nor the pinned one; it is read and checked as it loads (image_step.read_while_loading).
    tarball_unread: bool = False


def find_container(client, name: str) -> ContainerState | None:
    """The envctl container named `name` (any state), or None. One request: the engine's list
    summary (Names, Id, State, Labels) says all this needs, where docker-py's containers.list
    would inspect every container it lists."""
    for summary in client.api.containers(all=True, filters={"name": name, "label": LABEL_MANIFEST}):
        if f"/{name}" in (summary.get("Names") or ()):  # the filter matches parts of names too
            return ContainerState(name, summary["Id"], summary.get("State") or "unknown", dict(summary.get("Labels") or {}))
    return None


def read_markers(client, container_id: str) -> frozenset[str]:
    """The names of the files in the container's marker directory (empty when it has none)."""
    return read_setup_state(client, container_id)[0]


def read_setup_state(client, container_id: str, asked: tuple[int, object] | None = None) \
        -> tuple[frozenset[str], dict[str, tuple[int | None, int]]]:
    """The setup markers and claims in the container, in one read of envctl's state directory:
    (marker file names, {claim file name (a marker's name): (the PID it holds or None, its
    mtime in seconds since the epoch)}). Whether a claim's process still runs is not known
    here: the engine's running execs tell (envctl/runs.py).

    Read through the archive endpoint (one request), which works on a stopped container too.
    The endpoint mounts the container's bind mounts first, and fails when a mount's source is
    gone from the host: a `mode: rw` artifact's workspace copy removed (Docker 20.10 answers 500
    "mount ...: not a directory", Docker 28 500 "mkdirat ...: file exists"), an artifact's
    cache directory removed (both answer 404 "Could not find the file", as for a path that is
    not there: moby turns any ENOENT into that answer). So a 404 is asked once more, with a stat
    of the container's root (HEAD, no body): when that answers, the mounts are fine and the
    state directory is absent (no step ever ran). Otherwise a running container is asked with
    `ls` inside (markers only: its claims are then known by the running execs alone).

    `asked`: (HTTP status, body) of the same archive request sent earlier (the plan's second
    round, `state_archive`); a 200 is read as the answer, anything else is asked again here."""
    from docker.errors import APIError, NotFound

    try:
        data = _state_bytes(client, container_id, asked)
    except (NotFound, APIError) as exc:
        if isinstance(exc, NotFound) and _root_answers(client, container_id):
            return frozenset(), {}
        listed = _listed_inside(client, container_id)
        if listed is not None:
            return listed, {}
        if isinstance(exc, NotFound):
            return frozenset(), {}
        raise
    markers, claims = set(), {}
    top = posixpath.basename(STATE_DIR)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            parent = posixpath.dirname(member.name)
            if parent == f"{top}/{posixpath.basename(MARKER_DIR)}":
                markers.add(posixpath.basename(member.name))
            elif parent == f"{top}/{posixpath.basename(CLAIM_DIR)}":
                held = archive.extractfile(member).read(64).decode("ascii", "replace").strip()
                claims[posixpath.basename(member.name)] = (int(held) if held.isdigit() else None, int(member.mtime))
    return frozenset(markers), claims


def _state_bytes(client, container_id: str, asked: tuple[int, object] | None) -> bytes:
    """The state directory's tar stream: the earlier answer's when it was 200, docker-py's
    NotFound when it was 404 (as get_archive raises it), else asked through docker-py."""
    from docker.errors import NotFound

    status, body = asked if asked is not None else (0, None)
    if status == 200 and isinstance(body, bytes):
        return body
    if status == 404:
        message = body.get("message") if isinstance(body, dict) else None
        raise NotFound(f"404 Client Error: Not Found ({message})", explanation=message)
    stream, _ = client.api.get_archive(container_id, STATE_DIR)
    return b"".join(stream)


def state_archive(container_id: str) -> tuple[str, dict, str]:
    """The archive request of read_setup_state as a Pipelined target (engine_socket.RAW)."""
    from envctl.engine_socket import RAW

    return (f"/containers/{container_id}/archive", {"path": STATE_DIR}, RAW)


def _root_answers(client, container_id: str) -> bool:
    """Whether the archive endpoint reaches the container's filesystem: `HEAD
    /containers/{id}/archive?path=/` (ContainerArchiveInfo) answers 200. docker-py has no call
    for that stat; its APIClient is the requests Session it sends through."""
    api = client.api
    answer = api.head(f"{api.base_url}/v{api.api_version}/containers/{container_id}/archive", params={"path": "/"})
    return answer.status_code == 200


def _claimed(runs: tuple, claims: dict) -> tuple:
    """The running work with each setup step's run given the PID and start its claim holds."""
    import time
    from dataclasses import replace

    out = []
    for run in runs:
        if run.kind == "setup" and run.step in claims:
            pid, mtime = claims[run.step]
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime)) if mtime > 0 else run.since
            run = replace(run, pid=pid, since=since)
        out.append(run)
    return tuple(out)


def _listed_inside(client, container_id: str) -> frozenset[str] | None:
    """The marker directory listed by `ls` in the running container; None when it is not
    running or has no shell to ask (an image without sh, which then has no setup steps)."""
    from docker.errors import APIError

    try:
        if not client.api.inspect_container(container_id).get("State", {}).get("Running"):
            return None
        made = client.api.exec_create(container_id, ["sh", "-c", 'ls -1A -- "$1" 2>/dev/null || true', "sh", MARKER_DIR])
        out = client.api.exec_start(made["Id"])
        if client.api.exec_inspect(made["Id"]).get("ExitCode") != 0:
            return None
    except APIError:
        return None
    return frozenset(line for line in out.decode(errors="replace").splitlines() if line)


def first_round(ref: str, wanted: tuple[str, ...], manifest_name: str, container_name: str,
                known_id: str | None) -> list[tuple]:
    """The requests of `view`'s first round (its arguments of the same names), as (path, query[,
    RAW]) without the API version: the image's ref, the baked images' list, the container's
    list, each wanted ID and, with `known_id`, that container's inspection, processes and setup
    state's archive. Also what SSHHost.ask_ahead sends before the plan asks it."""
    from envctl.runs import TOP_ARGS

    baked_filter = {"label": [f"{LABEL_BAKED_FOR}={manifest_name}"]}
    container_filter = {"name": [container_name], "label": [LABEL_MANIFEST]}
    # The container's inspection, processes and setup state by the ID it had, in the first round
    # too: taken when the list gives that ID (_known), else asked by the listed ID in the second.
    by_id = [(f"/containers/{known_id}/json", None), (f"/containers/{known_id}/top", {"ps_args": TOP_ARGS}),
             state_archive(known_id)] if known_id else []
    # The IDs the image must have, looked up under any name, in the first round too: used when
    # the ref names no image with one of them (a fresh host, a tag moved), where they would
    # otherwise cost a second round; a few small requests more where it does.
    return [(f"/images/{_quoted(ref)}/json", None),
            ("/images/json", {"filters": _filters(baked_filter)}),
            ("/containers/json", {"all": "1", "filters": _filters(container_filter)}),
            *[(f"/images/{_quoted(w)}/json", None) for w in dict.fromkeys(wanted)], *by_id]


def view(client, ref: str, wanted: tuple[str, ...], build_digest: str | None, manifest_name: str, container_name: str,
         records, together: bool = False, known_id: str | None = None) -> EngineView:
    """Read the engine once for one manifest. `wanted`: the IDs the image must have (the pinned
    image.id, and the IDs the tarball's own manifest.json names when the tarball is on this
    machine); empty when nothing says (then whatever the ref names is taken). `build_digest`: the
    digest of the build context when the image is built (a built image is the wanted one only
    when it carries it).

    With `together` (an engine through an SSH forward, where each request is a round trip;
    a local socket answers in about a millisecond and is asked one request after another),
    requests that do not depend on each other go out together (`_Rounds`): the image's ref, the
    baked images' list, the container's list, the IDs wanted under any name and, with
    `known_id` (the ID an earlier command saw the environment's container with:
    SSHHost.container_hint), that container's inspection, processes (`top`) and setup state's
    archive in one round; then the baked images' inspections, where still unknown `/info`, and
    the listed container's requests when `known_id` was not its ID, in a second (none at all
    for an environment already up without baked images, nor for a fresh host). Each round is one
    round trip to an SSH host (plus one for a new connection's channel through the forward, where
    the connection /version was asked on was not kept) where one request after another took one
    each. By ID, never by name: the engine takes a name for a container that is not envctl's (a
    user's own of that name) and a short hex name for another's ID prefix, and answering an
    archive request mounts that container's mounts (creating a bind's missing source directory
    on the server)."""
    from envctl.image_identity import EngineImages
    from envctl.image_step import LABEL_CONTEXT
    from envctl.runs import TOP_ARGS

    images = EngineImages(client, records)
    rounds = _Rounds.of(client) if together else None

    looked_up = tuple(dict.fromkeys(wanted)) if rounds else ()
    first = rounds.ask(first_round(ref, wanted, manifest_name, container_name, known_id)) if rounds else None

    image = _image_answered(images, first[0], ref) if first else images.get(ref)
    container = (_container_listed(first[2], container_name) if first and first[2][0] == 200
                 else find_container(client, container_name))
    listed_baked = first[1][1] if first and first[1][0] == 200 and isinstance(first[1][1], list) else None
    answered = dict(zip(looked_up, first[3:])) if first else {}
    known = _known(first[3 + len(looked_up):], container) if first and known_id else None

    # The second round: what the first's answers name.
    asked: list = []
    if listed_baked is not None:
        asked += [(f"/images/{_quoted(str(c.get('Id')))}/json", None) for c in listed_baked]
    inspect_container = container is not None and container.status == "running"
    if inspect_container and known is None:
        # Its inspection, then its processes (what running_work reads, in that order).
        asked += [(f"/containers/{container.id}/json", None), (f"/containers/{container.id}/top", {"ps_args": TOP_ARGS})]
    ask_info = image is not None and images.store_unknown()
    if ask_info:
        asked.append(("/info", None))
    if container is not None and rounds and known is None:
        asked.append(state_archive(container.id))  # last: the engine mounts the container's mounts for it
    try:
        second = iter(rounds.ask(asked)) if rounds and asked else iter(())
    finally:
        if rounds:
            # Later requests go through docker-py, but for a new container's start, which `up`
            # sends on this connection with its first setup step's exec (lifecycle._start_then_exec);
            # where nothing takes it (plan, exec, an up that creates nothing) it closes at exit.
            rounds.keep()
    baked, baked_ids = {}, {}
    if listed_baked is not None:
        candidates = [_baked_answered(next(second), c) for c in listed_baked]
    else:
        candidates = [_baked_answered(_inspected_or_404(client, c.get("Id")), c)
                      for c in client.api.images(filters={"label": f"{LABEL_BAKED_FOR}={manifest_name}"})]
    for labels, tags, ident in filter(None, candidates):
        key = labels.get(LABEL_BAKE_KEY)
        if key and tags:
            baked[key] = tags[0]
            baked_ids[tags[0]] = ident
    if known is not None:
        attrs, top = (_json_or_none(known[0]), known[1]) if inspect_container else (None, None)
    else:
        attrs, top = (_json_or_none(next(second)), next(second)) if inspect_container and rounds and asked else (None, None)
    if ask_info:
        info = _json_or_none(next(second)) if rounds and asked else None
        if isinstance(info, dict):
            images.store_from_info(info)  # else containerd_store asks through docker-py, as before
    if container is not None:
        state = known[2] if known is not None else next(second) if rounds else None
        markers, claims = read_setup_state(client, container.id, state)
    else:
        markers, claims = frozenset(), {}

    if image is None:
        present = False
    elif build_digest is not None:
        present = image.labels.get(LABEL_CONTEXT) == build_digest
    else:
        present = not wanted or any(images.matches(image, w) for w in wanted)
    pinned_id = None
    for candidate in wanted if not present else ():
        found = _image_answered(images, answered[candidate], candidate) if candidate in answered else images.get(candidate)
        if found is not None and any(images.matches(found, w) for w in wanted):
            pinned_id = found.id
            break
    if container is not None and container.status == "running":
        from dataclasses import replace

        from envctl.runs import running_work

        # A setup step another `up` runs is a running exec of the claim wrapper: a claim whose
        # process is gone (its exec ended, the container restarted) has none, as `up` decides.
        # The inspection of the second round is taken when it answered (running_work takes one
        # "taken in this command before any exec of envctl's": none ran since).
        taken = isinstance(attrs, dict) and attrs.get("Id")
        runs = running_work(client, container.id, attrs if taken else None, top if taken else None)
        container = replace(container, runs=_claimed(runs, claims))
    return EngineView(image.id if image else None, images.config_digest(image) if image else None, present, pinned_id,
                      baked, baked_ids, container, markers)


# -- requests sent together ---------------------------------------------------------------------

def _quoted(name: str) -> str:
    from envctl.engine_socket import quoted

    return quoted(name)


def _filters(wanted: dict) -> str:
    import json

    return json.dumps(wanted)  # docker-py's convert_filters: a JSON map of lists


def _json_or_none(answer):
    status, body = answer
    return body if status == 200 else None


def _image_answered(images, answer, ref: str):
    """The image an inspection answered; on any answer but 200 or 404, docker-py asks again and
    raises what `EngineImages.get` raises."""
    status, attrs = answer
    if status == 404:
        return None
    if status == 200 and isinstance(attrs, dict) and attrs.get("Id"):
        return images.inspected(attrs)
    return images.get(ref)


def _inspected_or_404(client, image_id) -> tuple:
    """(200, ImageInspect's JSON) of an image, or (404, None) when it is gone; docker-py raises
    any other error."""
    from docker.errors import NotFound

    try:
        return 200, client.api.inspect_image(image_id)
    except NotFound:
        return 404, None


def _baked_answered(answer, summary: dict) -> tuple[dict, list, str] | None:
    """(labels, tags, ID) of a baked image listed, as its inspection gives them (Image.labels,
    Image.tags, Image.id); None when the inspection answered 404: the image was removed between
    the list and its inspection (`envctl down --images`, `docker rmi` meanwhile), and its
    summary's tags would name an image that is no more (docker-py's images.list raised
    ImageNotFound for it instead). From the summary when the inspection did not answer (a
    round that failed, an engine error)."""
    status, attrs = answer
    if status == 404:
        return None
    if status == 200 and isinstance(attrs, dict):
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        tags, ident = attrs.get("RepoTags") or [], attrs.get("Id")
    else:
        labels, tags, ident = summary.get("Labels") or {}, summary.get("RepoTags") or [], summary.get("Id")
    return dict(labels), [t for t in tags if t != "<none>:<none>"], ident


def _known(answers: list, container: ContainerState | None) -> tuple | None:
    """The answers to the requests by the container's remembered ID (inspection, top, setup
    state's archive) when they are the listed container's: its inspection answered with the ID
    the list gave. None otherwise (no container listed, another one made since that ID was seen,
    a round that failed): they are asked by the listed ID."""
    (status, attrs), *_ = answers
    if container is None or status != 200 or not isinstance(attrs, dict) or attrs.get("Id") != container.id:
        return None
    return tuple(answers)


def _container_listed(answer, name: str) -> ContainerState | None:
    _status, listed = answer
    for summary in listed if isinstance(listed, list) else ():
        if isinstance(summary, dict) and f"/{name}" in (summary.get("Names") or ()):
            return ContainerState(name, summary["Id"], summary.get("State") or "unknown", dict(summary.get("Labels") or {}))
    return None


class _Rounds:
    """GET requests sent together on one connection to the engine's unix socket (HTTP/1.1
    pipelining, envctl/engine_socket.py Pipelined: the engine answers in order): the one the
    engine's API version was asked on where it was kept (engine_socket.keep), else one of its own,
    in the API version docker-py negotiated, traced as docker-py's requests are (its response
    hooks: ENVCTL_SSH_TRACE). `of` gives None for an engine reached otherwise (tcp://, ssh://):
    then each request goes through docker-py, one after another, as before. A round that does
    not answer is asked again through docker-py by the caller (EngineUnanswered is not raised)."""

    def __init__(self, api, path: str):
        from envctl.engine_socket import Pipelined, hook_trace, reused

        self._api, self._version, self._path = api, api.api_version, path
        self._trace = hook_trace(api)  # each answer told to docker-py's response hooks, as its own requests
        # The connection /version was asked on, where it was kept (SSHHost.ask_api_version):
        # through an SSH forward, a new one costs a round trip before its first request.
        self._reused = reused(path, self._trace)
        self._pipelined = self._reused or Pipelined(path, self._trace)
        self._broken = False

    @classmethod
    def of(cls, client) -> "_Rounds | None":
        from envctl.engine_socket import socket_of

        api, path = socket_of(client)
        return cls(api, path) if path is not None and getattr(api, "api_version", None) else None

    def close(self) -> None:
        self._pipelined.__exit__(None, None, None)

    def keep(self) -> None:
        """Leave the connection open for the next taker (engine_socket.keep), where every answer
        asked on it was read; else close it."""
        from envctl.engine_socket import keep

        if self._broken or self._pipelined.unread:
            self.close()
        else:
            keep(self._path, self._pipelined)

    def ask(self, targets: list) -> list:
        """(status, answer) per (path, query[, RAW]) as Pipelined.get gives them; (0, None) for
        each when the round failed."""
        from envctl.engine_socket import EngineUnanswered

        if self._broken:
            return [(0, None)] * len(targets)
        from envctl.engine_socket import Pipelined

        versioned = [(f"/v{self._version}{target[0]}", *target[1:]) for target in targets]
        kept, self._reused = self._reused, None  # a kept connection is asked again only on its first use
        if kept is not None and kept.ahead:
            # Sent ahead, behind /version (SSHHost.ask_ahead): answered in the engine's own API
            # version, these very requests' answers when that is the client's. Others are read
            # (untraced: the plan never asked them) and left.
            ahead, kept.ahead = kept.ahead, None
            taken = ahead == list(targets) and kept.engine_version == self._version
            try:
                if taken:
                    answers = kept.read(len(ahead), shown=lambda path: f"/v{self._version}{path}")
                    if len(answers) == len(ahead):
                        return answers
                else:
                    trace, kept._trace = kept._trace, None
                    kept.read(len(ahead))
                    kept._trace = trace
            except EngineUnanswered:
                pass  # nothing of this round was asked on it yet: asked on a new connection below
            else:
                if not taken:
                    kept = None  # in step again: the round is asked on it as on any connection
            if kept is not None:
                self.close()
                self._pipelined = Pipelined(self._path, self._trace)
                return self.ask(targets)
        try:
            return self._pipelined.get(versioned)
        except EngineUnanswered as exc:
            if kept is None or exc.answered:
                self._broken = True
                return [(0, None)] * len(targets)
        # The kept connection gave no answer (the engine may close an idle one): a new one, once.
        self.close()
        self._pipelined = Pipelined(self._path, self._trace)
        return self.ask(targets)
