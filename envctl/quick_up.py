"""`envctl up NAME [--host H]` of an environment already up, answered by verifying a recorded no-op.

A full `up NAME` (no options, this machine, a `cpu` manifest whose image is named by ref or
tarball, neither built nor pulled), or `up NAME --host H` naming one SSH host (no other option;
the host's half: envctl/quick_up_remote.py), whose plan found nothing to do (every artifact
cached, the image present, the container unchanged and running, every setup step skipped) writes
a record (0600, and one a group or others could write is never read: `read_record`;
envctl/quick_up_record.py) under `<cache>/state/quick-up/<key>.json` (where the records of
`exec ENTRY --host H` lie too, keyed by their own arguments: envctl/quick_exec.py). The next `up NAME` with
the same key reads it before typer is imported (envctl/cli.py main) and prints the lines that
`up` printed, when everything the plan rested on still holds; otherwise it returns None and the
full `up` plans and acts as it always does. It never gives another answer than the full path:
whatever it cannot confirm is the full path's to decide.

The key (`record_key`): sha256 of envctl's version, the arguments, the working directory,
whether stdout and stderr are terminals, the user ID and every environment variable but the
shell's own bookkeeping (SHELL_ONLY: `_`, OLDPWD, SHLVL, SSH_CLIENT, ...). So a change of
DOCKER_HOST, DOCKER_CONFIG, ENVCTL_*, HOME, XDG_*, PATH, a proxy, a variable the manifest
interpolates or passes (container.pass_env), or anything a library reads from the environment
is another key, which has no record until a full `up` writes one.

What the record holds and the quick path checks again (`answer`):

- the manifest file that NAME names now (envctl.manifest.discovery, the full path's code: a
  manifest of the same name in an earlier search root is another file) and each profile it
  extends, found again the same way;
- the bytes (sha256, taken when the file was first opened: a file edited while `up` ran is
  recorded as the plan read it) of every file the full `up` opened to read while it resolved,
  planned and applied (Python's audit hook `open`: manifest.yaml, profiles, cache records, the tarball
  identity records, a writable copy's stamp ...) and of the files whose absence counted (the
  manifest's lock file, the user configuration file, the inventory, container.env_file);
- stat fingerprints (device, inode, size, mtime_ns, mode; taken after the apply, and no record
  is written when one of these paths, or the directory of one now absent, changed since `up`
  began) of the paths the plan looked at without opening them: each cached artifact's placed files and its local source, a `mode: rw`
  artifact's workspace copy, container.mounts sources, the image tarball (a local file or the
  cached blob), the manifest's container.env_file;
- what the full `up` wrote (the audit hook's `open` for writing and `os.mkdir`): each file
  still opens for writing and its lock is free (a shared flock taken without waiting and held
  while the engine is asked: a full `up` or `down` holding the environment's lock is changing
  it, and the full path waits for it), each directory it made is there, the directory of each
  temporary file is writable (a read-only cache or workspace fails the full `up`);
- the engine, over its unix socket (envctl/engine_socket.py): `GET /containers/{id}/json` (the
  same ID, name, running with the same StartedAt, the same config-hash and image-id labels, the
  same image), `GET /images/{ref}/json` (the ref still names the image the container runs: a
  re-tagged ref is another image), and `GET /images/json` of the images `envctl build` baked for
  this manifest (a new bake changes what `up` would run).

What it relies on, not checked here: the setup markers inside the container change only through
envctl's setup steps, which run only when a plan says so (a marker deleted by hand inside the
container is not seen until a full `up`: ENVCTL_NO_QUICK=1); a device kind other than `cpu`
(mlu, npu, cuda) is never recorded, because its plan reads the driver (files or the vendor tool),
the device nodes and who holds each card (cnmon or npu-smi and every container's devices), which
only the full path reads; every option but `--host` naming one host is the full path's.

The record holds its key, and one found under another name answers nothing (a group-writable
cache directory lets others rename what they cannot write). A manifest that interpolates a
variable the key leaves out (SHELL_ONLY: `${SSH_CONNECTION}`) is never recorded.

A record is invalidated by: another envctl version; another argument, working directory,
terminal, user or environment variable; a byte of the manifest, a profile, the lock file, the
user configuration or the inventory, or any other file the full path read (created or removed
too); a profile or manifest of that name found elsewhere; an artifact file or copy touched,
replaced or removed; the tarball touched; the container stopped, restarted, recreated or
removed; the image re-tagged or removed; an image baked or removed; a record file that cannot be
read or parsed (truncated, garbage). Each of those runs the full `up`, which writes the record
again when its plan is again a no-op (and removes the old one first in any case).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from pathlib import Path
from typing import Mapping

FORMAT = 1  # of the record file; another value is not read
# Variables a shell sets or changes between two commands of one user, which neither envctl nor
# the libraries it uses read.
SHELL_ONLY = frozenset({"_", "OLDPWD", "SHLVL", "SSH_CLIENT", "SSH_CONNECTION", "SSH_TTY", "ENVCTL_NO_QUICK"})
CONTENT_LIMIT = 1 << 20  # bytes: files up to this size are fingerprinted by content, larger ones by stat


def record_key(args: list[str], environ: Mapping[str, str], cwd: str | None = None) -> str:
    """The record's name: sha256 (hex) of what the answer of `envctl ARGS` may depend on besides
    the files and the engine (the record checks those)."""
    from envctl import __version__

    def tty(stream) -> bool:
        try:
            return stream.isatty()
        except (AttributeError, ValueError, OSError):
            return False

    given = {
        "version": __version__,
        "args": list(args),
        "cwd": cwd if cwd is not None else os.getcwd(),
        "tty": [tty(sys.stdout), tty(sys.stderr)],
        "uid": os.getuid(),
        "environ": sorted((k, v) for k, v in environ.items() if k not in SHELL_ONLY),
    }
    return hashlib.sha256(json.dumps(given, sort_keys=True).encode()).hexdigest()


def record_dir(environ: Mapping[str, str]) -> Path:
    from envctl.paths import cache_dir

    return cache_dir(environ) / "state" / "quick-up"


def content_print(path: str) -> list | None:
    """A file's fingerprint by content: ["sha256", hex] for a regular file up to CONTENT_LIMIT,
    a stat_print for anything else, None when there is nothing at `path`."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size > CONTENT_LIMIT:
        return stat_print(path)
    from envctl.regular_file import NotRegularFile, open_regular

    try:
        with open_regular(path) as file:  # replaced by a FIFO since the stat: no wait on it
            return ["sha256", hashlib.sha256(file.read()).hexdigest()]
    except NotRegularFile:
        return stat_print(path)
    except OSError:
        return ["unreadable"]


