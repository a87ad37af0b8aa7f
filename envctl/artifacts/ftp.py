"""FTP sources (vendor FTP accounts): resumable with REST, verified by sha256.

Credentials come from the URL, else ~/.netrc (the usual place for vendor FTP accounts), else
anonymous; they are never printed. A dropped connection is resumed from the bytes already on
disk, within the run and across runs.
"""

from __future__ import annotations

import ftplib
import hashlib
import netrc
import socket
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from envctl.artifacts.cache import CHUNK, Cache, file_hash
from envctl.artifacts.download import RETRIES
from envctl.errors import FetchError
from envctl.artifacts.sources import Source

TIMEOUT = 60


def _credentials(host: str, user: str | None, password: str | None) -> tuple[str, str]:
    if user:
        return user, password or ""
    try:
        entry = netrc.netrc().authenticators(host)
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        entry = None
    if entry:
        return entry[0] or "anonymous", entry[2] or ""
    return "anonymous", "anonymous@"


def fetch_ftp(source: Source, expected: str | None, cache: Cache) -> tuple[str, int]:
    """Make sure the file is a verified blob; returns (sha256, size)."""
    if expected and cache.has_blob(expected):
        return expected, cache.blob(expected).stat().st_size
    parts = urlsplit(source.location)
    user, password = _credentials(parts.hostname, unquote(parts.username) if parts.username else None, source.password)
    path = unquote(parts.path)
    part = cache.partial(f"{source.display}|{expected or ''}")
    size = None
    digest = hashlib.sha256()
    for attempt in range(RETRIES):
        try:
            with ftplib.FTP(timeout=TIMEOUT) as ftp:
                ftp.connect(parts.hostname, parts.port or 21)
                ftp.login(user, password)
                ftp.voidcmd("TYPE I")
                size = ftp.size(path)
                offset = part.stat().st_size if part.exists() else 0
                if size is not None and offset > size:
                    part.unlink()
                    offset = 0
                digest = file_hash(part) if offset else hashlib.sha256()  # the bytes already here, once
                if size is None or offset < size:
                    with open(part, "ab") as handle:
                        def write(block: bytes) -> None:
                            handle.write(block)
                            digest.update(block)  # hashed as it arrives: no second read

                        ftp.retrbinary(f"RETR {path}", write, blocksize=CHUNK, rest=offset or None)
            break
        except ftplib.error_perm as exc:
            text = str(exc)
            if text.startswith("530"):
                raise FetchError(f"{source.display}: login refused", hint="check the FTP account (URL user or ~/.netrc)") from None
            if text.startswith("550"):
                raise FetchError(f"{source.display}: no such file on the server") from None
            raise FetchError(f"{source.display}: {text}") from None
        except (OSError, EOFError, ftplib.error_temp, ftplib.error_reply, socket.timeout):
            time.sleep(0.5 * 2**attempt)  # dropped: the next try resumes with REST
    else:
        raise FetchError(f"{source.display}: the connection kept dropping; run again to resume")
    actual = part.stat().st_size if part.exists() else 0
    if size is not None and actual != size:
        raise FetchError(f"{source.display}: got {actual} bytes of {size}; run again to resume")
    digest = digest.hexdigest()
    if expected and digest != expected:
        part.unlink()
        raise FetchError(f"{Path(path).name}: sha256 {digest} does not match the expected {expected} "
                         f"(source {source.display}); the download was discarded")
    cache.adopt(part, digest)
    return digest, actual

