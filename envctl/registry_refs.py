"""Image references of pulled images: their parts, the name a container runs, the lock key, and
the name pulled through a registry mirror.

A reference is `[registry/]repository[:tag][@digest]`, normalised as Docker's
distribution/reference package does (envctl/references.py): `ubuntu` is
`docker.io/library/ubuntu:latest`. The digest of a pulled image is its *manifest digest*: the
sha256 of the manifest (or of the image index / manifest list above the per-platform manifests)
that the registry serves for the tag, as `docker pull` prints it ("Digest: sha256:...") and as
`docker inspect` lists it in RepoDigests (distribution's "Content Digests" in
docs/spec/api.md: the `Docker-Content-Digest` header is that digest).

Docker tags no image with a digest ("refusing to create a tag with a digest reference"), so a
pulled image is run by its tag form `registry/repository:tag`, and the digest is checked
against the image's RepoDigests (or, on the containerd image store, its .Id, which is that same
manifest or index digest).

A mirror (the user configuration's `mirrors.registries`: registry host → repository prefix, as
`m.daocloud.io/quay.io` for quay.io or `docker.m.daocloud.io` for docker.io) serves the same
repository under its prefix: quay.io/ascend/vllm-ascend is pulled as
m.daocloud.io/quay.io/ascend/vllm-ascend, docker.io's ubuntu as docker.m.daocloud.io/library/ubuntu.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from envctl.references import DEFAULT_DOMAIN, LEGACY_DOMAIN, normalize

LOCK_PREFIX = "docker://"  # the lock file's key of a pulled image, in skopeo's transport spelling
LOOPBACK_HOSTS = ("localhost", "127.", "[::1]")


@dataclass(frozen=True)
class ImageName:
    """A normalised reference. `registry`: host[:port] (docker.io for Docker Hub);
    `repository`: the path on it (library/ubuntu); `tag`: None only when a digest alone was
    given; `digest`: `sha256:<64 hex>` or None."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """registry/repository, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def tagged(self) -> str:
        """registry/repository:tag: what a container runs and what envctl tags (a digest cannot be a tag)."""
        return f"{self.name}:{self.tag or 'latest'}"

    @property
    def pull_reference(self) -> str:
        """What is asked of the registry: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str | None) -> "ImageName":
        return ImageName(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        return self.tagged + (f"@{self.digest}" if self.digest else "")


def parse(reference: str) -> ImageName:
    """`quay.io/ascend/vllm-ascend:v0.7.3@sha256:...` → its parts, normalised (a reference
    without tag or digest gets the tag `latest`, as Docker gives it). The reference is assumed
    valid (the manifest's model checks it: envctl/manifest/docker_values.py)."""
    full = normalize(reference)
    named, _, digest = full.partition("@")
    slash = named.rfind("/")
    colon = named.rfind(":")
    tag = None
    if colon > slash:
        named, tag = named[:colon], named[colon + 1:]
    registry, _, repository = named.partition("/")
    return ImageName(registry, repository, tag, digest or None)


def lock_key(reference: str) -> str:
    """The lock file's key for a pulled image: its tag form, so that the digest the tag resolved
    to is recorded once and a manifest that adds the digest to its ref keeps the entry."""
    return LOCK_PREFIX + parse(reference).tagged


def _host_key(host: str) -> str:
    host = host.strip().rstrip("/").lower()
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme):]
    return DEFAULT_DOMAIN if host in (LEGACY_DOMAIN, "registry-1.docker.io") else host


def mirror_prefix(image: ImageName, registries: Mapping[str, str]) -> str | None:
    """The mirror's repository prefix for the image's registry (keys compared as host names:
    `index.docker.io`, `registry-1.docker.io` and `https://docker.io` all mean docker.io, and
    in lower case on both sides, DNS names being case-insensitive: `Quay.io/ascend/x` goes
    through quay.io's mirror), or None."""
    for host, prefix in registries.items():
        if _host_key(host) == _host_key(image.registry):
            return prefix.strip().rstrip("/")
    return None


def through_mirror(image: ImageName, prefix: str) -> ImageName:
    """The image as the mirror names it: `m.daocloud.io/quay.io` + `ascend/vllm-ascend` →
    registry m.daocloud.io, repository quay.io/ascend/vllm-ascend. A prefix that is a host
    alone (`docker.m.daocloud.io`) keeps the repository as it is (library/ubuntu)."""
    for scheme in ("https://", "http://"):
        if prefix.startswith(scheme):
            prefix = prefix[len(scheme):]
    host, _, path = prefix.partition("/")
    repository = f"{path.strip('/')}/{image.repository}" if path.strip("/") else image.repository
    return ImageName(host.lower(), repository, image.tag, image.digest)


def is_loopback(registry: str) -> bool:
    """A registry on this machine's loopback, which Docker reaches over plain HTTP when TLS is
    not offered (dockerd marks 127.0.0.0/8 as an insecure registry by default: moby
    registry/config.go, `InsecureRegistryCIDRs` seeded with 127.0.0.0/8)."""
    return registry.startswith(LOOPBACK_HOSTS)
