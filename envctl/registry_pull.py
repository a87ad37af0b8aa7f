"""Pulling an image through the engine, through a mirror when one is configured, and checking
it is the pinned one before anything is tagged.

The engine pulls (docker-py `APIClient.pull(stream=True, decode=True)`, the Engine API's
`POST /images/create?fromImage=NAME&tag=TAG|DIGEST`), so the engine's own registry settings
(insecure registries, its proxy, its CA certificates) apply as they do to `docker pull`.
Credentials are Docker's, as `docker pull` would send them: docker-py reads config.json and
runs the credential helpers on this machine and sends the result as the X-Registry-Auth header
(so for an SSH host, this machine's `docker login` is what counts, as with `docker -H ssh://`).

With a mirror (`mirrors.registries` of the user configuration, or the inventory's for an SSH
host), the mirror's name is pulled (by digest when pinned), checked, and tagged with the
canonical `registry/repository:tag` the container runs. When the mirror cannot serve it (it
cannot be reached, or lacks the image), envctl says so and pulls from the image's own registry:
a mirror only changes where bytes come from, and a pinned digest is verified whichever serves
it, so the origin is as safe; refusing would leave a user behind a broken mirror with no way on.
Unpinned images are told apart by the digest they came with, which is reported.
"""

from __future__ import annotations

import re
from typing import Callable

from envctl.image_step import ImageOutcome
from envctl.images import ImageError
from envctl.registry_plan import RegistryView, has_digest
from envctl.registry_refs import ImageName

Progress = Callable[[str, int], Callable[[int], None]]


class _Layers:
    """The engine's per-layer progress events as byte bars: one per layer downloading."""

    def __init__(self, progress: Progress | None, name: str):
        self.progress = progress
        self.name = name
        self.bars: dict[str, tuple[Callable[[int], None], int]] = {}

    def __call__(self, event: dict) -> None:
        detail = event.get("progressDetail") or {}
        layer = event.get("id")
        if self.progress is None or event.get("status") != "Downloading" or not layer or not detail.get("total"):
            return
        if layer not in self.bars:
            self.bars[layer] = (self.progress(f"pulling {self.name} {layer}", int(detail["total"])), 0)
        advance, seen = self.bars[layer]
        current = int(detail.get("current") or 0)
        if current > seen:
            advance(current - seen)
            self.bars[layer] = (advance, current)


def _pull_once(client, image: ImageName, progress: Progress | None) -> str | None:
    """Pull `image` (its registry/repository, by digest or tag); returns the digest the engine
    reported ("Digest: sha256:..."), None when it reported none. Raises ImageError with the
    engine's reason."""
    from docker.errors import APIError, DockerException

    layers = _Layers(progress, image.repository.rsplit("/", 1)[-1])
    digest = None
    try:
        for event in client.api.pull(image.name, tag=image.pull_reference, stream=True, decode=True):
            if "error" in event or "errorDetail" in event:
                detail = (event.get("errorDetail") or {}).get("message") or event.get("error")
                raise ImageError(f"pulling {_shown(image)} failed: {_masked(str(detail), image.registry)}")
            status = str(event.get("status") or "")
            if status.startswith("Digest: "):
                digest = status.split(": ", 1)[1].strip()
            layers(event)
    except APIError as exc:
        raise ImageError(f"pulling {_shown(image)} failed: {_masked(str(exc.explanation or exc), image.registry)}") from None
    except DockerException as exc:  # docker-py's own reading of Docker's credentials (a credsStore helper) failed
        raise ImageError(f"pulling {_shown(image)}: Docker's credential store for {image.registry} failed: {exc}") from None
    return digest


def _masked(text: str, registry: str) -> str:
    """The engine's message with Docker's password for `registry` masked: an engine may quote a
    token service's answer, which may quote the request (containerd's OAuth2 password grant)."""
    from urllib.parse import quote_plus

    from envctl.registry_api import RegistryError, credentials

    try:
        given = credentials(registry)
    except RegistryError:
        return text
    if given:
        for form in {given[1], quote_plus(given[1])}:
            text = text.replace(form, "***")
    return text


def _shown(image: ImageName) -> str:
    return f"{image.name}@{image.digest}" if image.digest else image.tagged


def _attrs(client, reference: str) -> dict | None:
    from envctl.registry_plan import _inspect

    return _inspect(client, reference)


