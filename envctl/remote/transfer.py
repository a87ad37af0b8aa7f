"""Putting files on a remote host: resumable, verified there by sha256, never sent twice.

A file goes to `.<dest>.partial` beside its destination and is appended to from the size the
remote already has, so a dropped connection costs only what was in flight. It becomes the
destination (by rename) only after the remote's own sha256 of it agrees with the digest we
expect and its size is right: a partial or corrupt file is never taken for a whole one. The
remote hashes with `openssl dgst` when it has it (streams.SHA256_OF), on a host with cores to
spare as the bytes arrive (streams.FOLLOW reads the partial file behind the writer: the hash
is ready when the last byte is in), else after they are all in, as there the hash would
compete with the stream for the CPU. Asking what is there, sending, and verifying happen in
one SSH session: a far host costs one round trip more than the bytes, not five.

Every file of a near host travels over the master connection (its cipher AES-GCM where the
config allows it: SSHConnection.base), so a large one costs no handshake of its own;
os.sendfile moves the bytes from the file into ssh's stdin without a copy through Python. A
large file to a far host goes in four segments over connections of their own (segments.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urlsplit

from envctl import interrupts
from envctl.artifacts import urls
from envctl.errors import FetchError
from envctl.hosts.base import CommandResult
from envctl.paths import cache_dir
from envctl.remote import standby
from envctl.remote.segments import part_files, push_segmented
from envctl.remote.ssh import FAR_HOST_SECONDS, SSH_FAILED, RemoteError, SSHConnection
from envctl.remote.streams import FOLLOW, SHA256_OF, finish, host_first_line, stream_range

BULK = 64 << 20  # from this size the host is asked first: does it have the file, is it near or far

# $1 final, $2 partial: "present" when the final file is there, else the partial's size.
_STATE = 'if [ -f "$1" ]; then echo present; else mkdir -p "$(dirname "$2")" && ' \
         'if [ -f "$2" ]; then wc -c < "$2"; else echo 0; fi; fi'
_SHA = SHA256_OF + 'sha256_of "$1"'
_ADOPT = 'chmod 0444 "$1" && mv -f "$1" "$2"'


# $1 final, $2 its size, $3 the single stream's partial file, $4 the first part of a segmented
# push: "present" when the blob is there with its size, else how many bytes the partial holds,
# followed by " parts" when a segmented push left its parts; then it answers each line it is
# sent with an empty one (the round trip, timed within the session: see _state).
_BLOB_STATE = r"""if [ -f "$1" ] && [ "$(wc -c < "$1" | tr -d ' ')" = "$2" ]; then echo present; exit 0; fi
have=0
if [ -f "$3" ]; then have=$(wc -c < "$3" | tr -d ' '); fi
if [ -f "$4" ]; then echo "$have parts"; else echo "$have"; fi
while read -r _; do echo; done
"""

# One session per attempt does it all, so a push costs one round trip beyond the bytes:
# $1 final, $2 partial, $3 sha256, $4 size, $5 yes/no/auto: hash the bytes as they arrive, or
# after (auto: as they arrive where the host has 4 or more cores, as the stream itself keeps
# about two busy, sshd and cat; on fewer the hash would slow the stream down). Says "present",
# or how many bytes the host already has (we then send the rest on stdin), then after the
# bytes: "done", "incomplete N" (the stream broke off: keep what arrived), or "mismatch DIGEST"
# (the partial copy is removed). Hashed as they arrive, the digest covers every byte of the
# partial copy from its first (appended bytes never change); either way its size must be right.
# Arguments after the fifth: a command run (exec'd) in the same session once the file is in
# place, present or verified ("done"), never otherwise; its output follows that word.
_PUSH = SHA256_OF + FOLLOW + r"""final=$1 partial=$2 want=$3 size=$4 early=${5:-no}; shift 5
if [ -f "$final" ] && [ "$(wc -c < "$final" | tr -d ' ')" = "$size" ]; then
  echo present; if [ "$#" -gt 0 ]; then exec "$@"; fi; exit 0
fi
rm -f "$final"  # cut short on the host (a blob is verified when it arrives, so only its size can change unseen)
mkdir -p "$(dirname "$partial")" || exit 1
have=0
if [ -f "$partial" ]; then have=$(wc -c < "$partial" | tr -d ' '); fi
if [ "$have" -gt "$size" ]; then rm -f "$partial"; have=0; fi
echo "$have"
if [ "$early" = auto ]; then
  if [ "$(nproc 2>/dev/null || echo 1)" -ge 4 ]; then early=yes; else early=no; fi
