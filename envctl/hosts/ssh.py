"""A lab server reached over SSH, seen through the same small interface as the local machine.

Every command there costs a round trip or two, and a host can be 50 ms away, so probes are
asked in rounds, not one at a time. The first probe (or the host's opening, envctl/remote/
target.py) runs one script, `probe_round`, that answers every device question a plan may ask:
the type of each entry of <root>/dev, the driver files of every device family (their text),
the files the families mount when present, and where their vendor tools are. What it found
(and what it found absent) is kept for the life of this object, which is one command; a path
outside that set is asked when it is asked. An artifact's record read from the host's cache is
kept until anything else runs there (the only writes to it are commands, which end the memo),
so the planner and the apply asking for the same record cost one round trip, not three. Only
POSIX sh and coreutils are needed on the server, never Python or envctl.

Writes go through the SSH transport (envctl/remote/ssh.py, transfer.py, place.py): blobs are
pushed resumable and verified by the server's own sha256, downloads run there with curl, the
engine is the server's socket forwarded over the master connection. envctl's directory there
(`data_dir`) holds cache/ and workspaces/ with this machine's layout.
"""

from __future__ import annotations

import copy
import json
import os
import posixpath
import re
import threading
from pathlib import Path
from typing import Mapping, Sequence

from envctl.errors import HostNotReady
from envctl.hosts.base import CommandResult
from envctl.hosts.local import TOOL_DIRS
from envctl.remote import command_log
from envctl.remote.ssh import SSHConnection, trace

# $1 source, $2 destination: a writable copy (the blob store's files are read-only).
_COPY = 'rm -rf -- "$2" && mkdir -p -- "$(dirname -- "$2")" && cp -R -- "$1" "$2" && chmod -R u+w -- "$2"'
# Free bytes on the filesystem that holds $1, or would once created (the nearest existing parent).
_FREE = 'd=$1; while [ ! -e "$d" ]; do d=$(dirname "$d"); done; df -Pk "$d" | awk \'NR==2 {print $4}\''
# $1 a directory, $2 a file-name pattern: the newest match, or nothing.
_NEWEST = 'cd "$1" 2>/dev/null || exit 0; ls -1t -- $2 2>/dev/null | head -n 1'
# $1 path; the bytes on stdin, renamed into place only once all arrived.
_WRITE = 'mkdir -p -- "$(dirname -- "$1")" && t="$1.$$.tmp" && cat > "$t" && mv -f -- "$t" "$1"'

# Lists a glob's matches with a type letter each: c (character device), d, f, or - (other).
# The pattern arrives as $1 and is expanded unquoted on purpose (that is the glob); IFS is
# emptied so that only pathname expansion happens, never word splitting.
_LIST = 'IFS=; for p in $1; do if [ -c "$p" ]; then t=c; elif [ -d "$p" ]; then t=d; elif [ -f "$p" ]; then t=f; ' \
        'elif [ -e "$p" ]; then t=-; else continue; fi; printf "%s %s\\n" "$t" "$p"; done'

