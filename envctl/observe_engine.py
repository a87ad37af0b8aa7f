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


def read_setup_state(client, container_id: str) -> tuple[frozenset[str], dict[str, tuple[int | None, int]]]:
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
    `ls` inside (markers only: its claims are then known by the running execs alone)."""
    from docker.errors import APIError, NotFound

    try:
        stream, _ = client.api.get_archive(container_id, STATE_DIR)
        data = b"".join(stream)
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


def view(client, ref: str, wanted: tuple[str, ...], build_digest: str | None, manifest_name: str, container_name: str,
         records) -> EngineView:
    """Read the engine once for one manifest. `wanted`: the IDs the image must have (the pinned
    image.id, and the IDs the tarball's own manifest.json names when the tarball is on this
    machine); empty when nothing says (then whatever the ref names is taken). `build_digest`: the
    digest of the build context when the image is built (a built image is the wanted one only
    when it carries it)."""
    from envctl.image_identity import EngineImages
    from envctl.image_step import LABEL_CONTEXT

    images = EngineImages(client, records)
    image = images.get(ref)
    if image is None:
        present = False
    elif build_digest is not None:
        present = image.labels.get(LABEL_CONTEXT) == build_digest
    else:
        present = not wanted or any(images.matches(image, w) for w in wanted)
    pinned_id = None
    for candidate in wanted if not present else ():
        found = images.get(candidate)
        if found is not None and any(images.matches(found, w) for w in wanted):
            pinned_id = found.id
            break
    baked, baked_ids = {}, {}
    for candidate in client.images.list(filters={"label": f"{LABEL_BAKED_FOR}={manifest_name}"}):
        key = (candidate.labels or {}).get(LABEL_BAKE_KEY)
        if key and candidate.tags:
            baked[key] = candidate.tags[0]
            baked_ids[candidate.tags[0]] = candidate.id
    container = find_container(client, container_name)
    markers, claims = read_setup_state(client, container.id) if container is not None else (frozenset(), {})
    if container is not None and container.status == "running":
        from dataclasses import replace

        from envctl.runs import running_work

        # A setup step another `up` runs is a running exec of the claim wrapper: a claim whose
        # process is gone (its exec ended, the container restarted) has none, as `up` decides.
        container = replace(container, runs=_claimed(running_work(client, container.id), claims))
    return EngineView(image.id if image else None, images.config_digest(image) if image else None, present, pinned_id,
                      baked, baked_ids, container, markers)
