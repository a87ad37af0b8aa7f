"""One host-wide lock around choosing cards and creating the container that takes them, so that two
`up`s at once on one host never hand out the same card, and the check made under it.

The plan chooses free cards from what it observed; between that and the container's creation
another `up` (another user, another environment) may have taken them. Under the lock, `up` reads
the holders again: a container that was not holding the chosen cards when the plan was made and
holds them now means the plan is stale (CardsTaken), and `up` plans again.

Where the lock lives:
- this machine's engine: a file in /tmp, keyed by the engine's
  address (DOCKER_HOST), so every user of this machine who reaches that engine meets the same
  lock. The file is opened without O_CREAT when it exists: Linux refuses O_CREAT on another
  user's file in a sticky world-writable directory (fs.protected_regular), and flock(2) needs
  only a read descriptor.
- an SSH host's engine: on that host, so that `up`s from every machine meet it: flock(1)
  (util-linux) holds a lock on a directory in the host's /tmp, keyed by its engine socket, for
  as long as the SSH session lasts (a directory: flock(1) opens it read-only, which works for
  every user whoever made it). The session ends when the block ends, or when this process
  dies and sshd closes the channel, which frees the lock. A host without flock(1) falls back
  to this machine's lock directory for that host, which covers the `up`s made from here.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import posixpath
import subprocess
from contextlib import contextmanager
from pathlib import Path

from envctl.errors import HostNotReady, WorldChanged

DEFAULT_ENGINE = "unix:///var/run/docker.sock"
# Not tempfile.gettempdir(): it follows each user's TMPDIR, and users of one machine must meet here.
SHARED_TMP = "/tmp"


class CardsTaken(WorldChanged):
    """The cards a plan chose were taken by another container after the plan was made."""


def lock_path(host) -> Path:
    """The lock for `host`'s engine (a LocalHost or an SSHHost: `fetch_mode` None is this machine)."""
    if getattr(host, "fetch_mode", None) is None:
        address = host.environ().get("DOCKER_HOST") or DEFAULT_ENGINE
        if address.startswith("unix://"):  # one socket by two paths (/var/run is a link to /run) is one engine
            address = "unix://" + os.path.realpath(address[len("unix://"):])
        key = hashlib.sha256(address.encode()).hexdigest()[:16]
        return Path(SHARED_TMP) / f"envctl-cards-{key}.lock"
    return Path(host.lock_dir) / "cards.lock"


def _open_shared(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            return os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            pass
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                continue  # made by another process meanwhile: open it as it is
            raise
        # The mode given to open(2) is cut by the umask: made by a user whose umask is 077, the file
        # would be 0600 and every other user's open(O_RDONLY) would fail. Readable by all, whatever the umask.
        os.fchmod(fd, 0o644)
        return fd


# $1: the lock directory. Prints "waiting" when another holds it, "held" once flock(1) has it, then
# waits for stdin to close. `mkdir -m 755`: readable by every user whatever the umask of the first
# one (flock(1) opens it read-only).
_REMOTE_HOLD = ('command -v flock >/dev/null 2>&1 || exit 127; mkdir -p -m 755 -- "$1" 2>/dev/null; flock -n -- "$1" true 2>/dev/null || echo waiting; '
                'exec flock -x -- "$1" sh -c \'echo held; exec cat >/dev/null\'')
NO_FLOCK = 127


def hold(host, echo=None):
    """The host-wide lock for `host` as a context manager (see the module's docstring).
    `echo(line)`: told when another `up` holds the lock and this one waits for it."""
    if getattr(host, "fetch_mode", None) is None or not hasattr(host, "connection"):
        return host_lock(lock_path(host), echo)
    return _remote_lock(host, echo)


@contextmanager
def _remote_lock(host, echo=None):
    key = hashlib.sha256(host.docker_socket.encode()).hexdigest()[:16]
    where = f"/tmp/envctl-cards-{key}.lock.d"
    argv = host.connection.command(["sh", "-c", _REMOTE_HOLD, "sh", where])
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Lines before ours (a shell startup file that prints) are passed over, not taken for a refusal.
        line = process.stdout.readline()
        while line and line.strip() != b"held":
            if line.strip() == b"waiting" and echo is not None:
                echo(f"cards      waiting for the card lock on {host.name} (another up is taking cards there; "
                     f"held by whoever has {where} open: fuser -v {where})")
            line = process.stdout.readline()
        if line.strip() != b"held":
            code = process.wait()
            said = process.stderr.read().decode(errors="replace").strip()
            if code == NO_FLOCK:  # no flock(1) there: serialise at least the ups made from this machine
                with host_lock(lock_path(host)):
                    yield
                return
            raise HostNotReady(f"{host.name}: could not take the host-wide card lock (exit {code}): {said or 'no output'}",
                               hint=f"ssh {host.name} flock --version")
        yield
    finally:
        if process.stdin and not process.stdin.closed:
            process.stdin.close()  # cat ends, flock lets go
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def host_lock(path: Path, echo=None):
    """flock(2) on `path`, exclusive, for a `with` block; released when the block ends or the
    process dies, so a killed `up` never leaves it held. `echo(line)`: told when it must wait."""
    fd = _open_shared(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if echo is not None:
                echo(f"cards      waiting for the card lock {path} (another up is taking cards on this engine; "
                     f"held by whoever has it open: fuser -v {path})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def under(root: str):
    return (lambda path: path) if root == "/" else (lambda path: posixpath.join(root, path.lstrip("/")))


def check_still_free(client, plan) -> None:
    """Raise CardsTaken when a container other than the plan's own, which did not hold any of
    the plan's cards when it was observed (plan.world.card_holders), holds one now."""
    from envctl.card_holders import node_path_for, read_holders
    from envctl.card_choice import held_text

    cards = tuple(plan.devices.cards)
    if not cards or plan.devices.kind == "cpu":
        return
    now = read_holders(client, plan.devices.kind, node_path_for(plan.devices.kind, under(plan.host_root)), cards)
    new = {}
    for holder in now:
        if holder.holds and holder.container != plan.container.name and holder.container not in plan.world.card_holders:
            for card in holder.cards:
                new.setdefault(card, []).append(holder)
    if new:
        raise CardsTaken(f"cards {','.join(map(str, sorted(new)))} were taken after the plan was made: {held_text(new)}",
                         hint="run `envctl plan` again: a count of cards chooses free ones")
