"""Writing the record of a no-op `up NAME` that envctl/quick_up.py verifies (see its docstring
for what the record holds, what the quick path relies on and what invalidates a record).

A full `up NAME` (the plain form, exactly these two arguments) starts a Recording before it loads
the manifest: from then on Python's audit hook notes every file opened for reading (PEP 578, the
`open` event that open(), io.open and os.open raise), and what the command prints on stdout and
stderr is kept as it is written. The record of this key is removed at once: whatever this `up`
finds, an older record must not answer for it. When the plan turns out to be a no-op on this
machine for a manifest the quick path may answer (`note`), and the command ends with exit 0
(`finish`), the record is written. Writing it is an optimisation: any failure leaves no record
and changes nothing of what `up` did or says.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
from pathlib import Path

from envctl import quick_up

# Paths opened that are code, not input: Python's modules and packages' metadata (importlib
# reads entry_points.txt), which the envctl version and the environment (PATH, the venv) key.
_CODE_SUFFIXES = (".py", ".pyc", ".so", ".pth", ".zip")
_HOST_STATE = ("/proc/", "/sys/", "/dev/")  # read now, different next time: a plan that reads them is not recorded
# Opened, never an input of the plan: subprocess's DEVNULL (ssh's stdin on an SSH host); the CPU's
# flags, which order ssh's ciphers (envctl/remote/ssh.py _aes_instructions) and never what `up` says.
_NOT_INPUT = frozenset({"/dev/null", "/proc/cpuinfo"})

# While a Recording runs: path → its content_print when it was first opened for reading. Taken
# then, not when the command ends: a file edited while `up` ran must not be recorded as the bytes
# this answer rests on (the next `up` would replay an answer planned from the older bytes).
_opened: dict[str, list | None] | None = None
# ... and what the command wrote: path → "file" (opened for writing) or "dir" (made). The quick
# path checks that it could still write them (a read-only cache or workspace fails the full `up`),
# and takes the locks among them (a full `up` holding one is under way: its answer is to wait).
_written: dict[str, str] | None = None
# ... and the files it replaced (os.rename, os.replace: envctl.atomic's writes), which with those
# opened for writing are recorded as the command left them, not as it first read them.
_replaced: set[str] = set()
_hooked = False  # audit hooks cannot be removed: one per process, idle when no Recording runs
_busy = False  # the hook's own reads (the fingerprints) are not inputs


def _is_code(path: str) -> bool:
    return path.endswith(_CODE_SUFFIXES) or "/__pycache__/" in path or ".dist-info/" in path or path in _NOT_INPUT


def _audit(event: str, args: tuple) -> None:
    global _busy
    if _opened is None or _busy or event not in ("open", "os.mkdir", "os.rename", "os.replace"):
        return
    if event in ("os.rename", "os.replace"):  # (src, dst, src_dir_fd, dst_dir_fd): an atomic write's
        target = args[1] if len(args) > 1 else None
        if isinstance(target, (str, bytes)):
            _replaced.add(os.path.abspath(os.fsdecode(target)))
        return
    path, mode, flags = (tuple(args) + (None, None, None))[:3]
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str):
        return  # an open file descriptor
    path = os.path.abspath(path)
    if path in _NOT_INPUT:
        # Nor an output: subprocess.DEVNULL opens /dev/null read-write, and as a file written its
        # directory /dev would have to be writable for the quick path, as it is for root alone.
        return
    if event == "os.mkdir":
        _written.setdefault(path, "dir")
        return
    writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & (os.O_WRONLY | os.O_RDWR))
    if writing:
        _written.setdefault(path, "file")
    elif path not in _opened:
        if _is_code(path) or path.startswith(_HOST_STATE):
            _opened[path] = None
            return
        _busy = True
        try:
            _opened[path] = quick_up.content_print(path)
        finally:
            _busy = False


class _Tee(io.TextIOBase):
    """A text stream that writes through to `target` and keeps a copy. Attributes it does not
    define (isatty, fileno, encoding, buffer) are the target's, so that click and progress
    bars treat it as the terminal or pipe it stands for."""

    def __init__(self, target):
        super().__init__()
        self._target = target
        self.kept: list[str] = []

    def write(self, text: str) -> int:
        written = self._target.write(text)  # bytes raise here, before anything is kept (click probes with b"")
        self.kept.append(text)
        return written

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:
        return self._target.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self):
        return self._target.encoding

    @property
    def errors(self):
        return self._target.errors

    def __getattr__(self, name: str):
        return getattr(self._target, name)


class Recording:
    """One plain `up NAME` being watched for a record."""

    def __init__(self, args: list[str]):
        self.args = list(args)
        self.environ = dict(os.environ)
        self.key = quick_up.record_key(self.args, self.environ)  # before anything is printed or changed
        self.path = quick_up.record_dir(self.environ) / f"{self.key}.json"
        self.facts: dict | None = None
        self.hosts_noted = 0  # a record is kept for one host: `up NAME --host GROUP` may name several
        self._noting = threading.Lock()
        self._secrets: list[str] = []  # the host's inventory variables: no command recorded may hold one
        # Stat fingerprints are taken after the apply: a path changed since this `up` began (its
        # ctime after this, less a margin for the filesystem's coarse clock) may not be what the
        # plan saw, and is no record's.
        self.started_ns = time.time_ns() - 50_000_000
        # `up NAME --host H` read its inventory (and opened its host) before this recording began
        # (envctl/remote/early_open.py): a file that is no input the hook saw, fingerprinted only
        # when the command ends, must be as it was since then (same margin).
        began = _early_opening_began_ns()
        self.read_early_ns = None if began is None else began - 50_000_000
        self._stdout, self._stderr = _Tee(sys.stdout), _Tee(sys.stderr)

    @classmethod
    def start(cls, args: list[str]) -> "Recording | None":
        global _opened, _written, _hooked
        try:
            recording = cls(args)
            recording.path.unlink(missing_ok=True)
        except OSError:
            return None  # a state directory that cannot be written: nothing recorded (an old record is still checked whole)
        if not _hooked:
            sys.addaudithook(_audit)
            _hooked = True
        _opened, _written = {}, {}
        _replaced.clear()
        sys.stdout, sys.stderr = recording._stdout, recording._stderr
        return recording

    def note(self, host, loaded, plan, report) -> None:
        """After `up` applied `plan` on `host`: keep what the record needs when the plan was a
        no-op that the quick path may answer (else nothing is recorded)."""
        with self._noting:  # each host's work notes on a thread of its own (envctl/cli_remote.py on_hosts)
            self.hosts_noted += 1
            self.facts = None
            if self.hosts_noted > 1:
                return
        try:
            facts = _facts(host, loaded, plan, report, self.environ)
            if facts is not None and _changed_since(facts["stats"], self.started_ns):
                facts = None
            self._secrets = [value for value in getattr(host, "env", {}).values() if isinstance(value, str) and value]
        except Exception:  # noqa: BLE001  (a record is an optimisation: never a reason for `up` to fail)
            facts = None
        with self._noting:
            self.facts = facts if self.hosts_noted == 1 else None  # another host noted meanwhile: none

    def stop(self) -> tuple[dict, dict]:
        """Stop watching (the audit hook idle, the streams given back; again: nothing more);
        returns what was opened to read and what was written meanwhile."""
        global _opened, _written
        opened, _opened = _opened or {}, None
        written, _written = _written or {}, None
        sys.stdout, sys.stderr = self._stdout._target, self._stderr._target
        return opened, written

    def finish(self, code: int) -> None:
        """The command ends with `code`: write the record when there is one to write."""
        opened, written = self.stop()
        if code != 0 or self.facts is None or self.hosts_noted > 1:
            return
        try:
            if "remote" in self.facts:
                self.facts["remote"]["commands"] = _host_reads(self._secrets)
                if self.facts["remote"]["commands"] is None:
                    return
            own = _replaced | {path for path, kind in written.items() if kind == "file"}
            candidates = self.facts.pop("candidates")
            if self.read_early_ns is not None and _changed_since(
                    [path for path in candidates if path not in opened and path not in own], self.read_early_ns):
                return  # edited after the early opening read it, maybe: the plan may rest on the older bytes
            files = _read_files({path: fingerprint for path, fingerprint in opened.items() if path not in own},
                                candidates + sorted(own & set(opened)))
            if files is None:
                return
            record = {"format": quick_up.FORMAT, "key": self.key, **self.facts, "files": files,
                      "written": _written_paths(written, self.path.parent),
                      "profiles": _profiles(files, self.facts["manifest"], self.environ),
                      "stdout": "".join(self._stdout.kept), "stderr": "".join(self._stderr.kept)}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            from envctl.atomic import write_text_atomic

            # This user's alone: the quick path reads no record another user could write (a
            # remote one holds the ssh commands it runs; quick_up.read_record).
            write_text_atomic(self.path, json.dumps(record, indent=1, sort_keys=True), mode=0o600)
        except Exception:  # noqa: BLE001  (as in note)
            self.path.unlink(missing_ok=True)


def reads_unkeyed_variables(loaded) -> bool:
    """Whether the manifest, as loaded, interpolated a variable the record's key leaves out
    (quick_up.SHELL_ONLY: `${SSH_CONNECTION}`, `${SHLVL}`): its next value resolves another
    manifest under the same key, so nothing resolved from it may be recorded. True when the
    loader's trace of what it used cannot be read."""
    used = getattr(getattr(loaded, "trace", None), "used", None)
    if not isinstance(used, dict):
        return True
    return any(getattr(reference, "name", None) in quick_up.SHELL_ONLY for references in used.values()
               for reference in references)