def pull(client, view: RegistryView, expected_id: str | None, records, progress: Progress | None = None,
         echo: Callable[[str], None] = lambda text: None) -> ImageOutcome:
    """Make the engine hold `view.image` under its tag, pulled when it lacks it. `expected_id`:
    image.id, the config digest pin, checked too. `records`: envctl/image_identity.EngineImages
    of this engine (the manifest → config digest records). Raises ImageError; on any refusal
    the canonical tag names what it named before."""
    image = view.image
    if view.present_id:
        return ImageOutcome("present", view.present_id)
    if view.found_id:
        client.api.tag(view.found_id, image.name, image.tag or "latest")
        return ImageOutcome("tagged", view.found_id, f"found as {image.name}@{image.digest} under another name")
    before = _attrs(client, image.tagged)
    tried: list[tuple[ImageName, str]] = []  # (what was pulled, why it failed)
    pulled_as = None
    reported = None
    for source in ([view.mirrored] if view.mirrored else []) + [image]:
        via = f" through mirror {source.registry}" if source is not image else ""
        echo(f"image      pulling {_shown(source)}{via}")
        try:
            reported = _pull_once(client, source, progress)
            pulled_as = source
            break
        except ImageError as exc:
            tried.append((source, exc.message))
            if source is not image:
                echo(f"image      mirror {source.registry} could not serve it ({exc.message}); trying {image.registry}")
    if pulled_as is None:
        raise ImageError("; ".join(message for _, message in tried), hint=_hint(view, tried))
    attrs = _attrs(client, f"{pulled_as.name}@{image.digest}" if image.digest else pulled_as.tagged)
    if attrs is None:
        raise ImageError(f"after pulling {_shown(pulled_as)}, the engine has no such image")
    if image.digest and not has_digest(attrs, image.digest):
        _forget(client, pulled_as, attrs, before)
        raise ImageError(f"{pulled_as.registry} served {_shown(pulled_as)} as {_digest_of(attrs, reported)}, not the pinned "
                         f"{image.digest}; nothing was tagged {image.tagged}", hint=_hint(view))
    config = records.config_digest(records.get(attrs["Id"])) if expected_id else None
    if expected_id and expected_id not in (attrs["Id"], config):
        _forget(client, pulled_as, attrs, before)
        raise ImageError(f"{_shown(pulled_as)} is image {config or attrs['Id']}, the manifest pins image.id {expected_id}; "
                         f"nothing was tagged {image.tagged}", hint="update image.id, or pin the image's digest in image.ref")
    if pulled_as is not image or image.digest:
        client.api.tag(attrs["Id"], image.name, image.tag or "latest")
    digest = image.digest or reported or _digest_of(attrs, None)
    if digest and digest.startswith("sha256:") and not records.containerd_store():
        records.remember(digest, attrs["Id"])  # a pushed copy (docker save drops RepoDigests) is known by its config
    note = None if image.digest else f"not pinned: {image.tagged} is {digest}; `envctl lock` records it"
    if before is not None and before["Id"] != attrs["Id"]:
        moved = f"{image.tagged} pointed at {before['Id']}; now at {attrs['Id']}"
        note = f"{note}; {moved}" if note else moved
    return ImageOutcome("pulled", attrs["Id"], note)


def _digest_of(attrs: dict, reported: str | None) -> str | None:
    if reported:
        return reported
    digests = [str(d).rpartition("@")[2] for d in attrs.get("RepoDigests") or ()]
    return digests[0] if digests else None


def _forget(client, pulled_as: ImageName, attrs: dict, before: dict | None) -> None:
    """A refused pull leaves no name behind that `docker run` could take for the image: the
    mirror's tag (an unpinned pull) is removed, and the canonical one was never moved."""
    from docker.errors import APIError

    if pulled_as.digest is None:
        try:
            client.api.remove_image(pulled_as.tagged)
        except APIError:
            pass


# The engines' words for a registry that wants (other) credentials; the status codes as whole
# words, so that a digest in the message (sha256:...401...) is not taken for one.
_ASKS_CREDENTIALS = re.compile(r"unauthorized|authentication required|no basic auth credentials|denied|"
                               r"failed to authorize|\b40[13]\b", re.IGNORECASE)


def _hint(view: RegistryView, failures: list[tuple[ImageName, str]] = ()) -> str:
    """The next step after a failed pull. `failures`: each registry tried (a mirror, then the
    image's own) with its reason; a login is asked for the registry that wanted one."""
    from envctl.registry_api import docker_config_file, docker_config_problem

    helper = [source.registry for source, reason in failures if "credential store for" in reason]
    if helper:
        return (f"run `docker login {helper[0]}` again, or fix credsStore/credHelpers in {docker_config_file()} "
                f"(its docker-credential-NAME program must be on PATH)")
    refused = [source.registry for source, reason in failures if _ASKS_CREDENTIALS.search(reason)]
    if refused and docker_config_problem():
        return f"{docker_config_problem()}: fix it (the docker CLI refuses it too), then `docker login {refused[0]}`"
    if refused:
        return (f"`docker login {refused[0]}` on this machine (envctl uses Docker's credentials: "
                f"{docker_config_file()} and its credential helpers)")
    said = " ".join(reason for _, reason in failures).lower()
    if not any(word in said for word in ("manifest unknown", "not found", "no such manifest")):
        return "check that the registry (or its mirror in mirrors.registries) can be reached from the engine"
    if view.pinned_by == "lock":
        return "the lock file's digest is no longer served: run `envctl lock` again, or check the registry"
    if view.pinned_by == "ref":
        return "check the @sha256: digest in image.ref (`docker buildx imagetools inspect NAME:TAG` shows the tag's)"
    return "check the reference and that the registry (or its mirror in mirrors.registries) can be reached"