def stat_print(path: str) -> list | None:
    """[device, inode, size, mtime_ns, mode (type and permissions)] of `path` (symlinks
    followed), None when absent."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_mode]


def baked_list(images: list) -> list:
    """The images `envctl build` baked for a manifest, as `GET /images/json` lists them: what of
    them the plan reads (ID, tags, bake key), sorted."""
    return sorted([image.get("Id"), sorted(image.get("RepoTags") or []),
                   (image.get("Labels") or {}).get("io.envctl.bake-key")] for image in images)


HOST_OPTIONS = ("--host", "--hosts", "-H")  # envctl/cli_remote.py host_option


def answered_form(args: list[str]) -> bool:
    """Whether `args` (after `envctl`) is a form this quick path answers and a full `up` records:
    `up NAME`, or `up NAME --host H` (also --hosts, -H) with one word naming the host (a group
    or a comma list names several, and a record is kept only for one host: the recording finds
    out)."""
    def word(text: str) -> bool:
        return bool(text) and not text.startswith("-")

    if len(args) == 2:
        return args[0] == "up" and word(args[1])
    return (len(args) == 4 and args[0] == "up" and word(args[1]) and args[2] in HOST_OPTIONS
            and word(args[3]) and "," not in args[3])


def answer(args: list[str], environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(stdout, stderr) of `envctl up NAME [--host H]` when a record of its no-op still holds;
    None: the full path answers. Never raises for a record or a world that is not as expected."""
    from envctl.engine_socket import socket_path

    if not answered_form(args):
        return None
    remote = len(args) == 4
    socket = None if remote else socket_path(environ)
    if socket is None and not remote:
        return None
    try:
        key = record_key(args, environ)
        record = read_record(record_dir(environ) / f"{key}.json")
        if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("socket") != socket:
            return None
        if record.get("key") != key:
            return None  # a record put under another command's name (a shared cache's directory)
        if remote != isinstance(record.get("remote"), dict):
            return None
        if not (_same_manifest(args[1], environ, record) and _same_files(record)):
            return None
        with _Writable(record["written"]) as writable:
            if not writable.held:
                return None
            if remote:
                from envctl.quick_up_remote import same_host

                if not same_host(record, environ):
                    return None
            elif not _same_engine(socket, record):
                return None
        out, err = record["stdout"], record["stderr"]
        return (out, err) if isinstance(out, str) and isinstance(err, str) else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # no record, or not one this code wrote whole: the full path


