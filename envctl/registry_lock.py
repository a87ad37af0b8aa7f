"""`envctl lock` for a pulled image: the manifest digest its tag names now, recorded under
`docker://registry/repository:tag` in manifest.lock (the revision field), so that `plan` and
`up` pull exactly that digest until the next `envctl lock`.

The digest is the one the registry serves for the tag (through this machine's mirror when one
is configured, envctl/mirror_routes.py): for a multi-platform image the digest of its index,
which is what `docker pull` reports and records in RepoDigests on every platform; so one lock
serves x86_64 and aarch64 servers alike.
"""

from __future__ import annotations

import platform as machine
from typing import Callable

from envctl.artifacts.lockfile import Locked
from envctl.image_platforms import normalize
from envctl.registry_refs import lock_key, parse


def lock_pulled(ref: str, routes, note: Callable[[str], None]) -> Locked:
    """The lock entry of a pulled image. `routes`: registry host → Route (this machine's).
    Raises RegistryError when no registry answers. A ref that pins a digest keeps it; when the
    tag names another now, `note` says so."""
    from envctl.registry_api import resolve_through
    from envctl.registry_plan import mirror_for

    image = parse(ref)
    tag_only = image.with_digest(None)
    mirror = mirror_for(image, routes)
    mirrored = None
    if mirror is not None:
        from envctl.registry_refs import through_mirror

        mirrored = through_mirror(tag_only, mirror.prefix)
        note(f"image {image.tagged}: asking mirror {mirrored.registry} (set in {mirror.origin})")
    here = normalize("linux", machine.machine())
    resolved = resolve_through(tag_only, here, mirrored, note)
    if image.digest and resolved.digest != image.digest:
        note(f"image {image.tagged}: the tag now names {resolved.digest}; the manifest pins {image.digest}, which is kept")
    digest = image.digest or resolved.digest
    note(f"image {image.tagged}: {digest}")
    return Locked(lock_key(ref), digest, ())
