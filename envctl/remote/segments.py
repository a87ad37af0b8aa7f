"""Large pushes to far hosts over several SSH connections at once.

Far away, one SSH channel moves at most its window (OpenSSH: 2 MiB) per round trip, whatever
the link: 40 MB/s at 50 ms; and all channels of one connection share one TCP connection, whose
send buffer (Linux: 4 MiB at most, net.ipv4.tcp_wmem) caps them together about as low
(measured: 35 MB/s for one channel at 50 ms, 50 MB/s for four channels of one master, 110 MB/s
for four connections). So four connections of their own (SSHConnection.bulk_command: host keys
checked on every hop as for the master), each carrying a quarter of the file into a part file of
its own. Each part resumes from the size the host has; when all are complete the host appends
them to the first (a half-done join is undone by truncating it back), checks the sha256 and
renames the result into place — the same guarantees as a single stream.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from envctl import interrupts
from envctl.errors import FetchError
from envctl.remote.ssh import SSH_FAILED, RemoteError, SSHConnection
from envctl.remote.streams import SHA256_OF, finish, host_first_line, stream_range

SEGMENTS = 4

# $1 part file, $2 its full size. Says how many bytes the host has (we send the rest), then
# "done" or "incomplete N". A part longer than its size is a join that was cut: truncated back.
_PART = r'''part=$1 size=$2
mkdir -p "$(dirname "$part")" || exit 1
have=0
if [ -f "$part" ]; then have=$(wc -c < "$part" | tr -d ' '); fi
if [ "$have" -gt "$size" ]; then
  if truncate -s "$size" "$part" 2>/dev/null; then have=$size; else rm -f "$part"; have=0; fi
fi
echo "$have"
cat >> "$part" || exit 1
have=$(wc -c < "$part" | tr -d ' ')
if [ "$have" = "$size" ]; then echo done; else echo "incomplete $have"; fi
'''

# $1 final, $2 sha256, then the part files in order: joined into the first, checked, renamed.
_JOIN = SHA256_OF + r'''final=$1 want=$2; shift 2
first=$1; shift
if [ "$#" -gt 0 ]; then cat "$@" >> "$first" || exit 1; fi
got=$(sha256_of "$first")
if [ "$got" != "$want" ]; then rm -f "$first" "$@"; echo "mismatch $got"; exit 0; fi
chmod 0444 "$first" && mv -f "$first" "$final" && rm -f "$@" && echo done
'''


def part_files(remote: str) -> list[str]:
    """The host's part files of a segmented push to `remote`, in order."""
    return [f"{os.path.dirname(remote)}/.{os.path.basename(remote)}.part{i}" for i in range(SEGMENTS)]


def push_segmented(connection: SSHConnection, local: Path, remote: str, sha256: str, size: int, advance=None,
                   attempts: int = 4) -> int:
    """Push `local` to `remote` in SEGMENTS parts at once. Returns how many bytes the host had
    when the parts (re)started from what had arrived: 0 for a send that never had to resume."""
    step = -(-size // SEGMENTS)
    ranges = [(i * step, min(size, (i + 1) * step)) for i in range(SEGMENTS) if i * step < size]
    parts = part_files(remote)[:len(ranges)]
    had = [0] * len(ranges)

    def send(index: int) -> None:
        start, end = ranges[index]
        argv = ["sh", "-c", _PART, "sh", parts[index], str(end - start)]
        for attempt in range(attempts):
            # Ctrl-C: no connection opened again. The ssh commands die of the SIGINT too (the
            # terminal's process group), which would otherwise read as a dropped connection.
            interrupts.check()
            with interrupts.deferred():  # no ssh left running that nobody knows of
                process = subprocess.Popen(connection.bulk_command(argv), stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            with interrupts.ended_on_ctrl_c(process):
                first = host_first_line(process, connection, str.isdigit, attempt + 1 < attempts)
                if first is None:  # the connection failed before the host answered
                    continue
                have = int(first)
                if have and not had[index]:
                    had[index] = have  # resumed: from an earlier run, or after a cut in this one
                if attempt == 0 and advance and have:
                    advance(have)
                stream_range(process, local, start + have, end, advance)
                answer, errors = finish(process)
                if answer.decode().strip() == "done":
                    return
                if not answer.strip() and process.returncode not in (0, SSH_FAILED):
                    # The host could not keep the bytes (its disk full): its own words, at once; sending
                    # them again cannot help (as in transfer.push_then).
                    said = errors.decode(errors="replace").strip().splitlines()[-3:]
                    raise RemoteError(f"{connection.destination}: part {index + 1} of {local.name} could not be written to "
                                      f"{parts[index]} there (exit {process.returncode})" +
                                      "".join(f"\n  {line}" for line in said),
                                      hint="free space there (or make it writable); what arrived is kept and the next run "
                                           "resumes from there")
        raise RemoteError(f"{connection.destination}: sending part {index + 1} of {local.name} kept failing after "
                          f"{attempts} attempts; what arrived is kept and the next run resumes from there")

    with ThreadPoolExecutor(max_workers=len(ranges)) as pool:
        for future in [pool.submit(send, i) for i in range(len(ranges))]:
            future.result()
    verdict = connection.check(["sh", "-c", _JOIN, "sh", remote, sha256, *parts], "joining " + local.name).strip()
    if verdict.startswith("mismatch"):
        raise FetchError(f"{connection.destination}: {local.name} arrived with sha256 {verdict.split()[-1]}, "
                         f"expected {sha256}; the partial copy was removed",
                         hint="run again; if it repeats, check the source and the disk")
    if verdict != "done":
        raise RemoteError(f"{connection.destination}: joining the parts of {local.name} failed ({verdict or 'no answer'})")
    return sum(had)

