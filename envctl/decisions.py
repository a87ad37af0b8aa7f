"""What `up` will do to each thing, decided from the manifest and what was observed: pure, so
`plan`, `up --dry-run` and `up` decide alike, and a saved plan can be checked against a fresh one.

Like docker-compose's ConvergencePlan (an action decided per service before anything runs,
then executed by a switch on the action) and pip-sync's pure `diff` before `sync`:

- artifact: cached | fetch | push | fetch+push | copy | fetch+copy | missing
  (on a remote host "cached" means in its cache; "push" sends from this machine's cache;
  "fetch" with `fetch: remote` is the host downloading it itself)
- image: present | tag | load | download+load | build | pull | pull+push | missing | unknown
  (pull: the host's engine pulls; pull+push: pulled here, then sent as a tarball to an
  air-gapped host with `fetch: push`)
- container: create | recreate (the fields that changed) | start | restart (mounts placed again) |
  unchanged | unknown
- setup step: skip | run (changed, after a changed step, never ran, failed last time) | unknown

"unknown" is what a plan says when the engine could not be asked; `up` never applies it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from envctl.containers import LABEL_HASH, LABEL_IMAGE_ID, LABEL_SPEC, ContainerSpec
from envctl.markers import FAILED_SUFFIX, index_of, marker_name
from envctl.paths import WORKSPACE_MARK, WORKSPACE_TARGET

REMOTE_FETCH_KINDS = frozenset({"http", "hf", "hf-dataset", "modelscope"})  # what a host can download itself


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str
    bytes: int | None = None  # what moves (fetched, pushed, loaded), when known
    changes: tuple[str, ...] = ()  # recreate: the fields that changed


def artifact(name: str, kind: str | None, mode: str, observed) -> Decision:
    """`kind`: the source kind (None: no source yet)."""
    caches = observed.caches
    size = caches.sizes.get(name)
    if kind is None:
        return Decision("missing", "no source yet: it must be provided")
    if caches.remote_cached is not None:  # a remote host
        if name in caches.remote_cached:
            if mode == "rw" and name not in caches.copies:
                return Decision("copy", f"in {observed.host}'s cache; its writable copy there is missing or older", size)
            return Decision("cached", f"complete in {observed.host}'s cache")
        if observed.fetch_mode == "remote" and kind in REMOTE_FETCH_KINDS:
            return Decision("fetch", f"{observed.host} downloads it (fetch: remote)", size)
        if name in caches.cached:
            return Decision("push", f"sent from this machine's cache to {observed.host}", size)
        return Decision("fetch+push", f"fetched here, then sent to {observed.host}", size)
    if name in caches.cached:
        if mode == "rw" and name not in caches.copies:
            return Decision("copy", "cached; its writable copy is missing or older than the cache", size)
        return Decision("cached", "complete and verified in the cache")
    if mode == "rw":
        return Decision("fetch+copy", "not in the cache; then a writable copy in the workspace", size)
    return Decision("fetch", "not in the cache", size)


MOVES_BYTES = frozenset({"fetch", "push", "fetch+push", "fetch+copy"})


def one_fetch_per_source(artifacts: list[tuple[str, str | None, str, Decision]]) -> list[Decision]:
    """Artifacts of one source (`data` read-only and `scratch` with `mode: rw` of the same
    directory, say) share one cache entry: the first that moves its bytes fetches or sends
    them, and those after it find them there. `artifacts`: (name, cache entry path, mode,
    decision) in the plan's order; returns the decisions in that order, a later sharer's
    "fetch…"/"push" turned into `cached` (or `copy` for `mode: rw`), naming the first."""
    first_mover: dict[str, str] = {}
    out = []
    for name, cache_path, mode, decision in artifacts:
        mover = first_mover.get(cache_path) if cache_path else None
        if mover is not None and decision.action in MOVES_BYTES:
            why = f"the same source as {mover}, which brings its bytes first"
            decision = Decision("copy", f"{why}; then a writable copy", decision.bytes) if mode == "rw" \
                else Decision("cached", why)
        elif cache_path and decision.action in MOVES_BYTES:
            first_mover.setdefault(cache_path, name)
        out.append(decision)
    return out


def image(origin: str, source: str | None, baked: str | None, observed) -> Decision:
    """`origin`: tarball | build | present (the manifest gives neither)."""
    seen = observed.engine
    caches = observed.caches
    if seen is None:
        return Decision("unknown", observed.engine_problem or "the engine was not asked")
    if baked:
        return Decision("present", f"the baked image {baked} holds the setup steps")
    if seen.image_present:
        return Decision("present", f"on the engine as {seen.image_id[:19]}")
    if seen.pinned_id:
        return Decision("tag", f"the pinned image is on the engine ({seen.pinned_id[:19]}) under another name")
    if origin == "build":
        return Decision("build", "not built yet" if seen.image_id is None else "its build context changed")
    why = "not on the engine" if seen.image_id is None else f"the engine's {seen.image_id[:19]} is not the pinned image"
    if origin == "pull":
        return _pull(why, source, observed)
    if origin == "tarball":
        if source is None:
            return Decision("missing", f"{why}, and the tarball has no source yet")
        if observed.fetch_mode == "remote" and not caches.tarball_cached and source.startswith("http"):
            return Decision("download+load", f"{why}; {observed.host} downloads the tarball", caches.tarball_size)
        if caches.tarball_cached:
            where = f", sent to {observed.host}" if observed.fetch_mode else ""
            # Not read yet: what it holds (and its sha256) is checked as it loads, not now.
            unread = "; read and checked as it loads" if seen.tarball_unread else ""
            return Decision("load", f"{why}; from {source}{where}{unread}", caches.tarball_size)
        return Decision("download+load", f"{why}; the tarball is downloaded first", caches.tarball_size)
    return Decision("missing", f"{why}; the manifest gives no tarball or build and does not pull it (image.pull)")


def _pull(why: str, source: str | None, observed) -> Decision:
    """A pulled image the engine lacks (envctl/registry_plan.RegistryView says what the registry serves)."""
    view = observed.registry
    # What the mirror said when it could not answer (unreachable, lacking the image, wanting
    # credentials) before the image's own registry was asked: up will try it first the same way.
    said = [*view.notes, *([f"size unknown: {view.problem}"] if view.problem else [])] if view is not None else []
    size = f" ({'; '.join(said)})" if said else ""
    if observed.fetch_mode == "push":
        return Decision("pull+push", f"{why}; pulled here from {source}, then sent to {observed.host}{size}",
                        view.bytes if view else None)
    who = f"{observed.host} pulls" if observed.fetch_mode == "remote" else "pulled"
    return Decision("pull", f"{why}; {who} {source}{size}", view.bytes if view else None)


def wanted_image_id(image_decision: Decision, baked: str | None, observed) -> str | None:
    """The engine ID the container will run, when the plan can know it (nothing is loaded)."""
    seen = observed.engine
    if seen is None:
        return None
    if baked:
        return seen.baked_ids.get(baked)
    if image_decision.action == "present":
        return seen.image_id
    if image_decision.action == "tag":
        return seen.pinned_id
    return None


def container(spec: ContainerSpec, image_id: str | None, observed, replaced_mounts: tuple[str, ...] = ()) -> Decision:
    """`replaced_mounts`: the artifacts whose mount source up places again (fetched, copied,
    pushed): a running container's bind mount holds the old file or directory (a deleted one:
    an empty directory, the old bytes), so it is restarted, which mounts the sources anew and
    keeps its filesystem and so its setup markers. The same for its workspace when it is gone
    from the host (observed.workspace_gone: up makes it again) or is not the directory it
    mounted (observed.workspace_replaced). A stopped container mounts them when started."""
    seen = observed.engine
    if seen is None:
        return Decision("unknown", observed.engine_problem or "the engine was not asked")
    current = seen.container
    if current is None:
        return Decision("create", f"no container named {spec.name}")
    labels = current.labels
    if labels.get(LABEL_HASH) == spec.config_hash() and image_id is not None and labels.get(LABEL_IMAGE_ID) == image_id:
        if current.status == "running":
            if replaced_mounts:
                return Decision("restart", f"artifact(s) {', '.join(replaced_mounts)} placed again: its mounts in the "
                                           "running container would still show what was there before")
            if observed.workspace_gone:
                return Decision("restart", f"its workspace {observed.workspace_gone} is gone from the host: made "
                                           f"again, it would not be what the running container's {WORKSPACE_TARGET} "
                                           "shows (the deleted one)")
            if observed.workspace_replaced:
                return Decision("restart", f"its workspace {observed.workspace_replaced} is not the directory the "
                                           f"running container mounted at {WORKSPACE_TARGET} (deleted and made again, "
                                           f"or replaced: it lacks the container's mark {WORKSPACE_MARK})")
            return Decision("unchanged", "running with this configuration and image")
        return Decision("start", f"it is {current.status}")
    changes = tuple(changed_fields(labels, spec, image_id))
    return Decision("recreate", "changed: " + "; ".join(changes), changes=changes)


def changed_fields(old_labels: dict, spec: ContainerSpec, image_id: str | None) -> list[str]:
    """What differs between the existing container and the wanted one, in words. `image_id`:
    None when the image is still to be loaded or built."""
    changes = []
    old_image = old_labels.get(LABEL_IMAGE_ID)
    if image_id is None:
        changes.append("image (to be loaded or built)")
    elif old_image and old_image != image_id:
        changes.append(f"image {old_image[:19]} → {image_id[:19]}")
    try:
        old = json.loads(old_labels.get(LABEL_SPEC, "{}"))
    except ValueError:
        old = {}
    new = json.loads(json.dumps(spec.summary(), default=list))
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        if key == "env":
            before, after = old.get("env") or {}, new.get("env") or {}
            names = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            changes.append(f"env {', '.join(names)}")
        elif key == "vars":
            changes.append(vars_change(old.get("vars") or {}, new.get("vars") or {}))
        else:
            changes.append(key.replace("_", " "))
    return changes or ["configuration (created by another envctl version)"]


def vars_change(before: dict, after: dict) -> str:
    """`--var size=14B dropped`, `--var size=7B → 14B`, `--var cards=2 added`: how the --var
    values an environment was brought up with differ from this up's (envctl/manifest/overrides.py)."""
    said = []
    for name in sorted(set(before) | set(after)):
        if name not in after:
            said.append(f"--var {name}={before[name]} dropped (the manifest's value now)")
        elif name not in before:
            said.append(f"--var {name}={after[name]} added")
        elif before[name] != after[name]:
            said.append(f"--var {name}={before[name]} → {after[name]}")
    return "; ".join(said)