# One probe round. Arguments: the counts NG NGT NP NT, then NG glob patterns whose matches are
# listed, NGT more whose matches' text is wanted too, NP paths whose type is wanted, NT files
# whose text is wanted, and last the artifact entries whose record is wanted. Output:
# NUL-separated fields (a path never holds a NUL), records `m INDEX TYPE PATH [TEXT]` (a match
# of pattern INDEX; TEXT for the NGT patterns' files), `e TYPE PATH`, `t TYPE PATH [TEXT]`,
# `r PATH RECORD` (RECORD as _RECORD_AND_SIZES prints it, empty when there is none). TEXT
# comes only when TYPE is f or x: the file's first 64 KiB, any NUL removed. TYPE: c (character
# device), d, f, x (an executable file), u (a file this account cannot read), - (other), n
# (absent). Patterns expand unquoted on purpose, with IFS empty: pathname expansion only, never
# word splitting.
PROBE_ROUND = r'''kind() { if [ -c "$1" ]; then t=c; elif [ -d "$1" ]; then t=d; elif [ -f "$1" ]; then
  if [ ! -r "$1" ]; then t=u; elif [ -x "$1" ]; then t=x; else t=f; fi; elif [ -e "$1" ]; then t=-; else t=n; fi; }
text() { case $t in f|x) head -c 65536 -- "$1" 2>/dev/null | tr -d '\000'; printf '\0' ;; esac; }
ng=$1 ngt=$2 np=$3 nt=$4; shift 4; i=0
while [ "$i" -lt $((ng + ngt)) ]; do
  pattern=$1; shift; IFS=
  for p in $pattern; do
    kind "$p"; [ "$t" = n ] && continue
    printf 'm\0%s\0%s\0%s\0' "$i" "$t" "$p"; [ "$i" -lt "$ng" ] || text "$p"
  done
  unset IFS; i=$((i + 1))
done
i=0; while [ "$i" -lt "$np" ]; do kind "$1"; printf 'e\0%s\0%s\0' "$t" "$1"; shift; i=$((i + 1)); done
i=0; while [ "$i" -lt "$nt" ]; do kind "$1"; printf 't\0%s\0%s\0' "$t" "$1"; text "$1"; shift; i=$((i + 1)); done
while [ "$#" -gt 0 ]; do
  printf 'r\0%s\0' "$1"
  { test -e "$1" && cat -- "$1.json" && printf '\n--envctl-sizes--\n' && find "$1" -type f -exec stat -c '%s %n' {} +; } \
    2>/dev/null | tr -d '\000'
  printf '\0'; shift
done
'''


# make_workspace's: the directory, and the mark in it unless it is there already.
_MAKE_WORKSPACE = r'''mkdir -p -- "$1" && { [ "$(cat -- "$2" 2>/dev/null)" = "$3" ] || printf '%s\n' "$3" > "$2"; }'''