fi
if [ "$early" = yes ]; then
  arrived=$partial.arrived
  rm -f "$arrived"; true >> "$partial" || exit 1  # true, not `:`: a failed redirection on `:` ends sh with 2
  exec 3<&0
  { cat <&3 >> "$partial"; echo "$?" > "$arrived"; } &
  exec 3<&-
  got=$(follow "$partial" "$arrived" | sha256_in)
  wait
  written=$(cat "$arrived"); rm -f "$arrived"
  [ "$written" = 0 ] || exit 1
else
  cat >> "$partial" || exit 1
fi
have=$(wc -c < "$partial" | tr -d ' ')
if [ "$have" != "$size" ]; then echo "incomplete $have"; exit 0; fi
[ "$early" = yes ] || got=$(sha256_of "$partial")
if [ "$got" != "$want" ]; then rm -f "$partial"; echo "mismatch $got"; exit 0; fi
chmod 0444 "$partial" && mv -f "$partial" "$final" && echo done || exit 1
if [ "$#" -gt 0 ]; then exec "$@"; fi
"""


def push_file(connection: SSHConnection, local: Path, remote: str, sha256: str,
              advance: Callable[[int], None] | None = None, attempts: int = 4, early_hash: bool | None = None) -> str:
    """Make `remote` hold the bytes of `local` (whose sha256 is known). Returns "present"
    (nothing sent), "sent", or "resumed at N bytes" (N: where the first resume started).
    `early_hash`: the host hashes the bytes as they arrive (True), after they are all in
    (False), or as its core count suggests (None; see _PUSH)."""
    return push_then(connection, local, remote, sha256, (), advance, attempts, early_hash)[0]


_pushing_lock = threading.Lock()
_pushing: dict[tuple[str, str], threading.Lock] = {}  # (destination, remote path) → held while it is pushed


@contextlib.contextmanager
def one_push_of(destination: str, remote: str):
    """Held while one remote file is pushed, by one thread of all envctl processes on this
    machine: two threads of one envctl (an artifact's push or the host's download of it, and
    the image tarball's, which `up` runs side by side) and two envctl commands at once (two `up`s
    of one environment, in two terminals) never append to one partial file, or join one file's
    parts, at the same time; the second finds the file there ("present"). Across processes, an
    flock(2) in this machine's cache (released when its holder dies), waited for with Ctrl-C
    checked. Two machines pushing one file to a host at once are not kept apart: the sha256
    check refuses what their interleaved bytes make, and the next run sends it again."""
    with _pushing_lock:
        in_process = _pushing.setdefault((destination, remote), threading.Lock())
    with in_process:
        key = hashlib.sha256(f"{destination}\0{remote}".encode()).hexdigest()[:32]
        path = cache_dir() / "locks" / "push" / f"{key}.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a")
        except OSError:  # a cache this user cannot write (read-only, another's): this process's lock alone
            yield
            return
        with handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    interrupts.check()
                    time.sleep(0.1)
            yield


def push_then(connection: SSHConnection, local: Path, remote: str, sha256: str, then: Sequence[str],
              advance: Callable[[int], None] | None = None, attempts: int = 4,
              early_hash: bool | None = None) -> tuple[str, CommandResult | None]:
    """As push_file, and the host runs `then` (an argv; nothing when empty) once `remote` is
    there whole and verified, in the session that pushed it: a push and what uses the file
    (`docker load` of a tarball) cost one round trip, not two. Returns (push_file's outcome,
    `then`'s result), the result None when `then` was not run in that session (a segmented
    push of a far host's large file: the caller runs it). `then` never runs on a file that is
    not the one whose sha256 the host checked: _PUSH runs it only after "present" (a blob is
    verified when it arrives and only its size can change unseen, which is checked) or "done"."""
    with one_push_of(connection.destination, remote):
        return _push_then(connection, local, remote, sha256, then, advance, attempts, early_hash)


def _push_then(connection: SSHConnection, local: Path, remote: str, sha256: str, then: Sequence[str],
               advance: Callable[[int], None] | None, attempts: int,
               early_hash: bool | None) -> tuple[str, CommandResult | None]:
    size = local.stat().st_size
    partial = f"{os.path.dirname(remote)}/.{os.path.basename(remote)}.partial"
    if size >= BULK:
        state, seconds = _state(connection, remote, size, partial)
        if state == ["present"]:
            return "present", None
        if "parts" in state or (seconds > FAR_HOST_SECONDS and state == ["0"]):  # a push resumes the way it began
            had = push_segmented(connection, local, remote, sha256, size, advance, attempts)
            return _outcome(had or None), None
    early = {True: "yes", False: "no", None: "auto"}[early_hash]
    argv = ["sh", "-c", _PUSH, "sh", remote, partial, sha256, str(size), early, *then]
    resumed_at = None
    for attempt in range(attempts):
        process = standby.start(connection, argv)  # a session opened ahead when `up` opened one
        with interrupts.ended_on_ctrl_c(process):
            first = host_first_line(process, connection, lambda line: line == "present" or line.isdigit(),
                                    attempt + 1 < attempts)
            if first is None:  # the connection failed before the host answered
                continue
            if first == "present":
                rest, errors = finish(process)
                return ("present" if attempt == 0 else _outcome(resumed_at)), _then(process, then, rest, errors)
            offset = int(first)
            if offset and resumed_at is None:
                resumed_at = offset
            if advance and offset and attempt == 0:
                advance(offset)  # already there from an earlier run
            stream_range(process, local, offset, size, advance)
            answer, errors = finish(process)
            verdict, _, rest = answer.partition(b"\n")
            verdict = verdict.decode().strip()
            if verdict == "done":
                return _outcome(resumed_at), _then(process, then, rest, errors)
            if verdict.startswith("mismatch"):
                raise FetchError(f"{connection.destination}: {local.name} arrived with sha256 {verdict.split()[-1]}, "
                                 f"expected {sha256}; the partial copy was removed",
                                 hint="run again; if it repeats, check the source and the disk")
            if not verdict and process.returncode not in (0, SSH_FAILED):
                # The host could not keep the bytes (its disk full, the directory not writable): no
                # verdict, and the host's own words on stderr. Sending them again cannot help.
                said = errors.decode(errors="replace").strip().splitlines()[-3:]
                raise RemoteError(f"{connection.destination}: {local.name} could not be written to {partial} there (exit "
                                  f"{process.returncode})" + "".join(f"\n  {line}" for line in said),
                                  hint="free space there (or make it writable); what arrived is kept and the next run "
                                       "resumes from there")
            # "incomplete", or nothing: the connection dropped; ask again how much arrived
    raise RemoteError(f"{connection.destination}: sending {local.name} kept failing after {attempts} attempts; "
                      "what arrived is kept and the next run resumes from there")


def _then(process, then: Sequence[str], out: bytes, errors: bytes) -> CommandResult | None:
    """`then`'s result in a _PUSH session that said "present" or "done": None when there was
    none, or when the connection failed while it ran (ssh's 255: the caller runs it again)."""
    if not then or process.returncode == SSH_FAILED:
        return None
    return CommandResult(process.returncode, out.decode(errors="replace"), errors.decode(errors="replace"))


def _state(connection: SSHConnection, remote: str, size: int, partial: str) -> tuple[list[str], float]:
    """What the host has of `remote` (_BLOB_STATE's words) and the round trip to it in seconds
    (the shorter of two, timed within one session: unlike a whole command's, it does not count
    starting ssh, which a busy machine delays by tens of milliseconds)."""
    argv = ["sh", "-c", _BLOB_STATE, "sh", remote, str(size), partial, part_files(remote)[0]]
    interrupts.check()
    with interrupts.deferred():  # no ssh left running that nobody knows of
        process = subprocess.Popen(connection.command(argv, reads_only=True), stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with interrupts.ended_on_ctrl_c(process):
        return _timed_state(connection, process)


def _timed_state(connection: SSHConnection, process: subprocess.Popen) -> tuple[list[str], float]:
    """_state's answer, read from its session `process`, which ends here."""
    state = process.stdout.readline().decode().split()
    seconds = float("inf")
    if state and state != ["present"]:
        for _ in range(2):
            started = time.monotonic()
            process.stdin.write(b"\n")
            process.stdin.flush()
            if not process.stdout.readline():
                break
            seconds = min(seconds, time.monotonic() - started)
    _, errors = finish(process)
    if not state:
        raise connection.explain(CommandResult(process.returncode, "", errors.decode(errors="replace")))
    return state, seconds


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


# $1 partial; curl's options (the URL, which may be signed, and auth headers) arrive on stdin,
# never on a command line (where `ps` shows them). Resumes what an earlier run left (-C -); a
# server that ignores ranges (curl exit 33) gets a fresh start. No --compressed: curl then
# stores the bytes as sent (a .tar.gz labelled Content-Encoding: gzip stays the .tar.gz), and
# the config asks for the identity encoding, as envctl's own downloader does.
_DOWNLOAD = r'''command -v curl >/dev/null 2>&1 || { echo "curl is not installed" >&2; exit 127; }
mkdir -p "$(dirname "$1")"
config=$(cat)
printf '%s\n' "$config" | curl -fsSL --retry 5 --retry-delay 2 --connect-timeout 30 -C - -K - -o "$1"
code=$?
if [ "$code" = 33 ]; then rm -f "$1"; printf '%s\n' "$config" | curl -fsSL --retry 5 --connect-timeout 30 -K - -o "$1"; code=$?; fi
exit $code
'''


def download_remotely(connection: SSHConnection, url: str, display: str, blobs: str, sha256: str | None,
                      headers: dict | None = None, auth: tuple | None = None) -> str:
    """The remote host downloads `url` itself (from its own mirror) into its blob directory
    `blobs`, resumable, verified there. Returns the file's sha256."""
    # One download (or push) of a file at a time: `up` has the host download an artifact while
    # the image step downloads the tarball, and both may be the same file (one URL, or one
    # sha256): two curls appending to one partial file would spoil it (one_push_of).
    unpinned = f"{blobs}/.url-{hashlib.sha256(urls.identity(url).encode()).hexdigest()[:32]}.partial"
    with one_push_of(connection.destination, f"{blobs}/{sha256}" if sha256 is not None else unpinned):
        return _download_remotely(connection, url, display, blobs, sha256, unpinned, headers, auth)


def _download_remotely(connection: SSHConnection, url: str, display: str, blobs: str, sha256: str | None,
                       unpinned: str, headers: dict | None, auth: tuple | None) -> str:
    if sha256 is not None:
        state = connection.check(["sh", "-c", _STATE, "sh", f"{blobs}/{sha256}", f"{blobs}/.{sha256}.partial"],
                                 "checking " + display).strip()
        if state == "present":
            return sha256
        partial = f"{blobs}/.{sha256}.partial"
    else:  # nothing to verify against: named by the URL's identity, so that a second run resumes it
        partial = unpinned
    config = f'url = "{_curl_quote(url)}"\nheader = "Accept-Encoding: identity"\n'
    config += "".join(f'header = "{_curl_quote(k)}: {_curl_quote(v)}"\n' for k, v in (headers or {}).items())
    if auth:
        config += f'user = "{_curl_quote(auth[0])}:{_curl_quote(auth[1])}"\n'
    result = connection.run(["sh", "-c", _DOWNLOAD, "sh", partial], timeout=None, input=config.encode())
    if result.returncode != 0:
        secrets = urls.secret_values(url) + [str(v) for v in (headers or {}).values()] + ([str(auth[1] or auth[0])] if auth else [])
        reason = "curl is not installed there (install it, or set fetch: push for this host)" \
            if result.returncode == 127 else (result.stderr.strip().splitlines() or [f"curl exit {result.returncode}"])[-1]
        reason = urls.redact_text(reason, sorted(set(secrets), key=len, reverse=True))
        away = _redirected_away(result.returncode, result.stderr, url)
        if away:
            raise FetchError(f"{connection.destination}: downloading {display} failed: the server redirected to {away}, "
                             f"which {connection.destination} cannot reach ({reason})",
                             hint="running again will not help while that host is unreachable from there; use a "
                                  "mirror that serves the file itself, or `fetch: push` for this host")
        raise FetchError(f"{connection.destination}: downloading {display} failed: {reason}",
                         hint="what arrived is kept there; run again to resume")
    if sha256 is None:  # nothing to check against: named by its digest, hashed once
        digest = connection.check(["sh", "-c", _SHA, "sh", partial], "hashing " + partial).split()[0]
        connection.check(["sh", "-c", _ADOPT, "sh", partial, f"{blobs}/{digest}"], "placing " + display)
        return digest
    return adopt(connection, partial, f"{blobs}/{sha256}", sha256, display)


# curl's messages for exit 6 (no such name) and 7 (no connection) name the host it tried.
_CURL_HOST = re.compile(r"(?:Could not resolve host: |Failed to connect to )\[?([^\s\]]+?)\]? ?(?:port|$|\s)")


def _redirected_away(code: int, stderr: str, url: str) -> str | None:
    """The host curl could not reach when it is not the URL's own (a redirect led there), else None."""
    if code not in (6, 7):
        return None
    found = _CURL_HOST.search(stderr)
    host = found.group(1).lower() if found else None
    return host if host and host != (urlsplit(url).hostname or "").lower() else None


def _curl_quote(text: str) -> str:
    if any(c in text for c in "\n\r"):
        raise FetchError("a header or credential contains a line break")
    return text.replace("\\", "\\\\").replace('"', '\\"')
