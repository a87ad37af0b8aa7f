"""`envctl exec ENTRY --host H` started from a record of the same command's resolution, before
typer, pydantic and docker-py are imported, when everything it was resolved from still holds.

The full `exec` reads the host's environments (the engine's container list and its baked
images), loads the environment's manifest, plans it (the host's probe round) and resolves the
entrypoint to a run: container, argv, variables, working directory, log. Resolving costs about
half a second of Python on every run (the manifest model alone is ~0.3 s of imports); the run
itself one command through the master connection. The first full `exec ENTRY --host H` (exactly
that form: -H and --hosts too, one host, no other option) that ran through the host's own docker
CLI writes a record (envctl/quick_exec_record.py) under the quick records' directory
(quick_up.record_dir, 0600, read only when this user's alone: quick_up.read_record), named by
quick_up.record_key: envctl's version, the arguments, the working directory, the terminals, the
user and every environment variable.

`answer` checks, all at once through what the full path left running (as the quick `up --host`
does, envctl/quick_up_remote.py: nothing new is connected to):

- the bytes of every file the full path opened to read while resolving (the manifest, its
  profiles and lock file, the user configuration, the inventory), of the files whose absence
  counted, and the manifest's container.env_file (content and stat: a warning names its mode);
  each profile still found where it was read (none of its name in a directory searched before);
- the engine's answer to the same listing, through the forwarded socket, in one pipelined round
  (listing_targets: every environment's names, state, labels and mounts; the manifests with
  baked images): the same container chosen, created from the same manifest, vars, cards and
  image, with the same workspace (the same container or one made again so: listing_facts);
- every command the full path ran on the host to plan (the probe round), replayed through the
  live master: the same exit code and output.

Meanwhile the run's own command is started through the master (the recorded argv of
execute.HostSession); it waits for its arguments, which are sent only when every check agreed,
and it is ended unused otherwise (the full path then runs, as if this were not here). What is
started from the record is what the full path would run: the recorded container, argv, the
entrypoint's variables, working directory and the log under the recorded workspace (named for
now), with the variables passed at run time (container.pass_env, valued again here from the
environment and the manifest's env file, as envctl/runtime_env.py resolves them: never stored)
and the pip mirror, and the warnings the full path printed before the run, printed again (before
the run's first output: a host whose docker CLI went away runs nothing here, and says nothing).

Not answered here: a run with a terminal, a run whose output is masked (a passed credential), a
host without a docker CLI (the run takes the forwarded socket there): no record is written for
them. What it relies on beyond up's quick path (quick_up.py, quick_up_remote.py): the plan of a
running environment reads the engine only through the listing (envctl/cli_lifecycle.py
_plan_for) and the host through the recorded commands.
"""

from __future__ import annotations

import errno
import importlib
import json
import shlex
import subprocess
import sys
import tempfile
import threading
from typing import Mapping

# Of the record file; another value is not read (1: without its key and the profiles'
# directories; 2: its listing with the containers' IDs).
FORMAT = 3
HOST_OPTIONS = ("--host", "--hosts", "-H")  # envctl/cli_remote.py host_option
# envctl/containers.py LABEL_MANIFEST, LABEL_BAKED_FOR (its import costs more than this path's checks)
LABEL_MANIFEST = "io.envctl.manifest"
LABEL_BAKED_FOR = "io.envctl.baked-for"


def answered_form(args: list[str]) -> bool:
    """Whether `args` (after `envctl`) is `exec ENTRY --host H` (also --hosts, -H) with one word
    naming the host and no other option: the one form recorded and answered here."""
    def word(text: str) -> bool:
        return bool(text) and not text.startswith("-")

    return (len(args) == 4 and args[0] == "exec" and word(args[1]) and args[2] in HOST_OPTIONS
            and word(args[3]) and "," not in args[3])


def stdin_is_a_terminal() -> bool:
    """The one terminal the record's key (quick_up.record_key: stdout and stderr) leaves out and
    exec reads (an interactive entrypoint runs with a terminal when stdin and stdout are one)."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def listing_targets() -> list[tuple[str, dict]]:
    """The engine requests of the full path's listing (envctl/cli_lifecycle.py _listing): every
    environment's container, the images baked for a manifest."""
    from envctl.engine_socket import filters

    return [("/containers/json", {"all": "1", "filters": filters(label=[LABEL_MANIFEST])}),
            ("/images/json", {"filters": filters(label=[LABEL_BAKED_FOR])})]