def _read_files(opened: dict, candidates: list[str]) -> dict | None:
    """path → content_print of every input file opened (as it was when first opened), and of
    the candidates (files whose absence counted); None when the plan read host state that
    changes by itself."""
    files = {}
    for path in [*opened, *candidates]:
        if _is_code(path):
            continue
        if path.startswith(_HOST_STATE):
            return None
        files[path] = opened[path] if path in opened else quick_up.content_print(path)
    return files


def _early_opening_began_ns() -> int | None:
    """When the early opening of this command's hosts (envctl/remote/early_open.py, started
    before typer and so before any Recording) began, on the wall clock in ns; None when there is
    none (the command opens its hosts itself, inside the recording, which sees what it reads)."""
    early = sys.modules.get("envctl.remote.early_open")
    began = [opening.started for opening in getattr(early, "_started", ())]
    if not began:
        return None
    return time.time_ns() - int((time.monotonic() - min(began)) * 1e9)


def _changed_since(stats, since_ns: int) -> bool:
    """Whether any of the paths stat'ed changed (content, metadata, name) after `since_ns`; of
    a path absent now, its nearest directory that is there (a removal changes it)."""
    for path in stats:
        while True:
            try:
                if os.stat(path).st_ctime_ns >= since_ns:
                    return True
                break
            except OSError:
                parent = os.path.dirname(path)
                if parent == path:
                    break
                path = parent
    return False