class SSHHost:
    def __init__(self, name: str, connection: SSHConnection, root: str = "/", data_dir: str = "",
                 docker_socket: str = "/var/run/docker.sock", fetch_mode: str = "push",
                 env: Mapping[str, str] | None = None, cards=None):
        self.name = name
        self.connection = connection
        self.root = root or "/"
        self.data_dir = data_dir  # envctl's directory there: cache/ and workspaces/ below it
        self.docker_socket = docker_socket  # the engine's socket there
        self.fetch_mode = fetch_mode  # "push": bytes go from this machine; "remote": it downloads them itself
        self.env = dict(env or {})  # the inventory's variables for it (may hold tokens: never printed)
        self.cards = cards  # the inventory's cards for it: a count or indices (envctl.cards), or None
        self._types: dict[str, str] = {}  # path → type letter, from listings already made ("n": absent)
        self._globbed: dict[str, list[str]] = {}  # pattern → its matches, from the probe round
        self._texts: dict[str, str | None] = {}  # path → its text (None: absent or unreadable), from the probe round
        self._probed = False
        self._pending = None  # (arguments, generation, process, its argv) of a probe round under way
        self._collecting = threading.Lock()  # one thread takes the probe round's answers
        self._noting = threading.Lock()  # one thread changes the note and writes it at a time
        self._records: dict[str, tuple[int, dict | None]] = {}  # cache path → (connection.generation, record)
        self._seen: dict[str, int] = {}  # path → connection.generation when its type in _types was read
        self.note: dict | None = None  # what is kept beside the master connection (envctl/remote/target.py)
        self._engine = None
        self._api_version = None  # a Future of the engine's API version, asked early (ask_api_version)
        self._engine_silent = False  # that early ask had no answer in engine_socket.TIMEOUT (an engine that hangs)
        self._ahead_lock = threading.Lock()  # the plan's first round sent ahead, once (ask_ahead)
        self._ahead: list | None = None
        self._asking = None  # the connection /version is asked on, while its answer is unread
        self.forwarded_socket: str | None = None  # where the engine's socket is forwarded to here

    def under_root(self, path: str) -> str:
        if self.root == "/":
            return path
        return posixpath.join(self.root, path.lstrip("/"))

    # -- probes: the probe round's answers first, the host for anything outside them ----------
    def take_probe_round(self, arguments: Sequence[str], output: str, generation: int) -> None:
        """Keep what PROBE_ROUND printed for `arguments` (run when the connection's generation
        was `generation`); later probes of those paths ask nothing, and the records it read
        stand until a command that may change the host runs."""
        listed, with_text = int(arguments[0]), int(arguments[1])
        patterns = list(arguments[4:4 + listed + with_text])
        found: dict[str, list[str]] = {pattern: [] for pattern in patterns}
        fields = output.split("\0")
        i = 0
        while i < len(fields):
            tag = fields[i]
            if tag == "m" and i + 3 < len(fields) and fields[i + 1].isdigit() and int(fields[i + 1]) < len(patterns):
                index, kind, path = int(fields[i + 1]), fields[i + 2], fields[i + 3]
                found[patterns[index]].append(path)
                self._types[path] = kind
                i += 4
                if index >= listed:
                    i = self._take_text(fields, i, kind, path)
            elif tag == "e" and i + 2 < len(fields):
                self._types[fields[i + 2]] = fields[i + 1]
                self._seen[fields[i + 2]] = generation
                i += 3
            elif tag == "t" and i + 2 < len(fields):
                kind, path = fields[i + 1:i + 3]
                self._types[path] = kind
                i = self._take_text(fields, i + 3, kind, path)
            elif tag == "r" and i + 2 < len(fields) - 1:  # the record is followed by its NUL
                self._records[fields[i + 1]] = (generation, _parse_record(fields[i + 1], fields[i + 2]))
                i += 3
            else:
                break  # the output ended (or was cut short): nothing after this point is taken
        if output.endswith("\0") and i == len(fields) - 1:  # all of it came: the match lists are whole
            self._globbed.update(found)
        self._probed = True

    def _take_text(self, fields: list[str], i: int, kind: str, path: str) -> int:
        if kind in ("f", "x"):
            if i < len(fields) - 1:  # the text is followed by its NUL
                self._texts[path] = fields[i]
            return i + 1
        self._texts[path] = None
        return i

    def start_probe_round(self, records: Sequence[str] = (), dirs: Sequence[str] = ()) -> None:
        """Start the probe round (with the reading of `records` and the type of `dirs`) now,
        without waiting: the first probe takes its answers (a command that probes nothing never
        waits for it)."""
        import atexit
        import subprocess

        arguments = probe_arguments(self.root, records, dirs)
        command = self.connection.command(["sh", "-c", PROBE_ROUND, "sh", *arguments], reads_only=True)
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        command_log.read_only_if_answered(command)
        self._pending = (arguments, self.connection.generation, process, command)
        atexit.register(_abandon, process)  # not left running after envctl when nothing asked for it

    def _collect(self) -> None:
        """Take the answers of the probe round started by start_probe_round, once it ends.
        Thread-safe: `up` makes the workspace while its image step runs (envctl/apply.py)."""
        import subprocess

        with self._collecting:  # held until the answers are taken: no thread reads half of them
            if self._pending is None:
                return
            arguments, generation, process, command = self._pending
            self._pending = None
            try:
                out, _ = process.communicate(timeout=300)  # as long as connection.run waits
            except subprocess.TimeoutExpired:
                _abandon(process)
                return
            command_log.answered(command, None, process.returncode, out, None)
            if process.returncode == 0:
                self.take_probe_round(arguments, out.decode(errors="replace"), generation)
            # else: the probes are asked again by _probe, whose failure is explained (RemoteError)

    def _probe(self) -> None:
        """One probe round, once per object (no-op when the host's opening brought it)."""
        self._collect()
        if not self._probed:
            arguments = probe_arguments(self.root)
            generation = self.connection.generation
            result = self.connection.run(["sh", "-c", PROBE_ROUND, "sh", *arguments], reads_only=True)
            self.take_probe_round(arguments, result.stdout if result.returncode == 0 else "", generation)
            self._probed = True

    def read_text(self, path: str) -> str | None:
        self._probe()
        if path in self._texts:
            return self._texts[path]
        if self._types.get(path) == "n":
            return None
        result = self.connection.run(["cat", "--", path], reads_only=True)
        return result.stdout if result.returncode == 0 else None

    def glob(self, pattern: str) -> list[str]:
        self._probe()
        if pattern in self._globbed:
            return sorted(self._globbed[pattern])
        result = self.connection.run(["sh", "-c", _LIST, "sh", pattern], reads_only=True)
        found = []
        for line in result.stdout.splitlines():
            kind, _, path = line.partition(" ")
            self._types[path] = kind
            found.append(path)
        return sorted(found)

    def is_char_device(self, path: str) -> bool:
        if path not in self._types:
            self.glob(_literal(path))
        return self._types.get(path) == "c"

    def exists(self, path: str) -> bool:
        self._probe()
        if path in self._types:
            return self._types[path] != "n"
        return self.connection.run(["test", "-e", path], reads_only=True).returncode == 0

    def is_dir(self, path: str) -> bool:
        self._probe()
        if path in self._types:
            return self._types[path] == "d"
        return self.connection.run(["test", "-d", path], reads_only=True).returncode == 0

    def which(self, tool: str) -> str | None:
        self._probe()
        candidates = [self.under_root(posixpath.join(d, tool)) for d in TOOL_DIRS]
        if all(c in self._types for c in candidates):
            return next((c for c in candidates if self._types[c] == "x"), None)
        script = 'for p in "$@"; do if [ -f "$p" ] && [ -x "$p" ]; then printf "%s" "$p"; exit 0; fi; done; exit 1'
        result = self.connection.run(["sh", "-c", script, "sh", *candidates], reads_only=True)
        return result.stdout if result.returncode == 0 and result.stdout else None

    def run(self, argv: Sequence[str], timeout: float = 30) -> CommandResult:
        result = self.connection.run(argv, timeout=timeout)
        if result.returncode == 127 and "not found" in result.stderr:
            return CommandResult(127, "", f"{argv[0]}: not found")
        return result


    # -- writes (WritableHost) -------------------------------------------------------------
    @property
    def cache_root(self) -> str:
        return posixpath.join(self.data_dir, "cache")

    @property
    def workspace_root(self) -> str:
        return posixpath.join(self.data_dir, "workspaces")

    @property
    def lock_dir(self) -> str:
        from envctl.paths import cache_dir

        return str(cache_dir() / "locks" / self.name)

    def environ(self) -> dict[str, str]:
        return {"ENVCTL_CACHE": self.cache_root, "ENVCTL_WORKSPACE": self.workspace_root}

    def ask_api_version(self) -> None:
        """Start asking the engine its API version (GET /version, through the socket forwarded
        here, with the standard library: envctl/engine_socket.py), on a daemon thread; engine()
        then builds its client with that version instead of asking it itself: docker-py's
        APIClient asks /version when given none, one round trip before any other request. The
        early opening (envctl/remote/early_open.py) starts it while typer, docker-py and the
        manifest load, for the commands that ask the engine (up, plan). Asked once. Its
        connection is kept open for the plan's first round (engine_socket.keep)."""
        if self._api_version is not None or self._engine is not None:
            return
        from concurrent.futures import Future

        self._api_version = Future()
        try:
            threading.Thread(target=self._ask_api_version, name=f"envctl-api-version-{self.name}", daemon=True).start()
        except RuntimeError:  # no thread to be had: engine()'s client asks, as without this
            self._api_version.set_result(None)

    def ask_ahead(self, targets: Sequence[tuple]) -> None:
        """Send the plan's first engine round (observe_engine.first_round: GETs without an API
        version in their paths, which the engine answers in its own, the one its /version says
        and engine()'s client then uses) on the connection the API version is asked on, right
        behind /version: both are answered in one round trip, not one after the other. The
        plan's first round takes the answers when it asks exactly these in that version
        (observe_engine._Rounds); they are read as it would have read them, only sooner. Once;
        after /version was answered it sends nothing (the plan asks as it would have)."""
        self.ask_api_version()
        with self._ahead_lock:
            if self._ahead is not None:
                return
            self._ahead = list(targets)
            asking = self._asking
            if asking is None:
                return  # not connected yet: sent behind /version; or answered already: not sent
            from envctl.engine_socket import EngineUnanswered

            try:
                asking.send(self._ahead)
                asking.ahead = self._ahead
            except EngineUnanswered:
                pass  # the version's reading fails too: the plan asks on a connection of its own

    def _ask_api_version(self) -> None:
        from envctl.engine_socket import EngineUnanswered, Pipelined, keep

        version = None
        try:
            local = self.connection.forward_socket(self.docker_socket)
            trace("api", self.name, ["GET", "/version"])
            engine = Pipelined(local)
            try:
                with self._ahead_lock:  # the plan's first round, when it is there, goes behind it
                    engine.send([("/version", None)] + (self._ahead or []))
                    engine.ahead = self._ahead
                    self._asking = engine
                try:
                    (status, answer), = engine.read(1)
                finally:
                    with self._ahead_lock:
                        self._asking = None
                        self._ahead = self._ahead if self._ahead is not None else []  # none sent from now on
            except BaseException:
                engine.__exit__(None, None, None)
                raise
            if status == 200 and isinstance(answer, dict):
                version = _valid_api_version(answer.get("ApiVersion"))
                engine.engine_version = version
            # Kept open for the plan's first round (observe_engine._Rounds), with the answers of
            # what was sent ahead of it unread: a new connection through the forward would wait
            # a round trip for its channel first.
            keep(local, engine)
        except EngineUnanswered as exc:
            # Silent for engine_socket.TIMEOUT: engine() says so then, instead of letting
            # docker-py's client ask again and wait its 300 s (an engine that hangs).
            self._engine_silent = exc.timed_out
        # An optimisation: engine() asks through docker-py, whose error says what is wrong. Every
        # exception, KeyboardInterrupt too: after Ctrl-C the forward's ssh dies of the SIGINT and
        # forward_socket's reconnection raises it here (interrupts.check), where Python would
        # print it as a thread's traceback; the main thread raises its own.
        except BaseException:  # noqa: BLE001
            pass
        finally:
            self._api_version.set_result(version)

    def engine(self):
        """The server's engine (envctl.engine.Engine over docker-py), through its socket
        forwarded over the master connection, so docker-py and the docker CLI work unchanged."""
        if self._engine is None:
            from docker.errors import DockerException

            from envctl.engine import Engine
            from envctl.engine_pool import docker_client

            # Asked early (ask_api_version), else now: waited for here, at most the round trip it
            # is in, or engine_socket.TIMEOUT of an engine's silence (docker-py's client would ask
            # /version itself and wait 300 s for an engine that hangs).
            self.ask_api_version()
            version = self._api_version.result()
            local = self.connection.forward_socket(self.docker_socket)
            if self._engine_silent:
                from envctl.engine_socket import TIMEOUT

                self._engine_not_answering(f"no answer to GET /version in {TIMEOUT:g} s")
            try:
                # One connection, one channel, for all requests.
                client = docker_client(f"unix://{local}", timeout=300, version=version)
                if os.environ.get("ENVCTL_SSH_TRACE"):  # each engine request: one round trip through the tunnel
                    client.api.hooks["response"].append(
                        lambda r, *a, **k: trace("api", self.name, [r.request.method, r.request.path_url]))
                # Not pinged to see that it answers: the engine's /version (asked early, or by the
                # client to choose its API version) is the answer a ping would give.
            except (DockerException, OSError) as exc:
                self._engine_not_answering(str(exc))
            if version is not None:
                # The client's connection opens at its first request, a channel the master opens
                # on the server first (one round trip): its own /version's connection was kept for
                # the requests after it (engine_pool.share_one_pool). Without that request, the
                # image step's check or apply's first read would wait for it; opened now instead,
                # beside the plan's rounds (which go on the /version connection). netrc: what
                # requests imports at a session's first request (requests.utils.get_netrc_auth),
                # imported on this thread: two threads importing at once can deadlock.
                import netrc  # noqa: F401

                threading.Thread(target=_open_connection, args=(client,), name=f"envctl-engine-{self.name}",
                                 daemon=True).start()
            self._engine = Engine(client, f"{self.name}:{self.docker_socket}")
            self.forwarded_socket = local
        return self._engine

    def _engine_not_answering(self, why: str):
        """Raise what says that the engine does not answer, or the host does not: a master
        connection outlives its network for a while, and this command may not have reached the
        host yet (its facts were remembered). One command tells them apart, so the error names
        the right one. Raises RemoteError or HostNotReady."""
        reached = self.connection.run(["true"], timeout=60)
        if reached.returncode != 0:
            raise self.connection.explain(reached) from None
        raise HostNotReady(f"{self.name}: the Docker engine at {self.docker_socket} does not answer ({why})",
                           hint=f"check it there: ssh {self.connection.destination} docker info") from None

    def docker_cli_environ(self, base: Mapping[str, str]) -> dict[str, str]:
        """The environment for this machine's docker CLI, pointed at the server's engine."""
        self.engine()
        return {**base, "DOCKER_HOST": f"unix://{self.forwarded_socket}"}

    def engine_socket(self) -> str | None:
        return None  # tarballs go to the server first (image_loader), not through the forwarded socket

    def image_loader(self):
        from envctl.remote.place import load_image_remotely

        return load_image_remotely(self.connection, self.cache_root, self.engine())

    def mkdirs(self, path: str) -> None:
        self._collect()
        if self._types.get(path) == "d" and self._seen.get(path) == self.connection.generation:
            return  # the probe round saw it a directory, and nothing ran there since
        self.connection.check(["mkdir", "-p", "--", path], f"creating {path}")
        self._types[path], self._seen[path] = "d", self.connection.generation
        self._note("dirs", path)

    def make_workspace(self, path: str, mark: str) -> None:
        """As base.WritableHost.make_workspace: no command when the probe round saw the directory
        with this mark in it and nothing ran there since, else one."""
        from envctl.paths import WORKSPACE_MARK

        self._collect()
        marked = posixpath.join(path, WORKSPACE_MARK)
        if self._types.get(path) == "d" and self._seen.get(path) == self.connection.generation \
                and (self._texts.get(marked) or "").strip() == mark:
            return
        self.connection.check(["sh", "-c", _MAKE_WORKSPACE, "sh", path, marked, mark], f"creating {path}")
        self._types[path], self._seen[path] = "d", self.connection.generation
        self._types[marked], self._texts[marked] = "f", f"{mark}\n"
        self._note("dirs", path)

    def write_file(self, path: str, data: bytes) -> None:
        self.connection.check(["sh", "-c", _WRITE, "sh", path], f"writing {path}", input=data)

    def copy_tree(self, source: str, destination: str) -> None:
        self.connection.check(["sh", "-c", _COPY, "sh", source, destination], f"copying {source} to {destination}")

    def newest(self, directory: str, pattern: str) -> str | None:
        name = self.connection.run(["sh", "-c", _NEWEST, "sh", directory, pattern]).stdout.strip()
        return posixpath.join(directory, name) if name else None

    def stream(self, path: str, follow: bool, secrets: frozenset[str] = frozenset(), ended=None) -> int:
        """As base.Host.stream. With `ended` (envctl/follow.py), `tail -f` there is asked to end
        once the run has ended, and what it had not sent yet is read after it with
        `tail -c +OFFSET` (POSIX tail; OFFSET counts from 1): tail -f polls, so its last read
        may come after the run's last write."""
        import subprocess
        import sys

        argv = ["tail", "-n", "+1", "-f", "--", path] if follow else ["cat", "--", path]
        command = self.connection.command(argv)
        if not secrets and ended is None:
            # Streamed straight to our stdout: a log can be large, and -f never ends on its own.
            return subprocess.call(command, stdout=sys.stdout.buffer, stdin=subprocess.DEVNULL)
        from envctl.masking import StreamMask

        # Through the mask, chunk by chunk as it arrives (a secret split between two is masked whole).
        masker, out = StreamMask(secrets), sys.stdout.buffer
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        sent = 0  # bytes of the file printed so far (tail -n +1 starts at its first byte)
        try:
            while True:
                chunk = _read_or_wait(child.stdout, 0.5)
                if chunk == b"":
                    break  # tail ended (the file went away, the connection closed, or cat is done)
                if chunk is not None:
                    sent += len(chunk)
                    out.write(masker.feed(chunk))
                    out.flush()
                elif ended is not None and follow and ended():
                    child.kill()
                    child.wait()
                    rest = subprocess.run(self.connection.command(["tail", "-c", f"+{sent + 1}", "--", path]),
                                          stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, check=False)
                    out.write(masker.feed(rest.stdout))  # bytes as written, not decoded
                    out.write(masker.flush())
                    out.flush()
                    return rest.returncode  # tail -f was ended here: its status says nothing
            out.write(masker.flush())
            out.flush()
            return child.wait()
        finally:
            if child.poll() is None:  # interrupted (logs -f ends with Ctrl-C): tail is not left behind
                child.kill()
                child.wait()

    def free_bytes(self, path: str) -> int:
        out = self.connection.check(["sh", "-c", _FREE, "sh", str(path)], "measuring free space")
        return int(out.strip() or 0) * 1024  # df -P reports 1024-byte blocks

    def remove_tree(self, path: str) -> None:
        self.connection.check(["rm", "-rf", "--", path], f"deleting {path}")

    def log_writer(self, path: str):
        """An entrypoint's output appended to `path` there as it arrives (the log lives beside
        the environment, as on this machine)."""
        from envctl.remote.target import RemoteLog

        return RemoteLog(self.connection, path)

    def has_blob(self, sha256: str) -> bool:
        return self.connection.run(["test", "-f", self._blob(sha256)]).returncode == 0

    def put_blob(self, sha256: str, local: Path, advance=None) -> str:
        from envctl.remote.transfer import push_file

        return push_file(self.connection, local, self._blob(sha256), sha256, advance)

    def download(self, url: str, display: str, sha256: str | None, headers: dict | None = None,
                 auth: tuple | None = None) -> str:
        from envctl.remote.transfer import download_remotely

        return download_remotely(self.connection, url, display, posixpath.join(self.cache_root, "blobs", "sha256"), sha256,
                                 headers=headers, auth=auth)

    def artifact_record(self, cache_path: str, fresh: bool = False) -> dict | None:
        """The record, when every file it lists is there with its size (one round trip: the
        record, then `SIZE PATH` of each file under the entry; find and stat as coreutils and
        busybox have them). A file deleted or truncated on the host makes the entry incomplete."""
        self._collect()
        kept = self._records.get(cache_path)
        if fresh or kept is None or kept[0] != self.connection.generation:  # else nothing ran there since it was read
            kept = (self.connection.generation, self._read_record(cache_path))
            self._records[cache_path] = kept
        self._note("records", cache_path)
        return copy.deepcopy(kept[1])  # the caller's to change

    def known_complete(self, cache_path: str) -> bool:
        """Whether the artifact entry at `cache_path` was complete when this host last read it
        (the probe round, an artifact_record), with nothing run there since; False when it was
        not read. Asks nothing of the host (it waits for a probe round under way to end)."""
        self._collect()
        kept = self._records.get(cache_path)
        return kept is not None and kept[0] == self.connection.generation and kept[1] is not None

    def container_hint(self, name: str) -> str | None:
        """The ID the environment's container `name` had when a command on this master last saw
        it (note_container), or None: a guess, which the plan's engine round checks against the
        engine's list before taking anything asked by it (observe_engine.view). Kept in a file of
        its own per environment beside the master, not in the master's facts note: every full
        `exec` and `up` reads that note and their quick paths' records hold its bytes (a container
        made again by `up` must leave an `exec` record of it standing: envctl/quick_exec.py
        listing_facts), and one environment's ID must not touch another's record."""
        try:
            with open(self._container_id_path(name), encoding="ascii") as noted:
                ident = noted.read(100).strip()
        except (OSError, ValueError):
            return None
        return ident if re.fullmatch(r"[0-9a-f]{64}", ident) else None

    def note_container(self, name: str, container_id: str | None) -> None:
        """Keep the ID of the environment's container `name` beside the master (None: there is
        none), for the next command's plan (container_hint). Written whole or not at all."""
        if self.container_hint(name) == container_id:
            return
        path = Path(self._container_id_path(name))
        try:
            if container_id is None:
                path.unlink(missing_ok=True)
            else:
                from envctl.atomic import write_text_atomic

                write_text_atomic(path, container_id + "\n", mode=0o600)
        except OSError:
            pass  # only a round trip saved next time

    def _container_id_path(self, name: str) -> str:
        import hashlib

        # Named by a digest: a manifest's container.name is whatever the manifest says.
        return f"{self.connection.control_path}.container-{hashlib.sha256(name.encode()).hexdigest()[:16]}"

    def _note(self, kind: str, path: str) -> None:
        """Keep `path` in the note beside the master under `kind` ("records": artifact entries
        whose record was asked; "dirs": directories made), newest first: the next command on
        this master asks about them in its probe round (target.open_host)."""
        with self._noting:  # `up` makes the workspace in a thread of its own (envctl/apply.py prepare)
            if self.note is not None and path not in self.note.setdefault(kind, []):
                self.note[kind] = [path, *self.note[kind]][:RECORDS_NOTED]
                self.connection.remember(json.dumps(self.note))

    def _read_record(self, cache_path: str) -> dict | None:
        current = self.connection.run(["sh", "-c", _RECORD_AND_SIZES, "sh", cache_path], reads_only=True)
        return _parse_record(cache_path, current.stdout) if current.returncode == 0 else None

    def _blob(self, sha256: str) -> str:
        return posixpath.join(self.cache_root, "blobs", "sha256", sha256)


