"""An in-memory stand-in for the few read calls `observe` makes on a Docker engine, for fast
tests of the plan's decisions (which action for which state) without starting containers.

It answers the way docker-py does for a classic-store engine 20.10+: `api.inspect_image`
raises ImageNotFound for an unknown reference, `api.get_archive` raises NotFound for a missing
path and otherwise streams a tar of the directory, `containers.list(all=True, filters=...)`
(and the summaries of `api.containers`) filter by name substring and label key. What `up` really does to an engine is tested against
real engines in tests/integration/; this only feeds the pure decisions.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from types import SimpleNamespace

from docker.errors import ImageNotFound, NotFound


@dataclass
class FakeImage:
    id: str
    tags: list[str] = field(default_factory=list)
    labels: dict = field(default_factory=dict)


@dataclass
class FakeContainer:
    name: str
    id: str
    status: str = "running"
    labels: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)  # path → bytes
    mtimes: dict = field(default_factory=dict)  # path → modification time (seconds since the epoch) the archive gives
    execs: dict = field(default_factory=dict)  # exec ID → what `exec_inspect` answers (running ones)
    processes: list = field(default_factory=list)  # `docker top` rows beside the keep-alive process
    devices: list = field(default_factory=list)  # host paths of the device nodes it was given (--device)
    privileged: bool = False
    env: dict = field(default_factory=dict)
    runtime: str = "runc"
    started: str = "2026-11-30T09:15:02.123456789Z"  # State.StartedAt as the engine writes it

    @property
    def attrs(self) -> dict:
        """ContainerInspect as docker-py's Container.attrs holds it: the fields card_holders reads."""
        return {"Id": self.id, "Name": f"/{self.name}", "Created": "2026-11-30T09:15:01.5Z",
                "State": {"Status": self.status, "Running": self.status == "running",
                          "StartedAt": self.started if self.status != "created" else "0001-01-01T00:00:00Z"},
                "Config": {"Labels": dict(self.labels), "Env": [f"{k}={v}" for k, v in self.env.items()]},
                "HostConfig": {"Privileged": self.privileged, "Runtime": self.runtime,
                               "Devices": [{"PathOnHost": p, "PathInContainer": p, "CgroupPermissions": "rwm"}
                                           for p in self.devices] or None}}


