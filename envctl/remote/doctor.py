"""`doctor --host`: the local checks, run against a remote host's files, engine and disk."""

from __future__ import annotations

from pathlib import PurePosixPath

from envctl.doctor import Check, diagnose
from envctl.plan import Options
from envctl.remote.target import RemoteTarget

# Free bytes on the filesystem that holds $1, or would once created (the nearest existing parent).
_FREE = 'd=$1; while [ ! -e "$d" ]; do d=$(dirname "$d"); done; df -Pk "$d" | awk \'NR==2 {print $4}\''


def diagnose_remote(target: RemoteTarget, loaded, options: Options) -> list[Check]:
    def free_at(path) -> int:
        out = target.connection.check(["sh", "-c", _FREE, "sh", str(PurePosixPath(path))], "measuring free space")
        return int(out.strip() or 0) * 1024  # df -P reports 1024-byte blocks

    return diagnose(target.host, loaded, options, target.environ(), engine=target.docker, free_at=free_at)