RECORDS_NOTED = 32  # artifact entries the note beside a master remembers, newest first

_SIZES_MARK = "\n--envctl-sizes--\n"
_RECORD_AND_SIZES = ('test -e "$1" && cat -- "$1.json" && printf "\\n--envctl-sizes--\\n" && '
                     'find "$1" -type f -exec stat -c "%s %n" {} +')


def _open_connection(client) -> None:
    """Open docker-py's pooled connection to the engine with a ping (GET /_ping), on a daemon
    thread. Nothing is raised: a failure is the next request's to meet and say."""
    try:
        client.api.ping()
    except BaseException:  # noqa: BLE001  (Ctrl-C included: the main thread says the interruption)
        pass


def _valid_api_version(text) -> str | None:
    """The engine's ApiVersion ("1.41": Engine API reference, SystemVersion) when it is one."""
    return text if isinstance(text, str) and re.fullmatch(r"[0-9]+\.[0-9]+", text) else None


def _parse_record(cache_path: str, output: str) -> dict | None:
    """The record in `output` of _RECORD_AND_SIZES, when every file it lists is there with its
    size; else None."""
    from envctl.artifacts.cache import intact

    if _SIZES_MARK not in output:
        return None
    text, listing = output.split(_SIZES_MARK, 1)
    try:
        record = json.loads(text)
    except ValueError:
        return None
    sizes = {}
    for line in listing.splitlines():
        size, _, path = line.partition(" ")
        if size.isdigit() and (path == cache_path or path.startswith(cache_path + "/")):
            sizes[path[len(cache_path) + 1:]] = int(size)
    return record if isinstance(record, dict) and intact(record, sizes) else None