def read_record(path: Path):
    """The record at `path` (parsed JSON), when it is a regular file of this user's that no one
    else can write (envctl/quick_up_record.py writes it 0600); None otherwise. A remote record
    holds the ssh commands the quick path runs (envctl/quick_up_remote.py), and a cache may be
    shared by a lab's users (ENVCTL_CACHE on a group-writable disk): a record someone else wrote
    or could have changed is never read, nor waited on when it is not a file (a FIFO put there:
    envctl/regular_file.py). Raises OSError (no record) and ValueError (not JSON)."""
    from envctl.regular_file import open_regular

    with open_regular(path) as file:
        found = os.fstat(file.fileno())  # of what is read, not of what the name points to later
        if not stat.S_ISREG(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o022:
            return None
        return json.loads(file.read().decode("utf-8"))


def _same_manifest(reference: str, environ: Mapping[str, str], record: dict) -> bool:
    from envctl.errors import EnvctlError
    from envctl.manifest import discovery

    try:
        roots = discovery.search_roots(environ)
        name, _variant = discovery.split_variant(reference)
        found = discovery.find_manifest(name, roots)
    except EnvctlError:
        return False
    return str(found) == record["manifest"] and same_profiles(record, environ, roots)


def same_profiles(record: dict, environ: Mapping[str, str], roots=None) -> bool:
    """Whether each profile the record's manifest extends (record["profiles"]: [name, path]) is
    still found at the path it was read from, searching `roots` (default: discovery.search_roots)
    as the loader does: one of the same name appearing in a directory searched earlier is the
    profile the full path loads, though no byte the record fingerprints changed."""
    from envctl.manifest import discovery

    if not record["profiles"]:
        return True
    roots = discovery.search_roots(environ) if roots is None else roots
    directories = discovery.profile_roots(Path(record["manifest"]), roots)
    return all(str(discovery.find_profile(profile, directories)) == path for profile, path in record["profiles"])


def _same_files(record: dict) -> bool:
    return (all(content_print(path) == fingerprint for path, fingerprint in record["files"].items())
            and all(stat_print(path) == fingerprint for path, fingerprint in record["stats"].items()))


class _Writable:
    """What the full `up` wrote (record["written"], envctl/quick_up_record.py _written_paths)
    can still be written, as a context: `held` is True when every file opens for writing
    (without being created or truncated) and takes a shared lock at once, every directory is
    there, and every "parent" directory is writable (os.access: permissions and a read-only
    filesystem). The locks are held until the context ends: a full `up` or `down` holding the
    environment's lock (exclusive) is changing it, and the full path waits for it. False sends
    the command to the full path, which fails with its own message or waits."""

    def __init__(self, written: dict):
        self._written = written
        self._files: list[int] = []
        self.held = False

    def __enter__(self) -> "_Writable":
        import fcntl

        for path, kind in self._written.items():
            if kind == "file":
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO put there: ENXIO, not a wait
                except OSError:
                    return self
                self._files.append(fd)
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except OSError:
                    return self
            elif kind == "dir":
                if not os.path.isdir(path):
                    return self
            elif kind == "parent":
                if not (os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)):
                    return self
            else:
                return self  # not a kind this code writes
        self.held = True
        return self

    def __exit__(self, *_exc) -> None:
        for fd in self._files:
            os.close(fd)  # releases its lock


def _same_engine(socket: str, record: dict) -> bool:
    from envctl.engine_socket import Engine, EngineUnanswered

    try:
        with Engine(socket) as engine:
            answers = [engine.get(path, query) for path, query in engine_targets(record)]
    except EngineUnanswered:
        return False
    return engine_agrees(record, answers)


def engine_targets(record: dict) -> list[tuple[str, dict | None]]:
    """(path, query) of the engine requests that check the record: the container's inspection,
    the image ref's, the list of the images baked for the manifest."""
    from envctl.engine_socket import filters, quoted

    return [(f"/containers/{record['container']['id']}/json", None),
            (f"/images/{quoted(record['image']['ref'])}/json", None),
            ("/images/json", {"filters": filters(label=[f"io.envctl.baked-for={record['name']}"])})]


def engine_agrees(record: dict, answers: list) -> bool:
    """Whether the engine's (status, JSON) answers to `engine_targets` are what the record holds:
    the same container running since the same start with the same labels and image, the ref
    naming the same image, the same baked images."""
    (container_status, attrs), (image_status, image), (baked_status, baked) = answers
    return (container_status == 200 and isinstance(attrs, dict) and container_facts(attrs) == record["container"]
            and image_status == 200 and isinstance(image, dict) and image.get("Id") == record["image"]["id"]
            and baked_status == 200 and isinstance(baked, list) and all(isinstance(i, dict) for i in baked)
            and baked_list(baked) == record["baked"])


def container_facts(attrs: dict) -> dict:
    """What of the container's inspect a no-op plan rested on: the same container (ID, name),
    running since the same start, with the same config hash and image (labels and the engine's
    image ID). The record keeps these; the quick path compares them whole."""
    state = attrs.get("State") or {}
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    return {"id": attrs.get("Id"), "name": str(attrs.get("Name", "")).lstrip("/"), "status": state.get("Status"),
            "running": state.get("Running"), "started_at": state.get("StartedAt"),
            "config_hash": labels.get("io.envctl.config-hash"), "image_label": labels.get("io.envctl.image-id"),
            "image": attrs.get("Image")}
