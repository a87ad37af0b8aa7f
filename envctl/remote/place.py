"""Placing artifacts and image tarballs on a remote host from the local cache (`fetch: push`,
for air-gapped servers).

The remote cache has the local cache's layout (blobs/sha256/<hex>, artifacts/<key> and its
.json record), so a container there mounts the same relative paths. Large files travel once
each as blobs (resumable, verified by sha256 on the remote, skipped when the remote has them);
small files and the tree's shape travel as one tar stream, not one round trip per file; the
artifact appears by rename only when complete, then its record — an artifact whose record
matches ours is not touched at all.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Callable, Mapping

from envctl.artifacts.cache import PlacedFile
from envctl.artifacts.fetch import Fetched
from envctl.errors import FetchError
from envctl.hosts.base import CommandResult
from envctl.remote.ssh import RemoteError, SSHConnection
from envctl.remote.streams import SHA256_OF, finish
from envctl.remote.transfer import one_push_of, push_then

LARGE = 1 << 20  # files from this size travel as blobs of their own (resumable, deduplicated)
LINKS = ".envctl-links"
RECORD = ".envctl-record.json"

# $1 final path, $2 remote blob directory, $3 staging directory; a tar stream on stdin.
# Builds the artifact in the staging directory, links large files from blobs, then renames it
# into place and writes its record last (the record is what says "complete").
# Shared by both assembly scripts: the blob $sha linked (or copied) to $path in the staging
# tree; then the tree renamed into place ($single: the single file's name, empty for a tree)
# and its record written last (the record is what says "complete"). An entry already in place
# with the very same record and the very same files (path and size of each, as staged) is left
# as it is (another `up` placed it meanwhile): removed and put back, its path would be missing
# for a moment, and a container created then refused ("bind source path does not exist"). One
# with a file deleted, cut short or grown (by hand, on the host) is replaced: its record alone
# is the same.
_LINK_BLOB = r'''  mkdir -p "$(dirname "$staging/tree/$path")"
  ln -f "$blobs/$sha" "$staging/tree/$path" 2>/dev/null || cp "$blobs/$sha" "$staging/tree/$path"
'''
_INTO_PLACE = r'''mkdir -p "$(dirname "$final")"
sizes() { if [ -d "$1" ]; then (cd "$1" && find . -type f -exec stat -c '%s %n' {} + | LC_ALL=C sort); else stat -c %s "$1"; fi; }
staged=$staging/tree; if [ -n "$single" ]; then staged=$staging/tree/$single; fi
if [ -e "$final" ] && cmp -s "$staging/.envctl-record.json" "$final.json" 2>/dev/null \
   && sizes "$staged" > "$staging/staged.sizes" && sizes "$final" > "$staging/placed.sizes" \
   && cmp -s "$staging/staged.sizes" "$staging/placed.sizes"; then
  rm -rf "$staging"; exit 0
fi
rm -rf "$final" "$final.json"
if [ -n "$single" ]; then mv "$staging/tree/$single" "$final"; else mv "$staging/tree" "$final"; fi
mv "$staging/.envctl-record.json" "$final.json"
rm -rf "$staging"
'''

# $1 final path, $2 remote blob directory, $3 staging directory; a tar stream on stdin.
# Builds the artifact in the staging directory, links large files from blobs, then renames it
# into place and writes its record last.
_ASSEMBLE = r'''set -e
final=$1 blobs=$2 staging=$3
rm -rf "$staging"; mkdir -p "$staging"
tar -xf - -C "$staging"
mkdir -p "$staging/tree"
if [ -f "$staging/.envctl-links" ]; then
  while IFS=' ' read -r sha path; do
''' + _LINK_BLOB + r'''  done < "$staging/.envctl-links"
fi
single=; if [ -f "$staging/single" ]; then single=$(cat "$staging/single"); fi
''' + _INTO_PLACE

# The same as _ASSEMBLE for an artifact made of blobs alone (no small file, no directory or link
# of its own), with everything in its arguments instead of a tar stream on stdin, so that it can
# run in the session that pushed the last blob (transfer.push_then): $1 final, $2 blobs, $3
# staging, $4 the record's text, $5 the single file's name ("" for a tree), then SHA PATH pairs.
_ASSEMBLE_LINKED = r'''set -e
final=$1 blobs=$2 staging=$3 record=$4 single=$5; shift 5
rm -rf "$staging"; mkdir -p "$staging/tree"
while [ "$#" -gt 1 ]; do
  sha=$1 path=$2
''' + _LINK_BLOB + r'''  shift 2
done
printf '%s' "$record" > "$staging/.envctl-record.json"
''' + _INTO_PLACE
LINKED_ARGUMENTS = 32 << 10  # bytes of _ASSEMBLE_LINKED's arguments at most (a command line's one argument: 128 KiB on Linux)


def push_artifact(host, item: Fetched, record: dict, remote_path: str, progress=None, read: Mapping | None = None) -> str:
    """Make the SSH host's cache hold the artifact `item` (in this machine's cache) at
    `remote_path`. Returns "present" (nothing sent) or "sent", with a note for files that resumed.
    `read`: records of the host's cache read just before (remote path → record or None; the
    artifacts' check): what it holds for `remote_path` is taken instead of reading it again."""
    connection = host.connection
    current = read[remote_path] if read is not None and remote_path in read else host.artifact_record(remote_path)
    if current is not None and json.dumps(current, sort_keys=True) == json.dumps(record, sort_keys=True):
        return "present"
    single = Path(item.path).is_file()
    blobs = f"{host.cache_root}/blobs/sha256"
    links, small, notes = [], [], []
    # An extracted archive's entry is the tree it placed (record["tree"]), not the archive its
    # `files` name; its links and directories travel too (a tar's symlinks, empty directories).
    extracted = "tree" in record and not single
    listed = [PlacedFile(f["path"], f["size"], f["sha256"]) for f in record["tree"]] if extracted else item.files
    if extracted:
        small += [(p, str(p.relative_to(item.path))) for p in sorted(Path(item.path).rglob("*"))
                  if p.is_symlink() or p.is_dir()]
    large = []
    for placed in listed:
        local_file = Path(item.path) if single else Path(item.path) / placed.path
        name = placed.path or Path(item.path).name
        mode = local_file.stat().st_mode
        if placed.size >= LARGE and not mode & stat.S_IXUSR:
            large.append((placed, local_file, name))
            links.append((placed.sha256, name))
        else:
            small.append((local_file, name))
    # An artifact of blobs alone is assembled in the session that pushes its last blob (one ssh
    # command less: a round trip); it runs there only once that blob is in place and its sha256
    # checked (push_then), the others having been checked in their own sessions before.
    linked = None
    if large and not small:
        _check_names(item.name, links)
        text = json.dumps(record, indent=1, ensure_ascii=False)
        linked = ["sh", "-c", _ASSEMBLE_LINKED, "sh", remote_path, blobs, _staging(remote_path), text,
                  (links[0][1] if single else ""), *(part for pair in links for part in pair)]
        if len(" ".join(linked[3:]).encode()) > LINKED_ARGUMENTS:
            linked = None
    result = None
    for i, (placed, local_file, name) in enumerate(large):
        advance = progress(f"{item.name}: {name} → {connection.destination}", placed.size) if progress else None
        if linked is not None and i == len(large) - 1:
            outcome, result = push_then(connection, local_file, f"{blobs}/{placed.sha256}", placed.sha256, linked, advance)
        else:
            outcome = host.put_blob(placed.sha256, local_file, advance)
        if outcome.startswith("resumed"):
            notes.append(f"{name} {outcome}")
    if result is None:  # not assembled yet: no blob, a small file, or the last push was segmented
        assemble(connection, item.name, remote_path, blobs, links, small, record, single)
    elif result.returncode != 0:
        raise _placing_failed(connection, item.name, remote_path, result.stderr)
    return "sent" + (f" ({'; '.join(notes)})" if notes else "")


