"""The image step of `up` for a pulled image, on any host.

- this machine, and an SSH host with `fetch: remote`: the host's engine pulls, through the
  mirror configured for that host (envctl/mirror_routes.py), and checks the digest;
- an SSH host with `fetch: push` (air-gapped: it reaches no registry): this machine's engine
  pulls (through this machine's mirror), the image is written as a `docker save` tarball into
  this machine's cache (once per manifest digest), and goes the way image tarballs go: pushed
  into the host's cache, verified there, loaded (envctl/remote/place.py), checked to be the
  pulled image (its config digest: `docker save` keeps no RepoDigests, so the host knows it by
  that, from envctl's records of what each manifest digest pulled).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from envctl.artifacts.cache import Cache
from envctl.errors import FetchError
from envctl.image_step import ImageOutcome
from envctl.manifest.loader import Loaded
from envctl.plan import Plan


def _view(host, loaded: Loaded, client, resolve: bool = False):
    from envctl.image_identity import RECORDS, EngineImages
    from envctl.mirror_routes import of_host
    from envctl.paths import cache_dir
    from envctl.registry_plan import observe

    records = EngineImages(client, cache_dir() / "state" / RECORDS)
    view = observe(loaded.manifest.image.ref, loaded.image_lock, of_host(host).registries, client, records=records,
                   resolve=resolve)
    return view, records


def ensure_pulled(host, client, loaded: Loaded, plan: Plan, local: Cache, echo: Callable[[str], None], progress=None,
                  offline: bool = False) -> tuple[ImageOutcome, str]:
    """Execute the plan's pull (or pull+push); returns the outcome and what was executed, in the
    plan's words. Raises ImageError, FetchError."""
    from envctl.registry_pull import pull

    if host.fetch_mode == "push":
        return _pull_and_push(host, client, loaded, plan, local, echo, progress, offline)
    view, records = _view(host, loaded, client)
    if offline and not (view.present_id or view.found_id):
        raise FetchError(f"image {view.image.tagged} is not on {host.name} and --offline was given: it would be pulled")
    outcome = pull(client, view, loaded.manifest.image.id, records, progress, echo)
    echo(f"image      {view.image.tagged}: {outcome.action}" + (f" ({outcome.note})" if outcome.note else ""))
    return outcome, {"pulled": "pull", "tagged": "tag"}.get(outcome.action, outcome.action)


def _pull_and_push(host, client, loaded: Loaded, plan: Plan, local: Cache, echo, progress, offline) -> tuple[ImageOutcome, str]:
    from envctl.artifacts.sources import Source
    from envctl.hosts.local import LocalHost
    from envctl.image_step import ensure_image
    from envctl.images import IdentityCache
    from envctl.registry_pull import pull

    remote_view, remote_records = _view(host, loaded, client)
    if remote_view.present_id or remote_view.found_id:  # there already (or under another name: tagged)
        outcome = pull(client, remote_view, loaded.manifest.image.id, remote_records)
        echo(f"image      {remote_view.image.tagged}: {outcome.action}")
        return outcome, {"tagged": "tag"}.get(outcome.action, outcome.action)
    here = LocalHost.from_environ()
    local_client = here.engine()
    view, records = _view(here, loaded, local_client)
    if offline and not (view.present_id or view.found_id):
        raise FetchError(f"image {view.image.tagged} is on neither this machine nor {host.name}, and --offline was given")
    pulled = pull(local_client, view, loaded.manifest.image.id, records, progress, echo)
    config = records.config_digest(records.get(pulled.image_id))
    tarball = _saved(local_client, view.image.tagged, pulled.image_id, local, progress)
    echo(f"image      {view.image.tagged}: pulled here ({pulled.action}), sent to {host.name} as {tarball.name}")
    step = _tarball_step(plan, view.image.tagged, config or pulled.image_id, str(tarball))
    outcome = ensure_image(client, step, Source("file", str(tarball)), IdentityCache(local.root / "state" / "tarballs.json"),
                           progress, host.engine_socket(), loader=host.image_loader())
    if view.image.digest and config:
        records.remember(view.image.digest, config)  # how the host knows it next time (no RepoDigests there)
    echo(f"image      {view.image.tagged}: {outcome.action}" + (f" ({outcome.note})" if outcome.note else ""))
    return outcome, "pull+push"


def _tarball_step(plan: Plan, ref: str, config_digest: str, source: str):
    import dataclasses

    return dataclasses.replace(plan.image, ref=ref, expected_id=config_digest, origin="tarball", source=source,
                               sha256=None, obtain=None)


def _saved(client, ref: str, image_id: str, local: Cache, progress) -> Path:
    """`docker save REF` into this machine's cache, named by the image ID: written once, as a
    whole (a partial file is never taken for a finished one). `up --hosts` asks from a thread
    per host: one saves under the cache's lock for that file (Cache.locked: threads and other
    processes alike) while the others wait for its file (or its error, raised in each), and a
    file finished first is kept, never renamed over (envctl/atomic.place_once): a host's push
    may be hashing it (envctl/file_digest.py checks its inode)."""
    import uuid

    from envctl.atomic import place_once

    directory = local.root / "pulled"
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{image_id.split(':', 1)[-1]}.tar"
    with local.locked(f"pulled:{final.name}"):
        if final.is_file():
            return final
        failed = _FAILED.get(final)
        if failed is not None:  # the thread that saved it first failed: so does this host, at once
            raise FetchError(f"image {ref}: its docker save on this machine failed, for another host of this up: "
                             f"{_said(failed)}", hint="the error of that host says more") from failed
        partial = directory / f".{final.name}.{uuid.uuid4().hex}.partial"
        try:
            image = client.images.get(ref)
            with open(partial, "wb") as handle:
                for chunk in image.save(named=True):
                    handle.write(chunk)
            place_once(partial, final)
        except Exception as exc:
            _FAILED[final] = exc
            raise
        finally:
            partial.unlink(missing_ok=True)
    return final


_FAILED: dict[Path, Exception] = {}  # a save this process failed, by its file: read and written under its lock


def _said(error: Exception) -> str:
    return getattr(error, "message", None) or str(error) or type(error).__name__
