"""Test images without a registry: a static busybox rootfs imported into the engine, then
saved as a `docker save` tarball."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import docker
import pytest

from support import IMAGE


def _rootfs_tar(extra: dict[str, bytes] | None = None) -> bytes:
    """A busybox rootfs as a tar stream: /bin/busybox plus its applets, /tmp, /etc."""
    busybox = Path("/bin/busybox")
    if not busybox.exists() or subprocess.run(["ldd", str(busybox)], capture_output=True).returncode == 0:
        pytest.fail("a static /bin/busybox is needed to build test images (Debian: busybox-static)", pytrace=False)
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for directory in ("bin", "tmp", "etc", "var", "root"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            archive.addfile(info)
        archive.add(str(busybox), "bin/busybox")
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                archive.addfile(link)
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def save_image(engine, extra: dict[str, bytes] | None, path: Path, ref: str = IMAGE) -> str:
    """Import a busybox rootfs (plus `extra` files) as `ref` (REPOSITORY:TAG), `docker save` it
    to `path`, remove it from the engine again, and return its image ID (on the classic store
    its config digest, on the containerd store its manifest digest)."""
    repository, tag = ref.rsplit(":", 1)
    engine.api.import_image_from_data(_rootfs_tar(extra), repository=repository, tag=tag)
    image = engine.images.get(ref)
    with open(path, "wb") as handle:
        for chunk in image.save(named=True):
            handle.write(chunk)
    engine.images.remove(ref, force=True)
    return image.id


def remove_images(engine, names) -> None:
    """Remove each image of `names` (refs or IDs) from the engine, forced; one not there is skipped."""
    for name in names:
        try:
            engine.images.remove(name, force=True)
        except docker.errors.ImageNotFound:
            pass