def _staging(remote_path: str) -> str:
    return f"{os.path.dirname(remote_path)}/.{os.path.basename(remote_path)}.incoming"


def _check_names(name: str, paths) -> None:
    for _, path in paths:
        if "\n" in path:
            raise FetchError(f"{name}: file name {path!r} cannot be sent (a newline in it)")


def _placing_failed(connection: SSHConnection, name: str, remote_path: str, errors: str) -> RemoteError:
    return RemoteError(f"{connection.destination}: placing {name} at {remote_path} failed: {errors.strip()[-300:]}",
                       hint="what was sent is kept; run again to resume")


def assemble(connection: SSHConnection, name: str, remote_path: str, blobs: str, links: list[tuple[str, str]],
             small: list[tuple[Path, str]], record: dict, single: bool) -> None:
    """Build the artifact on the remote from blobs already there (`links`: sha256, path) and
    small local files sent in one tar stream, then rename it into place and write its record."""
    _check_names(name, links + [(None, p) for _, p in small])
    # One placement of an entry at a time from this machine (two `up`s at once: transfer.one_push_of).
    with one_push_of(connection.destination, remote_path):
        staging = _staging(remote_path)
        command = connection.command(["sh", "-c", _ASSEMBLE, "sh", remote_path, blobs, staging])
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            with tarfile.open(fileobj=process.stdin, mode="w|", format=tarfile.PAX_FORMAT) as stream:
                for local_file, path in small:
                    stream.add(str(local_file), arcname=f"tree/{path}", recursive=False)
                _add_bytes(stream, LINKS, "".join(f"{sha} {path}\n" for sha, path in links).encode())
                _add_bytes(stream, RECORD, json.dumps(record, indent=1, ensure_ascii=False).encode())
                if single:
                    only = (links[0][1] if links else small[0][1])
                    _add_bytes(stream, "single", only.encode())
        except (BrokenPipeError, ConnectionResetError):
            pass
        _, errors = finish(process)
        if process.returncode != 0:
            raise _placing_failed(connection, name, remote_path, errors.decode(errors="replace"))


