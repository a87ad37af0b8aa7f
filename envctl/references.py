"""Image references as Docker normalises them, so that `docker.io/library/busybox:1`,
`library/busybox:1` and `busybox:1` are one name, and `busybox` is `busybox:latest`.

The rules are those of the distribution/reference package that Docker uses
(`ParseNormalizedNamed`, `TagNameOnly`, `FamiliarString` in normalize.go): the part before the
first `/` is a registry only when it contains `.` or `:` or is `localhost` (and is lower case);
otherwise the registry is `docker.io`. `index.docker.io` is the legacy spelling of `docker.io`.
An official image on docker.io (a single path component) lives under `library/`. A reference
without a tag or digest means the tag `latest`.
"""

from __future__ import annotations

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_REPOSITORY = "library/"
DEFAULT_TAG = "latest"


def _split_domain(name: str) -> tuple[str, str]:
    first, _, rest = name.partition("/")
    if not rest or (not any(c in first for c in ".:") and first != "localhost" and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPOSITORY + remainder
    return domain, remainder


def normalize(reference: str) -> str:
    """The fully qualified form: `busybox` → `docker.io/library/busybox:latest`. A digest
    (`name@sha256:...`) is kept and no tag is added to it."""
    name, at, digest = reference.partition("@")
    tag = ""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:  # a colon after the last slash separates the tag (one before it is a port)
        name, tag = name[:colon], name[colon + 1:]
    domain, remainder = _split_domain(name)
    full = f"{domain}/{remainder}"
    if tag:
        full += f":{tag}"
    elif not at:
        full += f":{DEFAULT_TAG}"
    return full + (f"@{digest}" if at else "")


def same(a: str, b: str) -> bool:
    """Whether two references name the same image tag as Docker reads them."""
    return normalize(a) == normalize(b)
