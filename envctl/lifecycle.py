"""The environment's container on the engine: found by labels, created, started, recreated when
its configuration changed, removed. Two `up`s at once end with one container."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from docker.errors import APIError, DockerException, NotFound

from envctl.containers import LABEL_FILE, LABEL_HASH, LABEL_IMAGE_ID, LABEL_MANIFEST, LABEL_SPEC, ContainerSpec
from envctl.errors import EnvctlError, EXIT_HOST_NOT_READY
from envctl.locks import file_lock


class ContainerError(EnvctlError):
    exit_code = EXIT_HOST_NOT_READY


@dataclass(frozen=True)
class ContainerOutcome:
    action: str  # unchanged | started | created | recreated
    container_id: str
    changes: tuple[str, ...] = ()


def find(client, name: str):
    """The envctl container with this name (running or not), or None."""
    for container in client.containers.list(all=True, filters={"name": name, "label": LABEL_MANIFEST}):
        if container.name == name:
            return container
    return None


def environments(client) -> list:
    """Every container envctl created on this engine."""
    return client.containers.list(all=True, filters={"label": LABEL_MANIFEST})


def changed_fields(old_labels: dict, spec: ContainerSpec, image_id: str) -> list[str]:
    """What differs between the existing container and the wanted one, in words."""
    changes = []
    if old_labels.get(LABEL_IMAGE_ID) and old_labels.get(LABEL_IMAGE_ID) != image_id:
        changes.append(f"image {old_labels[LABEL_IMAGE_ID][:19]} → {image_id[:19]}")
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
        else:
            changes.append(key.replace("_", " "))
    return changes or ["configuration (created by another envctl version)"]


def _start(container, name: str) -> None:
    try:
        container.start()
    except APIError as exc:
        raise ContainerError(f"the engine could not start {name}: {exc.explanation or exc}") from None


def _create(client, spec: ContainerSpec, image_id: str, manifest_file: str):
    try:
        container = client.containers.create(**spec.api_kwargs({LABEL_IMAGE_ID: image_id, LABEL_FILE: manifest_file}))
    except APIError as exc:
        if exc.status_code == 409:
            raise  # the name is taken: the caller looks again
        raise ContainerError(f"the engine refused to create {spec.name}: {exc.explanation or exc}") from None
    except DockerException as exc:  # docker-py refused a value before sending it (validate checks them too)
        raise ContainerError(f"docker-py refused the settings of {spec.name}: {exc}", hint="run `envctl validate` on the manifest") from None
    try:
        _start(container, spec.name)
    except ContainerError:
        _remove(container)  # never leave a container that cannot start for the next `up` to find
        raise
    return container


def ensure(client, spec: ContainerSpec, image_id: str, manifest_file: str, lock_dir: Path) -> ContainerOutcome:
    with file_lock(lock_dir / f"{spec.name}.lock"):  # `up`s of one environment, one at a time
        for _attempt in range(3):
            existing = find(client, spec.name)
            if existing is not None:
                labels = existing.labels
                same = labels.get(LABEL_HASH) == spec.config_hash() and labels.get(LABEL_IMAGE_ID) == image_id
                if same:
                    if existing.status == "running":
                        return ContainerOutcome("unchanged", existing.id)
                    _start(existing, spec.name)
                    return ContainerOutcome("started", existing.id)
                changes = changed_fields(labels, spec, image_id)
                _remove(existing)
                return ContainerOutcome("recreated", _create(client, spec, image_id, manifest_file).id, tuple(changes))
            try:
                return ContainerOutcome("created", _create(client, spec, image_id, manifest_file).id)
            except APIError:
                continue  # created meanwhile by an `up` elsewhere (another machine, same engine)
        raise ContainerError(f"could not create {spec.name}: its name stays taken")


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
