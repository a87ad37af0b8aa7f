"""Putting files on a remote host: resumable, verified there by sha256, never sent twice.

A file goes to `<dest>.partial` beside its destination and is appended to from the size the
remote already has, so a dropped connection costs only what was in flight. It becomes the
destination (by rename) only after `sha256sum` on the remote agrees with the digest we expect:
a partial or corrupt file is never taken for a whole one. The remote hashes with `openssl
dgst` when it has it (OpenSSL uses the CPU's SHA instructions: ~1.3 GB/s here, against ~320
MB/s for coreutils' sha256sum) after the bytes are in; hashing them as they arrive (`tee |`)
measured slower, as the hash then competes with the transfer for the CPU.

Large files travel on an SSH connection of their own (see SSHConnection.bulk_command);
os.sendfile moves the bytes from the file into ssh's stdin without a copy through Python.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Callable

from envctl.errors import FetchError
from envctl.remote.ssh import RemoteError, SSHConnection

BLOCK = 8 << 20
BULK = 64 << 20  # from this size a file gets its own connection; below, the handshake costs more

# $1 final, $2 partial: "present" when the final file is there, else the partial's size.
_STATE = 'if [ -f "$1" ]; then echo present; else mkdir -p "$(dirname "$2")" && ' \
         'if [ -f "$2" ]; then wc -c < "$2"; else echo 0; fi; fi'
_APPEND = 'cat >> "$1"'
_SHA = 'if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r < "$1"; else sha256sum < "$1"; fi'
_ADOPT = 'chmod 0444 "$1" && mv -f "$1" "$2"'


def push_file(connection: SSHConnection, local: Path, remote: str, sha256: str,
              advance: Callable[[int], None] | None = None, attempts: int = 4) -> str:
    """Make `remote` hold the bytes of `local` (whose sha256 is known). Returns "present"
    (nothing sent), "sent", or "resumed at N bytes" (N: where the first resume started)."""
    size = local.stat().st_size
    partial = f"{os.path.dirname(remote)}/.{os.path.basename(remote)}.partial"
    resumed_at = None
    for attempt in range(attempts):
        state = connection.check(["sh", "-c", _STATE, "sh", remote, partial], "checking " + remote).strip()
        if state == "present":
            return "present" if attempt == 0 else _outcome(resumed_at)
        offset = int(state or 0)
        if offset > size:  # not a prefix of this file: start again
            connection.check(["rm", "-f", partial], "removing " + partial)
            offset = 0
        if offset and resumed_at is None:
            resumed_at = offset
        if advance and offset and attempt == 0:
            advance(offset)  # already there from an earlier run
        if not _send(connection, local, partial, offset, size, advance):
            continue  # the connection dropped: ask again how much arrived
        adopt(connection, partial, remote, sha256, local.name)
        return _outcome(resumed_at)
    raise RemoteError(f"{connection.destination}: sending {local.name} kept failing after {attempts} attempts; "
                      "what arrived is kept and the next run resumes from there")


def _outcome(resumed_at: int | None) -> str:
    return "sent" if resumed_at is None else f"resumed at {resumed_at} bytes"


def adopt(connection: SSHConnection, partial: str, final: str, sha256: str | None, what: str) -> str:
    """Hash the remote partial file there; rename it to `final` only when it matches `sha256`
    (any digest when None). Returns the digest."""
    digest = connection.check(["sh", "-c", _SHA, "sh", partial], "hashing " + partial).split()[0]
    if sha256 is not None and digest != sha256:
        connection.run(["rm", "-f", partial])
        raise FetchError(f"{connection.destination}: {what} arrived with sha256 {digest}, expected {sha256}; "
                         "the partial copy was removed", hint="run again; if it repeats, check the source and the disk")
    connection.check(["sh", "-c", _ADOPT, "sh", partial, final], "placing " + final)
    return digest


# $1 URL, $2 partial; curl's options (auth headers) arrive on stdin, never on a command line.
# Resumes what an earlier run left (-C -); a server that ignores ranges (curl exit 33) gets a
# fresh start.
_DOWNLOAD = r'''command -v curl >/dev/null 2>&1 || { echo "curl is not installed" >&2; exit 127; }
mkdir -p "$(dirname "$2")"
config=$(cat)
printf '%s\n' "$config" | curl -fsSL --retry 5 --retry-delay 2 --connect-timeout 30 -C - -K - -o "$2" "$1"
code=$?
if [ "$code" = 33 ]; then rm -f "$2"; printf '%s\n' "$config" | curl -fsSL --retry 5 --connect-timeout 30 -K - -o "$2" "$1"; code=$?; fi
exit $code
'''


def download_remotely(connection: SSHConnection, url: str, display: str, blobs: str, sha256: str | None,
                      headers: dict | None = None, auth: tuple | None = None) -> str:
    """The remote host downloads `url` itself (from its own mirror) into its blob directory
    `blobs`, resumable, verified there. Returns the file's sha256."""
    if sha256 is not None:
        state = connection.check(["sh", "-c", _STATE, "sh", f"{blobs}/{sha256}", f"{blobs}/.{sha256}.partial"],
                                 "checking " + display).strip()
        if state == "present":
            return sha256
        partial = f"{blobs}/.{sha256}.partial"
    else:  # nothing to verify against: named by the URL, so that a second run resumes it
        partial = f"{blobs}/.url-{hashlib.sha256(url.encode()).hexdigest()[:32]}.partial"
    config = "".join(f'header = "{_curl_quote(k)}: {_curl_quote(v)}"\n' for k, v in (headers or {}).items())
    if auth:
        config += f'user = "{_curl_quote(auth[0])}:{_curl_quote(auth[1])}"\n'
    result = connection.run(["sh", "-c", _DOWNLOAD, "sh", url, partial], timeout=None, input=config.encode())
    if result.returncode != 0:
        reason = "curl is not installed there (install it, or set fetch: push for this host)" \
            if result.returncode == 127 else (result.stderr.strip().splitlines() or [f"curl exit {result.returncode}"])[-1]
        raise FetchError(f"{connection.destination}: downloading {display} failed: {reason}",
                         hint="what arrived is kept there; run again to resume")
    if sha256 is None:
        sha256 = connection.check(["sh", "-c", _SHA, "sh", partial], "hashing " + partial).split()[0]
    return adopt(connection, partial, f"{blobs}/{sha256}", sha256, display)


def _curl_quote(text: str) -> str:
    if any(c in text for c in "\n\r"):
        raise FetchError("a header or credential contains a line break")
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _send(connection: SSHConnection, local: Path, partial: str, offset: int, size: int, advance) -> bool:
    """Append local[offset:] to the remote partial; False when the transfer broke off."""
    argv = ["sh", "-c", _APPEND, "sh", partial]
    command = connection.bulk_command(argv) if size - offset >= BULK else connection.command(argv)
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
    finish(process)
    return process.returncode == 0


def finish(process: subprocess.Popen) -> tuple[bytes, bytes]:
    """Close what we were writing to a process and collect its output and exit code."""
    try:
        process.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass
    process.stdin = None  # communicate() must not flush it again
    return process.communicate()