def setup(steps, container_decision: Decision, baked: str | None, observed) -> list[Decision]:
    """One decision per step (RunSetup: index, step_hash), in order."""
    if container_decision.action == "unknown":
        return [Decision("unknown", container_decision.reason) for _ in steps]
    if baked:
        return [Decision("skip", "inside the baked image") for _ in steps]
    if container_decision.action in ("create", "recreate"):
        return [Decision("run", "never ran (new container)") for _ in steps]
    markers = observed.engine.markers
    indices_seen = {index_of(m) for m in markers}
    out: list[Decision] = []
    changed_before = False
    for step in steps:
        name = marker_name(step.index, step.step_hash)
        if name in markers and not changed_before:
            out.append(Decision("skip", "unchanged since it ran"))
            continue
        if name + FAILED_SUFFIX in markers:
            reason = "failed last time"
        elif changed_before:
            reason = "after a changed step"
        elif step.index in indices_seen:
            reason = "changed"
        else:
            reason = "never ran"
        changed_before = True
        out.append(Decision("run", reason))
    return out


def setup_in_progress(steps, container_decision: Decision, observed) -> list[str]:
    """Blockers for the steps this plan would run that another `up` is running now (a live claim:
    a running exec of the claim wrapper, envctl/runs.py kind `setup`): `up` would meet the claim
    and stop. `steps`: RunSetup with their decided action. A container to be recreated or
    restarted is held up by its running work instead (envctl/runs.py blocker)."""
    seen = observed.engine
    if seen is None or seen.container is None or container_decision.action not in ("unchanged", "start"):
        return []
    running = {run.step: run for run in seen.container.runs if run.kind == "setup"}
    out = []
    for step in steps:
        run = running.get(marker_name(step.index, step.step_hash))
        if run is None or step.action != "run":
            continue
        details = [f"pid {run.pid}" if run.pid is not None else f"host pid {run.host_pid}" if run.host_pid else None,
                   f"since {run.since.replace('T', ' ').replace('Z', ' UTC')}" if run.since else None]
        detail = " ".join(d for d in details if d)
        out.append(f"setup step {step.index + 1} '{step.name}' is being run by another `up`"
                   + (f" ({detail})" if detail else "")
                   + "; wait for it to finish (`envctl status` lists it), then run `envctl plan` again")
    return out
