"""The reads `up` checks the plan against, started together when it begins (issue 14).

Before each step acts, apply checks what the plan rested on (envctl/apply.py): the artifacts in
the host's cache, the image the ref names, the container, the setup markers. Each is a round
trip on an SSH host (an ssh session, or an engine request through the forwarded socket), and
none needs another's answer, so the engine's are asked in threads of their own while the
artifacts' check (an ssh session, on the calling thread) runs, and each step compares with the
plan when it gets to it: the same reads and comparisons, with the same messages, in the same
step order (the artifacts' first).

A read is asked early only where nothing that comes before it in `up` could change its answer
or must happen first:
- the image ref: when the artifact steps move nothing (every artifact "cached", no writable
  copy to check or make), so the look-up is no older when the image step uses it (as the
  answer it acts on: image_actions.ensure) than when it is asked in place today;
- the container's listing: when the container is "unchanged" and nothing before it acts
  (artifacts as above, the image "present"); it is taken under the environment's lock, as
  lifecycle.execute takes it, and only when nobody holds that lock now (another `up` of the
  environment acting): otherwise execute lists under the lock, waiting for it, as ever;
- the setup markers: on the same terms, of the container the plan found (used only when the
  container's check passed, so it is that container).

A read that failed raises, when its step gets to it, the exception the same read raised (an
engine error, ImageError): the same type and message as in place. A read never used (a step
before it raised) is waited for and dropped: nothing is left running once `up` returns or
raises. The threads are daemon threads: an interrupted `up` (Ctrl-C) does not wait for them at
exit."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

if TYPE_CHECKING:
    from envctl.hosts.base import WritableHost
    from envctl.plan import Plan


class Read:
    """One read in a thread of its own; calling it waits for the answer, or raises what the
    read raised."""

    def __init__(self, name: str, read: Callable[[], object]):
        self._value: object = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(read,), name=f"envctl-read-{name}", daemon=True)
        self._thread.start()

    def _run(self, read: Callable[[], object]) -> None:
        try:
            self._value = read()
        except BaseException as exc:  # noqa: BLE001  (raised on the caller's thread when it asks)
            self._error = exc

    def __call__(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value

    def wait(self) -> None:
        self._thread.join()


@dataclass
class Reads:
    """The reads started early (None: asked in place, by the step, as without this)."""

    image: Read | None = None  # EngineImages.get(plan.image.ref), for image_actions.check_unchanged
    listing: Read | None = None  # lifecycle.list_if_free, for lifecycle.execute
    markers: Read | None = None  # observe_engine.read_markers of the plan's container, for apply.start

    def wait(self) -> None:
        for read in (self.image, self.listing, self.markers):
            if read is not None:
                read.wait()


def artifacts_move_nothing(plan: Plan) -> bool:
    """The artifact steps only check and name what the host's cache holds: nothing is fetched,
    sent or copied, and no writable copy is looked at (artifact_steps.place)."""
    return all(a.action == "cached" and not (a.mode == "rw" and a.host_path) for a in plan.artifacts)


def container_reads_early(plan: Plan) -> bool:
    """The container step acts on nothing (unchanged) and nothing before it acts."""
    return (plan.world.engine and plan.container_action.action == "unchanged" and plan.world.container_id is not None
            and artifacts_move_nothing(plan) and plan.image.action == "present")


@contextmanager
def started(host: WritableHost, plan: Plan) -> Iterator[Reads]:
    """The reads `plan` allows early (see the module's note), started; waited for when the
    block ends, however it ends."""
    from envctl import lifecycle
    from envctl.observe_engine import read_markers

    reads = Reads()
    client = None
    if plan.world.engine and artifacts_move_nothing(plan):  # what any early read asks first
        client = _engine(host)
    if client is None:
        yield reads
        return
    # Imported here, on this thread: two threads importing one circle of modules at once can
    # fail ("deadlock detected by _ModuleLock"). These are what the reads and their errors use.
    import importlib

    for module in ("docker.errors", "requests.exceptions", "envctl.engine_errors"):
        importlib.import_module(module)
    from envctl.image_identity import EngineImages

    try:
        if artifacts_move_nothing(plan):
            reads.image = Read("image", lambda: EngineImages(client, None).get(plan.image.ref))
        if container_reads_early(plan):
            name, lock_dir = plan.container.name, Path(host.lock_dir)
            reads.listing = Read("listing", lambda: lifecycle.list_if_free(client, name, lock_dir))
            if plan.setup and not plan.baked:
                container_id = plan.world.container_id
                reads.markers = Read("markers", lambda: read_markers(client, container_id))
        yield reads
    finally:
        reads.wait()


def _engine(host: WritableHost):
    """The host's engine (the plan's, already reached), asked on this thread: the first call
    may open the forward. None when it cannot be reached: nothing is read early, and the step
    that needs the engine meets that failure where it does without early reads."""
    from envctl.errors import EnvctlError

    try:
        return host.engine()
    except EnvctlError:
        return None