def _written_paths(written: dict, records: Path) -> dict:
    """path → what the quick path checks of it: "file" (a file the full `up` opened for writing,
    still there: it must open for writing, and a lock among them must be free), "dir" (a
    directory it made or found: it must still be there), "parent" (a temporary file since
    renamed or removed: its directory must be writable). The records' own directory is not the
    answer's: a record that cannot be written is only not written."""
    kept = {}
    for path, kind in written.items():
        if path == str(records) or path.startswith(str(records) + os.sep):
            continue
        if kind == "file" and not os.path.isfile(path):
            kept[os.path.dirname(path)] = "parent"  # which includes "dir"
        else:
            kept.setdefault(path, kind)
    return kept


def _profiles(files: dict, manifest: str, environ: dict) -> list:
    """[name, path] of each profile file read: a file `<dir>/NAME.yaml` in one of the manifest's
    profile directories (envctl.manifest.discovery.profile_roots)."""
    from envctl.manifest import discovery

    directories = {str(d) for d in discovery.profile_roots(Path(manifest), discovery.search_roots(environ))}
    return sorted([Path(path).stem, path] for path in files
                  if str(Path(path).parent) in directories and path.endswith(".yaml"))


def _facts(host, loaded, plan, report, environ: dict) -> dict | None:
    """What the record holds besides the files read and the output; None when this `up` is not
    one the quick path may answer."""
    manifest = loaded.manifest
    if manifest.device.kind != "cpu" or manifest.image.build is not None or manifest.image.pull:
        return None
    if reads_unkeyed_variables(loaded):
        return None
    if (plan.blockers or plan.needs or not plan.ready or plan.container_action.action != "unchanged"
            or plan.image.action != "present" or any(a.action != "cached" for a in plan.artifacts)
            or any(s.action != "skip" for s in plan.setup)):
        return None
    if report.container.action != "unchanged" or any(s.action == "ran" for s in report.setup):
        return None
    from envctl.engine_socket import EngineUnanswered, Pipelined, socket_path

    remote = _remote(host)
    # The host root (ENVCTL_HOST_ROOT, in the key) only moves device probes: not cpu's.
    if host.name != "local" and remote is None:
        return None
    socket = socket_path(environ) if remote is None else None
    if socket is None and remote is None:
        return None

    # One round (a round trip through an SSH forward), the requests the quick path makes.
    asked = {"container": {"id": report.container.container_id}, "image": {"ref": plan.container.image},
             "name": manifest.name}
    try:
        with Pipelined(socket if remote is None else remote["forward"]) as engine:
            (container_status, attrs), (image_status, image), (baked_status, baked) = \
                engine.get(quick_up.engine_targets(asked))
    except EngineUnanswered:
        return None
    if not (container_status == image_status == baked_status == 200 and isinstance(attrs, dict)
            and isinstance(image, dict) and isinstance(baked, list) and all(isinstance(i, dict) for i in baked)):
        return None
    container = quick_up.container_facts(attrs)
    if container["status"] != "running" or container["running"] is not True:
        return None
    image_id = image.get("Id")
    # Asked after the apply: another `up` (another --var, variant or manifest) may have recreated
    # the container or re-tagged the image since this plan observed them. The record holds only
    # what this plan found unchanged, else the next quick answer replays "unchanged" for a
    # container this plan never saw.
    world = plan.world
    if (container["id"] != world.container_id or container["config_hash"] != world.container_hash
            or image_id != world.image_id):
        return None
    return {"socket": socket, **({"remote": remote} if remote is not None else {}), "name": manifest.name,
            "manifest": str(loaded.file), "container": container,
            "image": {"ref": plan.container.image, "id": image_id}, "baked": quick_up.baked_list(baked),
            "stats": {path: quick_up.stat_print(path) for path in _stat_paths(loaded, environ)},
            "candidates": _candidates(loaded, environ, remote is not None)}


