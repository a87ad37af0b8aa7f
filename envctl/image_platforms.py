"""Platforms (os/architecture/variant) of images and engines, compared as containerd and Docker
compare them, so that envctl picks from a multi-platform image the one the engine runs.

A multi-platform image is an image index (OCI) or manifest list (Docker) naming one manifest per
platform; `docker buildx build --platform linux/amd64,linux/arm64` writes one, and adds
attestation manifests of platform `unknown/unknown` (buildx docs, "attestations storage"), which
name no runnable image. Docker's containerd image store loads such an index whole, names the
image by the index digest (checked on Docker 28.5.2: `docker load` of an amd64 + arm64 index
gives .Id = the index.json entry's digest, with both platforms under it in `docker images
--tree`) and runs the engine's own platform. The classic store loads only `manifest.json`.

Normalisation follows containerd's platforms package (`Normalize`): x86_64 is amd64, aarch64
is arm64, whose variant v8 is its default (so `arm64` and `arm64/v8` are one platform), and
32-bit arm without a variant is arm/v7.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ARCHITECTURES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm", "i386": "386"}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def normalize(os: str, architecture: str, variant: str = "") -> Platform:
    os = (os or "").lower()
    architecture = _ARCHITECTURES.get((architecture or "").lower(), (architecture or "").lower())
    variant = (variant or "").lower()
    if architecture == "arm64" and variant in ("v8", "8"):
        variant = ""
    elif architecture == "arm" and not variant:
        variant = "v7"
    elif architecture == "amd64" and variant == "v1":
        variant = ""
    return Platform(os, architecture, variant)


def of_descriptor(descriptor: dict) -> Platform | None:
    """The platform of an index entry (its `platform` object); None when it has none."""
    platform = descriptor.get("platform")
    if not isinstance(platform, dict) or not platform.get("architecture"):
        return None
    return normalize(platform.get("os", ""), platform["architecture"], platform.get("variant", ""))


def is_attestation(descriptor: dict) -> bool:
    """An index entry that names no runnable image: buildx's attestation manifests (platform
    unknown/unknown, annotation vnd.docker.reference.type = attestation-manifest)."""
    platform = descriptor.get("platform") or {}
    annotations = descriptor.get("annotations") or {}
    return platform.get("os") == "unknown" or annotations.get("vnd.docker.reference.type") == "attestation-manifest"


def of_engine(client) -> Platform:
    """The platform the engine runs images of. `GET /version` gives Os and Arch (GOOS/GOARCH);
    it has no variant, so 32-bit arm's is read from `GET /info` Architecture (uname -m,
    e.g. armv6l), else containerd's default v7."""
    version = client.version()
    platform = normalize(version.get("Os", ""), version.get("Arch", ""))
    if platform.architecture == "arm":
        machine = str((client.info() or {}).get("Architecture", ""))
        found = re.match(r"armv(\d)", machine)
        if found:
            platform = Platform(platform.os, "arm", f"v{found.group(1)}")
    return platform


def parse(text: str) -> Platform:
    """`linux/arm64/v8` → Platform; as the tarball identity cache stores them."""
    parts = (text.split("/") + ["", ""])[:3]
    return normalize(*parts)
