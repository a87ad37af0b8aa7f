"""Putting files on a remote host: resumable, verified there by sha256, never sent twice.

A file goes to `<dest>.partial` beside its destination and is appended to from the size the
remote already has, so a dropped connection costs only what was in flight. It becomes the
destination (by rename) only after `sha256sum` on the remote agrees with the digest we expect:
a partial or corrupt file is never taken for a whole one. On a fresh send the remote hashes
the bytes as they arrive (`tee | sha256sum`), so verifying costs no second read.

The bytes travel over the host's master SSH connection; os.sendfile moves them from the file
into ssh's stdin without a copy through Python, so the cipher is the only limit, as for scp.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable

from envctl.errors import FetchError
from envctl.remote.ssh import RemoteError, SSHConnection

BLOCK = 8 << 20

# $1 final, $2 partial: "present" when the final file is there, else the partial's size.
_STATE = 'if [ -f "$1" ]; then echo present; else mkdir -p "$(dirname "$2")" && ' \
         'if [ -f "$2" ]; then wc -c < "$2"; else echo 0; fi; fi'
_APPEND_HASHED = 'tee -a "$1" | sha256sum'  # a send from 0: hashed as it arrives
_APPEND = 'cat >> "$1"'
_SHA = 'sha256sum < "$1"'
_ADOPT = 'chmod 0444 "$1" && mv -f "$1" "$2"'


def push_file(connection: SSHConnection, local: Path, remote: str, sha256: str,
              advance: Callable[[int], None] | None = None, attempts: int = 4) -> str:
    """Make `remote` hold the bytes of `local` (whose sha256 is known). Returns "present"
    (nothing sent), "sent" or "resumed"."""
    size = local.stat().st_size
    partial = f"{os.path.dirname(remote)}/.{os.path.basename(remote)}.partial"
    resumed = False
    for attempt in range(attempts):
        state = connection.check(["sh", "-c", _STATE, "sh", remote, partial], "checking " + remote).strip()
        if state == "present":
            return "resumed" if resumed else ("present" if attempt == 0 else "sent")
        offset = int(state or 0)
        if offset > size:  # not a prefix of this file: start again
            connection.check(["rm", "-f", partial], "removing " + partial)
            offset = 0
        if offset:
            resumed = True
        if advance and offset and attempt == 0:
            advance(offset)  # already there from an earlier run
        remote_digest = _send(connection, local, partial, offset, size, advance)
        if remote_digest is None:
            continue  # the connection dropped: ask again how much arrived
        if remote_digest == "":
            remote_digest = connection.check(["sh", "-c", _SHA, "sh", partial], "hashing " + partial).split()[0]
        if remote_digest != sha256:
            connection.run(["rm", "-f", partial])
            raise FetchError(f"{connection.destination}:{remote}: arrived with sha256 {remote_digest}, expected {sha256}; "
                             "the partial copy was removed", hint="run again; if it repeats, check the disk on that host")
        connection.check(["sh", "-c", _ADOPT, "sh", partial, remote], "placing " + remote)
        return "resumed" if resumed else "sent"
    raise RemoteError(f"{connection.destination}: sending {local.name} kept failing after {attempts} attempts; "
                      "what arrived is kept and the next run resumes from there")


def _send(connection: SSHConnection, local: Path, partial: str, offset: int, size: int, advance) -> str | None:
    """Append local[offset:] to the remote partial. Returns the remote's sha256 of the whole
    file when it hashed the stream, "" when it could not (a resumed send), None when the
    transfer broke off."""
    hashed = offset == 0
    script = _APPEND_HASHED if hashed else _APPEND
    process = subprocess.Popen(connection.command(["sh", "-c", script, "sh", partial]), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with open(local, "rb") as source:
            position = offset
            while position < size:
                sent = os.sendfile(process.stdin.fileno(), source.fileno(), position, min(BLOCK, size - position))
                if sent == 0:
                    break
                position += sent
                if advance:
                    advance(sent)
    except (BrokenPipeError, ConnectionResetError):
        pass
    stdout, _ = finish(process)
    if process.returncode != 0:
        return None
    return stdout.decode().split()[0] if hashed and stdout.strip() else ""


def finish(process: subprocess.Popen) -> tuple[bytes, bytes]:
    """Close what we were writing to a process and collect its output and exit code."""
    try:
        process.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass
    process.stdin = None  # communicate() must not flush it again
    return process.communicate()


def remote_sha256(connection: SSHConnection, path: str) -> str | None:
    result = connection.run(["sh", "-c", _SHA, "sh", path])
    return result.stdout.split()[0] if result.returncode == 0 and result.stdout.strip() else None