def _abandon(process) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


def probe_arguments(root: str, records: Sequence[str] = (), dirs: Sequence[str] = ()) -> list[str]:
    """The arguments of PROBE_ROUND (after `sh -c PROBE_ROUND sh`) for every device question a
    plan may ask of a host whose probes look under `root`: <root>/dev, each family's driver files
    (their text), the files the families mount when present, and where their vendor tools are;
    then the records of the artifact entries `records` (paths in the host's cache); `dirs`:
    more paths whose type is wanted (directories an earlier command made), and the text of the
    workspace mark in each."""
    from envctl.devices import FAMILIES
    from envctl.devices.cuda import DRIVER_VERSION_FILE
    from envctl.devices.mlu import DRIVER_INFO_GLOB
    from envctl.devices.npu import VERSION_INFO
    from envctl.devices.usage import TOOLS
    from envctl.paths import WORKSPACE_MARK

    def under(path: str) -> str:
        return path if root in ("", "/") else posixpath.join(root, path.lstrip("/"))

    listed = [under("/dev/*")]
    with_text = [under(DRIVER_INFO_GLOB)]
    tools = sorted({"cnmon", "npu-smi", "nvidia-smi", *(argv[0] for argv in TOOLS.values())})
    paths = sorted({under(p) for f in FAMILIES.values() for p in f.mount_candidates}
                   | {under(posixpath.join(d, tool)) for tool in tools for d in TOOL_DIRS} | set(dirs))
    # The mark in each directory noted: a workspace's (observe.read_mark), absent in the others.
    texts = [under(DRIVER_VERSION_FILE), under(VERSION_INFO), *(posixpath.join(d, WORKSPACE_MARK) for d in dirs)]
    counts = [len(listed), len(with_text), len(paths), len(texts)]
    return [*map(str, counts), *listed, *with_text, *paths, *texts, *records]


def _literal(path: str) -> str:
    """A glob pattern that matches exactly `path` (its special characters bracketed)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in path)


def _read_or_wait(pipe, seconds: float) -> bytes | None:
    """What `pipe` has (b"" at its end), or None when nothing came within `seconds`."""
    import select

    ready, _, _ = select.select([pipe], [], [], seconds)
    return pipe.read1(65536) if ready else None