def listing_read(answers: list) -> tuple[list, frozenset] | None:
    """The Pipelined answers to listing_targets as (container summaries, manifests with baked
    images); None when either is not a 200 with a JSON list."""
    if any(status != 200 or not isinstance(found, list) for status, found in answers):
        return None
    (_, summaries), (_, images) = answers
    return summaries, frozenset((image.get("Labels") or {}).get(LABEL_BAKED_FOR) for image in images
                                if isinstance(image, dict))


def listing_facts(summaries: list, baked_for) -> dict:
    """What of the listing the run was resolved from (envctl/environments.py choose_listed reads
    names, states, labels and mounts; the plan the manifests with baked images); not the
    summaries' "Status" ("Up 5 minutes"), which changes by itself, nor the order of the mounts,
    which the engine lists from a Go map (in another order from one request to the next).

    Nor the containers' IDs: the run names its container (execute.Invocation.container), and
    choosing reads an ID only for a container without a name, which the engine never lists. A
    container made again from the same manifest, vars, cards and image (`down` then `up`, a
    fresh host brought up again: its labels say all four) with the same mounts resolves the same
    run, which the quick path then starts; the host's own state the plan read is the recorded
    commands' to answer for."""
    def mounts(summary: dict) -> list:
        return sorted((summary.get("Mounts") or []), key=lambda mount: json.dumps(mount, sort_keys=True))

    return {"containers": sorted(([summary.get("Names"), summary.get("State"),
                                   summary.get("Labels"), mounts(summary)] for summary in summaries),
                                 key=lambda facts: json.dumps(facts, sort_keys=True)),
            "baked_for": sorted(str(name) for name in baked_for)}


def answer(args: list[str], environ: Mapping[str, str]) -> int | None:
    """The exit code of `envctl exec ENTRY --host H`, having run it from a record that still holds;
    None, having run nothing: the full path runs it. Never raises for a record or a world not as
    expected."""
    from envctl import quick_up

    if not answered_form(args):
        return None
    try:
        key = quick_up.record_key(args, environ)
        record = quick_up.read_record(quick_up.record_dir(environ) / f"{key}.json")
        # The key inside too: a record renamed to another command's name (a directory's writer
        # may rename what it cannot write) answers for no other command.
        if (not isinstance(record, dict) or record.get("format") != FORMAT or record.get("key") != key
                or not quick_up._same_files(record) or not quick_up.same_profiles(record, environ)):
            return None
        if record["stdin_tty"] is not stdin_is_a_terminal():
            return None  # an interactive entrypoint gets a terminal when stdin and stdout are both one
        started = _Started(record, environ)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # no record, or not one this code wrote whole: the full path
    return started.run()