def _remote(host, forward: str | None = None) -> dict | None:
    """Where an SSH host was reached (the record's "remote", see envctl/quick_up_remote.py);
    None for this machine. Only a host reached through a master connection in envctl's control
    directory whose engine is forwarded to a unix socket there. `forward`: where the caller
    forwarded the engine's socket (else the host's engine is asked for it)."""
    from envctl.hosts.ssh import SSHHost
    from envctl.remote.live_master import control_directory, forwarded_engine

    if not isinstance(host, SSHHost):
        return None
    connection = host.connection
    directory = control_directory(os.environ)
    config = connection.settings.config  # --ssh-config, else ENVCTL_SSH_CONFIG (SSHSettings.from_environ)
    if directory is None or os.path.dirname(connection.control_path) != directory:
        return None
    if forward is None:
        host.engine()  # the engine's socket forwarded, when the plan did not ask the engine through it
        forward = host.forwarded_socket
    found = forwarded_engine(connection.destination, config, directory)
    if found is None or found != forward:
        return None
    return {"destination": connection.destination, "config": config, "control_dir": directory, "forward": found}


def _host_reads(secrets: list[str]) -> list[dict] | None:
    """The commands this `up` ran on its host (envctl/remote/command_log.py) as the record keeps
    them; None when one may have changed the host, was not read whole, or holds one of
    `secrets` (the host's inventory variables: a record never stores one)."""
    from envctl.remote import command_log

    reads = command_log.reads()
    if reads is None or any(secret in word for answer in reads for word in answer.argv for secret in secrets):
        return None
    return [{"argv": list(answer.argv), "returncode": answer.returncode, "stdout": answer.stdout,
             "stderr": answer.stderr} for answer in reads]


