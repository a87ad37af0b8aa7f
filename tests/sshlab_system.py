"""Low-level pieces of the SSH lab (tests/sshlab.py): running commands, entering a lab host's
namespaces, and finding, killing and unmounting what a lab host left behind.

Every function here is safe to call on things that no longer exist, so that teardown can run
after a half-finished start-up or after a crashed run (stale clean-up) through the same code.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterable, Sequence

NETNS_DIR = Path("/run/netns")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class LabError(RuntimeError):
    """The lab could not be built or torn down; the message says which step and why."""


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 30, input: str | None = None) -> subprocess.CompletedProcess:
    """Run an argument list (never a shell string), capturing text output. With check, a
    non-zero exit raises LabError carrying the command and its stderr."""
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, input=input,
                                stdin=None if input is not None else subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]}: not installed ({exc}); `make engine` installs what the lab needs") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv)}: no answer within {timeout}s") from None
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed (exit {result.returncode}): {(result.stderr or result.stdout).strip()}")
    return result


# --- namespaces -------------------------------------------------------------------------------

def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def in_host(argv: Sequence[str], *, netns: str | None = None, mnt: Path | None = None) -> list[str]:
    """`argv` run inside a lab host: its network namespace and/or its mount namespace (which
    gives it a private /root, /tmp, /run). nsenter opens the namespace files before entering
    them, so paths here are seen from the caller's mount namespace."""
    prefix = ["nsenter"]
    if mnt is not None:
        prefix.append(f"--mount={mnt}")
    if netns is not None:
        prefix.append(f"--net={netns_path(netns)}")
    return [*prefix, "--", *argv]


def create_mount_ns(handle: Path, binds: dict[str, Path]) -> None:
    """A persistent mount namespace pinned at `handle` (a file on a private mount, see
    make_private_mount), where each target directory of `binds` is replaced by its source.

    Copies of namespace handles (nsfs) and container filesystems (overlay) inherited from the
    machine are unmounted in the new namespace: a lab host must not keep another lab's network
    namespace or the main engine's container mounts alive."""
    handle.touch()
    run(["unshare", f"--mount={handle}", "--propagation", "private", "true"])
    inherited = run(in_host(["findmnt", "-rn", "-o", "TARGET,FSTYPE"], mnt=handle)).stdout
    for line in reversed(inherited.splitlines()):  # deepest (latest) mounts first
        target, _, fstype = line.rpartition(" ")
        if fstype in ("nsfs", "overlay"):
            run(in_host(["umount", "-l", _unescape(target)], mnt=handle), check=False)
    for target, source in binds.items():
        run(in_host(["mount", "--bind", str(source), target], mnt=handle))


def make_private_mount(directory: Path) -> None:
    """Bind `directory` onto itself with private propagation: the kernel only lets a mount
    namespace be pinned by a bind mount on a mount that does not propagate (as /run/netns)."""
    run(["mount", "--bind", str(directory), str(directory)])
    run(["mount", "--make-private", str(directory)])


def ns_id(path: str | Path) -> tuple[int, int] | None:
    """Identity of a namespace (device, inode), from /proc/PID/ns/* or a pinned handle."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


# --- processes --------------------------------------------------------------------------------

def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def pids_in_namespaces(ids: Iterable[tuple[str, tuple[int, int] | None]]) -> set[int]:
    """Processes inside any of the given namespaces, each named by kind ('mnt', 'net') and id."""
    wanted = [(kind, ident) for kind, ident in ids if ident is not None]
    me = os.getpid()
    found = set()
    for pid in all_pids():
        if pid == me:
            continue
        for kind, ident in wanted:
            if ns_id(f"/proc/{pid}/ns/{kind}") == ident:
                found.add(pid)
                break
    return found


def exe_name(pid: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""


def kill(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until none of `pids` runs; return those still running at the deadline."""
    pending = list(pids)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = [pid for pid in pending if alive(pid)]
        if pending:
            time.sleep(0.05)
    return [pid for pid in pending if alive(pid)]


def stop_process(pid: int | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL when it has not exited within `timeout`."""
    if pid is None or not alive(pid):
        return
    kill([pid], signal.SIGTERM)
    if wait_gone([pid], timeout):
        kill([pid], signal.SIGKILL)
        wait_gone([pid], 5)


# --- cgroups ----------------------------------------------------------------------------------

def cgroup_dirs(name: str) -> list[Path]:
    """The directories of a top-level cgroup `name` in every hierarchy (v1: one per
    controller, v2: one). Docker's --cgroup-parent puts each engine's containers there."""
    if not CGROUP_ROOT.is_dir():
        return []
    candidates = [CGROUP_ROOT / name, *(p / name for p in CGROUP_ROOT.iterdir() if p.is_dir())]
    return [p for p in candidates if (p / "cgroup.procs").exists()]


def cgroup_pids(name: str) -> set[int]:
    pids = set()
    for top in cgroup_dirs(name):
        for procs in top.rglob("cgroup.procs"):
            try:
                pids.update(int(x) for x in procs.read_text().split())
            except OSError:
                pass
    return pids


def remove_cgroups(name: str) -> list[str]:
    """rmdir the cgroup tree bottom-up (cgroup directories cannot be removed with rm -r)."""
    problems = []
    for top in cgroup_dirs(name):
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [top]:
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                problems.append(f"rmdir {directory}: {exc}")
    return problems


# --- mounts -----------------------------------------------------------------------------------

def _unescape(field: str) -> str:
    """Mount paths in /proc/*/mountinfo and findmnt -r escape blanks as octal (\\040)."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below `directory` in this mount namespace, deepest first."""
    prefix = str(directory).rstrip("/")
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _unescape(line.split()[4])
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount(path: str | Path) -> str | None:
    """Lazily unmount `path` (detached even while busy); an error message, or None."""
    result = run(["umount", "-l", str(path)], check=False)
    if result.returncode != 0 and "not mounted" not in result.stderr and "no mount point" not in result.stderr:
        return f"umount {path}: {result.stderr.strip()}"
    return None


def remove_tree(directory: Path) -> str | None:
    """rm -rf, after unmounting anything still mounted below (an engine's overlay2 layers
    would otherwise make rm fail half-way, or worse, descend into a mounted filesystem)."""
    for point in mounts_under(directory):
        unmount(point)
    result = run(["rm", "-rf", "--one-file-system", str(directory)], check=False, timeout=300)
    if result.returncode != 0 and os.path.exists(directory):
        return f"rm -rf {directory}: {result.stderr.strip()}"
    return None


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True