def _add_bytes(stream: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    stream.addfile(info, io.BytesIO(data))


def load_image_remotely(connection: SSHConnection, remote_cache: str, client=None) -> Callable:
    """A tarball loader for the image step: the tarball is pushed into the remote cache as a blob
    (resumable, verified), then loaded there by the remote's own `docker load`. The image step
    hands it the tarball's identity (its sha256 read with it, remembered per file). A compression
    not every engine takes (bzip2, xz, zstd: Docker 20.10 refuses zstd, and xz needs an `xz`
    binary on the host) is decompressed here instead and streamed to the remote engine through
    `client` (its forwarded socket). Returns the engine's "Loaded image" lines."""

    def load(tarball: Path, advance, identity) -> list[str]:
        from envctl.images import ENGINE_TAKES, load_tarball

        if identity.compression not in ENGINE_TAKES and client is not None:
            return load_tarball(client, tarball, advance, None)
        remote = f"{remote_cache}/blobs/sha256/{identity.sha256}"
        # The push's own session loads it once the host has checked its sha256 (push_then): one
        # ssh command for both, a round trip less; a segmented push (a far host's large file)
        # or a connection lost meanwhile leaves the load to a command of its own.
        outcome, result = push_then(connection, tarball, remote, identity.sha256, load_argv(remote), advance)
        if outcome == "present" and result is None:  # not loaded in the push's session (a far host, a lost connection)
            result = connection.run(load_argv(remote), timeout=3600)
        if outcome == "present" and result.returncode not in (0, NO_TOOL) \
                and _removed_unless(connection, remote, identity.sha256):
            # The host's copy was not this tarball any more (same size, other bytes: its sha256
            # is checked on arrival only), and docker load refused it: every later up would
            # find it "present" and fail the same way. It was removed: sent and loaded again.
            _, result = push_then(connection, tarball, remote, identity.sha256, load_argv(remote), advance)
        return docker_load(connection, remote, result)

    return load


# $1 an image tarball on the host. gzip and plain tarballs go to `docker load` as they are; the
# formats not every engine takes (zstd: Docker 20.10 refuses it; xz: Docker runs an `xz` binary
# anyway; bzip2) are decompressed by the host's own tool into `docker load`. Exit 97: no tool.
_HOST_LOAD = r'''magic=$(head -c 6 "$1" | od -An -tx1 | tr -d ' \n')
case "$magic" in
  28b52ffd*) tool=zstd ;;
  fd377a585a00) tool=xz ;;
  425a68*) tool=bzip2 ;;
  *) exec docker load -q -i "$1" ;;
esac
command -v "$tool" >/dev/null 2>&1 || { echo "$tool" >&2; exit 97; }
"$tool" -dc -- "$1" | docker load -q
'''
NO_TOOL = 97


# $1 a blob on the host, $2 its sha256: removes the blob when its bytes have another sha256, and
# says "removed".
_REMOVE_UNLESS = SHA256_OF + '[ "$(sha256_of "$1")" = "$2" ] || { rm -f "$1" && echo removed; }'


def _removed_unless(connection: SSHConnection, path: str, sha256: str) -> bool:
    """Whether the blob at `path` on the host was removed because its sha256 is not `sha256`
    (one round trip, the file hashed there)."""
    return connection.check(["sh", "-c", _REMOVE_UNLESS, "sh", path, sha256], f"checking {path}").strip() == "removed"


def load_argv(path: str) -> list[str]:
    """The command that loads the image tarball at `path` on the host into its engine."""
    return ["sh", "-c", _HOST_LOAD, "sh", path]


def docker_load(connection: SSHConnection, path: str, result: CommandResult | None = None) -> list[str]:
    """Load an image tarball that is on the host into the host's engine; its "Loaded image" lines.
    `result`: load_argv's, when it already ran (in the push's session: push_then). Raises
    ImageError with the engine's words, or saying which decompressor the host lacks."""
    from envctl.images import ImageError

    if result is None:
        result = connection.run(load_argv(path), timeout=3600)
    if result.returncode == NO_TOOL:
        tool = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "a decompressor"
        raise ImageError(f"{connection.destination}: {path} is {tool}-compressed and the host has no `{tool}` to "
                         "decompress it for its engine; nothing was loaded",
                         hint=f"install {tool} on the host, or give it `fetch: push` (envctl then decompresses it here)")
    if result.returncode != 0 or "Error unpacking image" in result.stdout:  # the containerd store's way of failing
        raise ImageError(f"{connection.destination}: docker load of {path} failed: "
                         f"{(result.stderr or result.stdout).strip()[-300:]}")
    return [line.strip() for line in result.stdout.splitlines() if line.startswith("Loaded image")]