def _candidates(loaded, environ: dict, remote: bool = False) -> list[str]:
    """Files whose absence the full path takes into account without opening them: the lock
    file, the user configuration, the inventory, the manifest's container.env_file; for an SSH
    host also the ssh configuration files (ssh reads them, not envctl: the audit hook does not
    see them), though the quick path reaches the host through the master they opened."""
    from envctl.artifacts.lockfile import lock_path
    from envctl.remote.inventory import inventory_path
    from envctl.user_config import config_path

    from envctl.paths import config_home

    home = config_home(environ)  # the default files count when they appear, though absent now
    own = getattr(loaded.manifest.container, "env_file", None)  # optional: read when it is there
    found = [lock_path(loaded.file), config_path(environ), inventory_path(None, environ),
             home / "config.yaml" if home else None, home / "inventory.yaml" if home else None,
             loaded.file.parent / own if own else None]
    ssh_files = [environ.get("ENVCTL_SSH_CONFIG") or os.path.expanduser("~/.ssh/config"),
                 "/etc/ssh/ssh_config"] if remote else []
    return [os.path.abspath(p) for p in [*found, *ssh_files] if p is not None]


def _stat_paths(loaded, environ: dict) -> list[str]:
    """Paths the plan looked at with stat alone (envctl/observe.py, envctl/observe_cache.py):
    each cached artifact's placed files and local source, the writable copies, the mount
    sources, the workspace, the tarball, the env file (whose permissions a warning names)."""
    from envctl.artifacts.cache import Cache, on_disk
    from envctl.artifacts.sources import artifact_key
    from envctl.observe_cache import tarball_here
    from envctl.paths import cache_dir, workspace_dir

    cache = Cache(cache_dir(environ))
    paths = []
    for name, artifact in loaded.manifest.artifacts.items():
        source = loaded.sources.get(name)
        if source is None:
            continue
        if source.kind == "file":  # where it comes from (envctl/local_sources.py asks whether it is there)
            paths.append(source.location)
        key = artifact_key(source, artifact.subpath, artifact.include)
        placed = cache.placed(key)
        paths.append(str(placed))
        record = cache.placed_record(key) or {}
        paths += [str(placed / f.get("path", "")) if f.get("path") else str(placed) for f in on_disk(record)]
        if artifact.mode == "rw":
            paths.append(str(workspace_dir(loaded.manifest.container_name, environ) / "artifacts" / name))
    for mount in loaded.manifest.container.mounts:
        source = mount.split(":")[0]
        paths.append(source if source.startswith("/") else str(loaded.directory / source))
    # The workspace: deleted (and so made again by the full path), the container is restarted
    # (observe.py workspace_gone). An entry added at its top changes it too: a full path then.
    paths.append(str(workspace_dir(loaded.manifest.container_name, environ)))
    if loaded.image_source is not None and loaded.image_source.kind == "file":
        paths.append(loaded.image_source.location)
    own = getattr(loaded.manifest.container, "env_file", None)
    if own:
        paths.append(str(loaded.file.parent / own))
    tarball = tarball_here(loaded, cache)
    if tarball is not None:
        paths.append(str(tarball))
    return sorted({os.path.abspath(p) for p in paths})
