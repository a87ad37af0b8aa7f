"""Sources that are a path on this machine (plain or file://) and are not there.

`fetch` reads a local source on this machine, whatever host the environment goes to, so a
missing file stops `up` at its fetch whatever the network does. Both the plan (as something to
provide, `needs`) and `doctor` (as a FAIL) say so before `up` starts.
"""

from __future__ import annotations

from pathlib import Path


def missing_here(source) -> bool:
    """A file:// or plain-path source (envctl.artifacts.sources.Source) not on this machine."""
    return source is not None and source.kind == "file" and not Path(source.location).exists()


def needs(loaded, image, observed) -> list[str]:
    """What the plan must list as still to provide: the image tarball when `up` would read it
    (image action download+load) and it is not here, and every artifact whose local source is
    not here and which no cache (this machine's, or the host's) holds."""
    found: list[str] = []
    if image.action == "download+load" and missing_here(loaded.image_source):
        found.append(f"image {image.ref}: the tarball {image.source} does not exist on this machine")
    cached = observed.caches.cached | (observed.caches.remote_cached or frozenset())
    found += [f"artifact {name}: {source.display} does not exist on this machine, and the cache does not hold it"
              for name, source in loaded.sources.items() if name not in cached and missing_here(source)]
    return found