class _Started:
    """The run's command started through the live master beside the checks; handed its run
    when they all agree, else ended unused."""

    def __init__(self, record: dict, environ: Mapping[str, str]):
        self.record, self.environ = record, environ
        self.remote = record["remote"]

    def run(self) -> int | None:
        """The run's exit code; None, having run nothing, when a check disagrees. Raises only what
        the run itself raises once started (as the full path's run would: envctl/cli.py)."""
        from envctl.errors import EnvctlError
        from envctl.interrupts import deferred
        from envctl.quick_up_remote import end, live_master, replay, through, tracer

        remote = self.remote
        trace = tracer(self.environ)
        asked: list = []
        errors = tempfile.TemporaryFile()
        session = None
        try:
            try:
                master = live_master(remote, self.environ)
                if master is None or not all(through(argv, master, remote) for argv in
                                             [remote["session"], *(command["argv"] for command in remote["commands"])]):
                    return None
                with deferred():
                    trace("session", remote["destination"], remote["session"][-4:])
                    session = _start(remote["session"], errors)
                    replay(remote["commands"], remote["destination"], trace, asked)
                # The run's modules load while the engine and the host answer (the wait on a
                # socket leaves the interpreter to the loading thread).
                loading = threading.Thread(target=importlib.import_module, args=("envctl.execute",), daemon=True)
                loading.start()
                invocation = self._checked(asked, trace, loading)
            except (OSError, ValueError, KeyError, TypeError, AttributeError, EnvctlError):
                # No ssh to start, an answer or an env file not as recorded: the full path.
                invocation = None
            if invocation is None:
                return None
            # From here on the run is this command's answer, whatever happens to it.
            from envctl import execute

            # The full path's warnings, said before the run's first output (on stdout or stderr)
            # or its end: should the host have no docker CLI now, nothing ran, nothing is said,
            # and the full path (which says them) takes the forwarded socket.
            warnings = [self.record["stderr"]]

            def warn() -> None:
                if warnings:
                    sys.stderr.write(warnings.pop())
                    sys.stderr.flush()

            try:
                code = execute.run_in_session(invocation, session, errors, remote["docker_socket"], self._run_there,
                                              before_output=warn)
            except BaseException:
                warn()  # the run began: the full path had said them
                raise
            if code is None:
                return None  # the host's docker CLI is gone (nothing ran): the full path takes the forwarded socket
            warn()
            if invocation.log_file is not None:
                sys.stderr.write(f"log: {invocation.log_file} on {self.record['run']['host']}\n")
            return code
        except OSError as error:
            if error.errno != errno.EPIPE:
                raise
            # The reader went away (`| head`): what the full path's click does (core.Command.main),
            # exit 1 and nothing more said, the exit's own flush of the streams quiet too.
            sys.stdout, sys.stderr = _QuietFlush(sys.stdout), _QuietFlush(sys.stderr)
            return 1
        finally:
            end([process for process, _command in asked] + ([session] if session is not None else []))
            errors.close()

    def _checked(self, asked: list, trace, loading: threading.Thread):
        """The run to start when the listing and the replayed commands agree with the record;
        else None. `loading`: the thread importing the run's modules, waited for before the run
        is made."""
        from envctl.engine_socket import EngineUnanswered, Pipelined
        from envctl.quick_up_remote import SILENCE, replays_agree

        remote = self.remote
        try:
            with Pipelined(remote["forward"], lambda target: trace("api", remote["destination"], [f"GET {target}"]),
                           silence=SILENCE) as engine:
                answers = engine.get(listing_targets())
        except EngineUnanswered:
            return None
        listing = listing_read(answers)
        if listing is None or listing_facts(*listing) != self.record["listing"] or not replays_agree(asked):
            return None
        loading.join()
        return self._invocation()

    def _invocation(self):
        from pathlib import Path

        from envctl import execute, runtime_env

        run, passed = self.record["run"], self.record["passed"]
        values: dict = {}
        if passed["names"]:
            optional = [passed["env_file"]] if passed["env_file"] else []
            values = dict(runtime_env.resolve(passed["names"], (), self.environ, optional).values)
        values.update(passed["mirror"])
        log_file = execute.log_path(Path(run["workspace"]), run["entrypoint"]) if run["workspace"] else None
        return execute.Invocation(run["container"], tuple(run["argv"]), {**values, **run["env"]}, run["workdir"],
                                  False, log_file, run["entrypoint"])

    def _run_there(self, argv: list[str]) -> None:
        """`argv` run on the host through the master (Ctrl-C forwarded into the run)."""
        from envctl.quick_up_remote import without_new_connection

        command = without_new_connection([*self.remote["session"][:-1], shlex.join(argv)])
        try:
            subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            pass  # as the full path's: the run goes on, and says so by its end


class _QuietFlush:
    """A stream whose flush says nothing of a reader gone (EPIPE): the interpreter flushes
    stdout and stderr as it exits (click's _PacifyFlushWrapper, for the same end)."""

    def __init__(self, target):
        self._target = target

    def flush(self) -> None:
        try:
            self._target.flush()
        except OSError as error:
            if error.errno != errno.EPIPE:
                raise

    def __getattr__(self, name: str):
        return getattr(self._target, name)


def _start(argv: list[str], errors) -> subprocess.Popen:
    """The run's command (execute.ON_HOST), through the live master only; a session of its own:
    Ctrl-C reaches envctl alone, which forwards it into the container (execute._stream)."""
    from envctl.quick_up_remote import without_new_connection

    return subprocess.Popen(without_new_connection(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                            start_new_session=True)
