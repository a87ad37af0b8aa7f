"""The host's half of the quick `up NAME --host H` (envctl/quick_up.py answers it): whether the
SSH host still answers what it answered the full `up` whose plan was a no-op.

The record (envctl/quick_up_record.py) holds, under "remote": the host's SSH destination and ssh
config as the full path resolved them, envctl's control directory, the local socket at which the
host's engine was forwarded, and every command the full `up` ran there (each only reads the host:
the probe round, an artifact's cache record and sizes), as its local ssh argv with the sha256 of
what it printed and its exit code (envctl/remote/command_log.py).

`same_host` asks again, all at once:

- nothing new is connected to: only a live master connection that an earlier envctl left and
  the engine's socket forwarded over it (envctl/remote/live_master.py, as `status --host`'s
  quick path; the master was opened with every hop's host key checked), at the very paths the
  full `up` used;
- each recorded command, run again with its recorded argv through that master (a channel each,
  concurrently): the same exit code and the same bytes on stdout (and stderr where the full
  path read it), so every file, device node and cache record the plan read there is as it was.
  Only commands of the shape envctl builds, through that master, are run (`through`: a record
  of several hosts' commands, or one altered, answers for no host), each with a ProxyCommand
  that fails given first (NO_NEW_CONNECTION): should the master end meanwhile, ssh cannot
  connect by itself;
- the engine, in one pipelined round through the forward (engine_socket.Pipelined): the
  container's inspection, the image ref's and the baked images' list, compared as the local
  quick path compares them (quick_up.engine_agrees).

At 50 ms that is about two round trips instead of the full path's two ssh commands and ten
engine requests one after another, and none of typer, pydantic or docker-py is imported.

What it relies on beyond the local quick path's reliances (quick_up's docstring): the ssh
configuration is not read here beyond the bytes naming the master (the record holds the bytes
of the config file and of /etc/ssh/ssh_config; the master's name, the bytes of every file ssh
reads, Includes too: envctl/remote/ssh_config_files.py); while the master lives, the full
path's commands go through it too (both name it alike), so both reach the host it verified,
and an edited config names another master, which the full path opens. A master that ended (ControlPersist) or a
forward that went away sends the command to the full path, which opens them again.
"""

from __future__ import annotations

import os
import subprocess
from typing import Mapping

# Seconds the engine's forward may stay silent (quick_status_remote.SILENCE) and each host command
# may take: a host that hangs costs the quick path about this much, then the full path takes over
# and says what is wrong.
SILENCE = 2.0
NO_NEW_CONNECTION = "ProxyCommand=exec false"


def same_host(record: dict, environ: Mapping[str, str]) -> bool:
    """Whether the host of `record["remote"]` still answers as recorded (see the module's
    docstring). False for anything else, never raising for a record or a host not as expected."""
    from envctl.engine_socket import EngineUnanswered, Pipelined
    from envctl.interrupts import deferred
    from envctl.quick_up import engine_agrees, engine_targets

    remote = record["remote"]
    master = live_master(remote, environ)
    commands = remote["commands"]
    if master is None or not all(through(command["argv"], master, remote) for command in commands):
        return False
    trace = tracer(environ)
    asked: list[tuple[subprocess.Popen, dict]] = []
    try:
        with deferred():
            replay(commands, remote["destination"], trace, asked)
        try:
            with Pipelined(remote["forward"], lambda target: trace("api", remote["destination"], [f"GET {target}"]),
                           silence=SILENCE) as engine:
                answers = engine.get(engine_targets(record))
        except EngineUnanswered:
            return False
        return engine_agrees(record, answers) and replays_agree(asked)
    except OSError:
        return False  # no ssh to start: the full path says so
    finally:
        end([process for process, _command in asked])


def live_master(remote: dict, environ: Mapping[str, str]) -> str | None:
    """The control path of the master connection to `remote["destination"]` (with
    `remote["config"]`) when it is live in the recorded control directory and forwards the
    engine's socket at the recorded path; else None (nothing is connected to)."""
    from envctl.remote.live_master import control_directory, control_name, forwarded_engine

    directory = control_directory(environ)
    if directory is None or directory != remote["control_dir"]:
        return None
    if forwarded_engine(remote["destination"], remote["config"], directory) != remote["forward"]:
        return None
    return os.path.join(directory, control_name(remote["destination"], remote["config"]))


def replay(commands: list[dict], destination: str, trace, asked: list) -> None:
    """Each recorded command started again, with its recorded argv (checked by `through`), all
    at once: (process, command) appended to `asked` as each starts. Call inside
    interrupts.deferred, and `end` them."""
    for command in commands:
        argv = command["argv"]
        trace("session", destination, argv[-4:])
        stderr = subprocess.PIPE if command["stderr"] is not None else subprocess.DEVNULL
        asked.append((subprocess.Popen(without_new_connection(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=stderr), command))


def without_new_connection(argv: list[str]) -> list[str]:
    """A recorded argv that goes through the live master only: should the master end meanwhile
    (ControlPersist), ssh would connect by itself, with the route of the record; a ProxyCommand
    that fails, given first (ssh keeps the first value, and it beats a ProxyJump), makes that
    impossible."""
    return [argv[0], "-o", NO_NEW_CONNECTION, *argv[1:]]


def replays_agree(asked: list[tuple[subprocess.Popen, dict]]) -> bool:
    """Whether every replayed command answered as recorded (waiting at most SILENCE for each)."""
    return all(_same_answer(process, command) for process, command in asked)


def end(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def through(argv, master: str, remote: dict) -> bool:
    """Whether `argv` (a recorded command) is one SSHConnection.command builds (envctl/remote/
    ssh.py) to run on `destination` through the master at `master`, the one found live: `ssh`,
    then only `-F CONFIG` (the recorded config) and `-o OPTION` pairs, the first ControlPath
    that master's, then -T or -t, the destination, `--` and the command line. A command of
    another host (a record of `up --host GROUP` holding several hosts' commands) or any other
    shape (no -E log file, no other config) answers for no host."""
    destination, config = remote["destination"], remote["config"]
    if not (isinstance(argv, list) and len(argv) >= 5 and all(isinstance(word, str) for word in argv)):
        return False
    if argv[0] != "ssh" or argv[-4] not in ("-T", "-t") or argv[-3] != destination or argv[-2] != "--":
        return False
    options = argv[1:-4]
    if len(options) % 2:
        return False
    control_paths = []
    for flag, value in zip(options[::2], options[1::2]):
        if flag == "-F" and value == config:
            continue
        if flag != "-o":
            return False
        if value.lower().startswith("controlpath="):
            control_paths.append(value)
    return control_paths[:1] == [f"ControlPath={master}"]


def _same_answer(process: subprocess.Popen, command: dict) -> bool:
    from envctl.remote.command_log import digest

    try:
        out, err = process.communicate(timeout=SILENCE)
    except subprocess.TimeoutExpired:
        return False
    return (process.returncode == command["returncode"] and digest(out) == command["stdout"]
            and (command["stderr"] is None or digest(err) == command["stderr"]))


def tracer(environ: Mapping[str, str]):
    """With ENVCTL_SSH_TRACE=FILE, the lines envctl/remote/ssh.py trace appends for each ssh
    command ("session") and engine request ("api"): bench/bench_remote.py counts them."""
    from envctl.remote.trace_file import append

    path = environ.get("ENVCTL_SSH_TRACE")

    def trace(kind: str, destination: str, what: list[str]) -> None:
        if path:
            append(path, kind, destination, what)

    return trace
