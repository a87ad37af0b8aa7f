"""Unpacking .tar(.gz|.bz2|.xz) and .zip archives, never outside their target.

The format is recognised from the content (a download URL such as `...?dl=1` says nothing).
Absolute paths, `..` components, links that point outside the target and device files are
refused with the offending entry named; nothing is left half-extracted in the target.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from envctl.errors import FetchError


class ArchiveError(FetchError):
    """An archive that cannot be extracted safely."""


def _unsafe(name: str) -> bool:
    """Absolute, climbing (`..`) or Windows-rooted (`C:`, `\\`) entry names."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        return True
    return bool(path.parts) and path.parts[0].endswith(":")


def extract(archive: Path, destination: Path, display: str) -> None:
    """Unpack `archive` into the (new) directory `destination`."""
    destination.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, destination, display)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, destination, display)
        else:
            raise ArchiveError(f"{display}: `extract: true`, but the file is neither a tar nor a zip archive")
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise


def _extract_tar(archive: Path, destination: Path, display: str) -> None:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            if _unsafe(member.name):
                raise ArchiveError(f"{display}: entry '{member.name}' would land outside the target; nothing was extracted")
            if member.issym() or member.islnk():
                base = PurePosixPath(member.name).parent if member.issym() else PurePosixPath()
                target = PurePosixPath(member.linkname)
                resolved = (base / target) if not target.is_absolute() else target
                if target.is_absolute() or ".." in _normal(resolved).parts[:1]:
                    raise ArchiveError(f"{display}: link '{member.name}' → '{member.linkname}' points outside the target; nothing was extracted")
            if member.isdev() or member.isfifo():
                raise ArchiveError(f"{display}: entry '{member.name}' is a device or pipe; nothing was extracted")
        # The data filter (PEP 706) re-checks all of the above and drops modes such as setuid.
        tar.extractall(destination, members=members, filter="data")


def _normal(path: PurePosixPath) -> PurePosixPath:
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            else:
                parts.append("..")
        elif part not in (".", ""):
            parts.append(part)
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _extract_zip(archive: Path, destination: Path, display: str) -> None:
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            if _unsafe(info.filename):
                raise ArchiveError(f"{display}: entry '{info.filename}' would land outside the target; nothing was extracted")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ArchiveError(f"{display}: entry '{info.filename}' is a link; nothing was extracted")
        zipped.extractall(destination)