class _Api:
    base_url = "http+docker://localhost"
    api_version = "1.41"

    def __init__(self, engine: "FakeEngine"):
        self.engine = engine

    def head(self, url: str, params: dict | None = None):
        """The stat of a path through the archive endpoint (the only HEAD envctl sends): 200
        for a container's root, 404 for a container that is not there."""
        container_id = url.split("/containers/", 1)[1].split("/", 1)[0]
        found = any(c.id == container_id for c in self.engine.containers_)
        return SimpleNamespace(status_code=200 if found and (params or {}).get("path") == "/" else 404)

    def inspect_image(self, ref: str) -> dict:
        image = self.engine.image(ref)
        if image is None:
            raise ImageNotFound(f"No such image: {ref}")
        return {"Id": image.id, "RepoTags": list(image.tags), "Config": {"Labels": dict(image.labels)}}

    def images(self, filters: dict | None = None) -> list[dict]:
        """ImageList's summaries (APIClient.images)."""
        return [{"Id": i.id, "RepoTags": list(i.tags) or None, "Labels": dict(i.labels)} for i in self.engine.images.list(filters)]

    def containers(self, all: bool = False, filters: dict | None = None) -> list[dict]:  # noqa: A002 (docker-py's name)
        """ContainerList's summaries (APIClient.containers): names with the engine's leading "/"."""
        return [{"Id": c.id, "Names": [f"/{c.name}"], "State": c.status, "Labels": dict(c.labels)}
                for c in self.engine.containers.list(all=all, filters=filters)]

    def inspect_container(self, container_id: str) -> dict:
        """Only what envctl/runs.py reads: the state, the init's PID, the running execs (none)."""
        container = next((c for c in self.engine.containers_ if c.id == container_id), None)
        if container is None:
            raise NotFound(f"No such container: {container_id}")
        return {"Id": container.id, "State": {"Running": container.status == "running", "Pid": 4242},
                "ExecIDs": list(container.execs) or None}  # the engine answers null when none runs

    def exec_inspect(self, exec_id: str) -> dict:
        for container in self.engine.containers_:
            if exec_id in container.execs:
                return container.execs[exec_id]
        if exec_id in self.engine.finished_execs:
            return {"Running": False, "ExitCode": 0}
        raise NotFound(f"No such exec instance: {exec_id}")

    def exec_create(self, container_id: str, cmd: list[str]) -> dict:
        """Only the listing envctl makes (`sh -c 'ls -1A -- "$1"' sh DIR`): it finishes at once."""
        container = next(c for c in self.engine.containers_ if c.id == container_id)
        exec_id = f"exec-{len(self.engine.finished_execs)}"
        self.engine.finished_execs[exec_id] = (container, cmd[-1])
        return {"Id": exec_id}

    def exec_start(self, exec_id: str) -> bytes:
        container, directory = self.engine.finished_execs[exec_id]
        prefix = directory.rstrip("/") + "/"
        names = sorted({p[len(prefix):].split("/")[0] for p in container.files if p.startswith(prefix)})
        return "".join(f"{n}\n" for n in names).encode()

    def top(self, container_id: str, ps_args: str | None = None) -> dict:
        """procps `ps -o pid,ppid,etimes,stat,args` as `docker top` relays it: the keep-alive
        process (host PID 4242), then the container's `processes`."""
        container = next(c for c in self.engine.containers_ if c.id == container_id)
        return {"Titles": ["PID", "PPID", "ELAPSED", "STAT", "COMMAND"],
                "Processes": [["4242", "4200", "60", "Ss", "sleep infinity"], *container.processes]}

    def get_archive(self, container_id: str, path: str):
        container = next((c for c in self.engine.containers_ if c.id == container_id), None)
        if container is None:
            raise NotFound(f"No such container: {container_id}")
        if path in container.files:  # one file: a tar holding it alone, as the engine sends it
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as archive:
                info = tarfile.TarInfo(path.rsplit("/", 1)[-1])
                info.size = len(container.files[path])
                archive.addfile(info, io.BytesIO(container.files[path]))
            return iter([buffer.getvalue()]), {"name": info.name}
        below = {p: data for p, data in container.files.items() if p.startswith(path.rstrip("/") + "/")}
        if not below:
            raise NotFound(f"Could not find the file {path} in container {container.name}")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            top = tarfile.TarInfo(path.rstrip("/").rsplit("/", 1)[-1])
            top.type = tarfile.DIRTYPE
            archive.addfile(top)
            for p, data in sorted(below.items()):
                info = tarfile.TarInfo(f"{top.name}/{p[len(path.rstrip('/')) + 1:]}")
                info.size = len(data)
                info.mtime = container.mtimes.get(p, 0)
                archive.addfile(info, io.BytesIO(data))
        return iter([buffer.getvalue()]), {"name": top.name}


class _Images:
    def __init__(self, engine: "FakeEngine"):
        self.engine = engine

    def list(self, filters: dict | None = None):
        wanted = (filters or {}).get("label")
        key, _, value = (wanted or "").partition("=")
        return [i for i in self.engine.images_ if not wanted or i.labels.get(key) == value]


class _Containers:
    def __init__(self, engine: "FakeEngine"):
        self.engine = engine

    def list(self, all: bool = False, filters: dict | None = None, ignore_removed: bool = False):  # noqa: A002 (docker-py's name)
        # ignore_removed: nothing is removed between this stand-in's list and its inspection.
        filters = filters or {}
        out = []
        for c in self.engine.containers_:
            if not all and c.status != "running":
                continue
            if filters.get("name") and filters["name"] not in c.name:
                continue
            if filters.get("label") and filters["label"] not in c.labels:
                continue
            out.append(c)
        return out


class FakeEngine:
    def __init__(self):
        self.images_: list[FakeImage] = []
        self.containers_: list[FakeContainer] = []
        self.finished_execs: dict = {}  # exec ID → (container, the directory its `ls` lists)
        self.api = _Api(self)
        self.images = _Images(self)
        self.containers = _Containers(self)

    def info(self) -> dict:
        return {"DriverStatus": [["Backing Filesystem", "extfs"]]}

    def image(self, ref: str) -> FakeImage | None:
        for image in self.images_:
            if ref == image.id or ref in image.tags:
                return image
        return None

    def add_image(self, image_id: str, *tags: str, labels: dict | None = None) -> FakeImage:
        image = FakeImage(image_id, list(tags), dict(labels or {}))
        self.images_.append(image)
        return image

    def add_container(self, name: str, labels: dict, status: str = "running", markers: tuple[str, ...] = ()) -> FakeContainer:
        from envctl.markers import MARKER_DIR

        container = FakeContainer(name, f"{len(self.containers_) + 1:064x}", status, dict(labels),
                                  {f"{MARKER_DIR}/{m}": b"" for m in markers})
        self.containers_.append(container)
        return container
