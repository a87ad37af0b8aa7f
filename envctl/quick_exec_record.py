"""Writing the record of `exec ENTRY --host H` that envctl/quick_exec.py starts the next such
run from (see its docstring for what the record holds and what invalidates it).

The full `exec ENTRY --host H` (exactly that form) starts an ExecRecording before it opens the
host: from then on every file the command opens for reading is fingerprinted as it is first
opened, what it prints on stderr is kept, and the ssh commands it runs are logged
(envctl/quick_up_record.py's Recording, the same audit hook and command log as `up`'s record).
Just before the entrypoint starts, `note` takes what the run was resolved from and to; once
the run went through the host's own docker CLI (execute.run_on_host), `finish` writes the record.
Writing it is an optimisation: any failure leaves no record and changes nothing of the run.

Not recorded either: a run resolved from a manifest that interpolates a variable the record's key
leaves out (quick_up.SHELL_ONLY: SSH_CONNECTION, SHLVL, ...), whose next value would resolve
another run.

Never stored: a value passed at run time (container.pass_env, the env files: read again by the
quick path from the environment and the files, as the full path reads them), a run whose output
is masked (a passed credential), and any record in which a value of a variable that looks like a
credential (interpolate.looks_secret) or of the host's inventory variables appears: anywhere in
its text (the run, the listing's labels, where a --var value shows, what it printed, the host
commands), all but the fingerprints.
"""

from __future__ import annotations

import json
import os
import re
from urllib.parse import urlsplit

from envctl import quick_up, quick_up_record
from envctl.quick_exec import FORMAT, listing_facts, stdin_is_a_terminal


class ExecRecording(quick_up_record.Recording):
    """One `exec ENTRY --host H` being watched for a record."""

    record: dict | None = None

    def note_run(self, host, listing, chosen, invocation, entry_env, passed, loaded) -> None:
        """Before the run starts: what the record holds, when this run is one the quick path may
        start (else nothing). `listing`: (container summaries, manifests with baked images) as
        the command read them; `chosen`: the environment; `invocation`: the run resolved;
        `entry_env`: the entrypoint's own variables (its env with --set), which win over
        `passed`, its run-time environment (envctl.runtime_env.RuntimeEnv); `loaded`: the
        environment's manifest."""
        try:
            self.record = _record(self, host, listing, chosen, invocation, entry_env, passed, loaded)
        except Exception:  # noqa: BLE001  (a record is an optimisation: never a reason for exec to fail)
            self.record = None
        self.stop()  # all it needs is taken: nothing the run opens or prints is watched

    def finish(self, code: int | None) -> None:
        """The run ended (`code`: its exit code; None: it did not go through the host's docker
        CLI, so no record): write the record when there is one."""
        self.stop()
        if code is None or self.record is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            from envctl.atomic import write_text_atomic

            # This user's alone, as up's record (quick_up.read_record reads no other).
            write_text_atomic(self.path, json.dumps(self.record, indent=1, sort_keys=True), mode=0o600)
        except Exception:  # noqa: BLE001  (as in note_run)
            self.path.unlink(missing_ok=True)


def start(args: list[str]) -> ExecRecording | None:
    return ExecRecording.start(args)


def _record(recording: ExecRecording, host, listing, chosen, invocation, entry_env, passed, loaded) -> dict | None:
    from envctl.execute import runs_on_host
    from envctl.manifest.interpolate import looks_secret
    from envctl.remote import command_log

    if invocation.tty or invocation.masked or not runs_on_host(invocation) or listing is None:
        return None
    secrets = [value for name, value in os.environ.items() if value and looks_secret(name)]
    secrets += [value for value in getattr(host, "env", {}).values() if isinstance(value, str) and value]
    remote = quick_up_record._remote(host, forward=host.connection.forward_socket(host.docker_socket))
    sessions = command_log.sessions()
    reads = quick_up_record._host_reads([])  # credentials: the whole record is searched below
    if remote is None or len(sessions) != 1 or reads is None:
        return None
    names = [p.name for p in passed.passed if p.name not in passed.mirrors]
    own = getattr(loaded.manifest.container, "env_file", None)
    env_file = os.path.abspath(loaded.file.parent / own) if own else None
    mirror = {name: passed.values[name] for name in passed.mirrors if name in passed.values}
    if any(urlsplit(url).username is not None or urlsplit(url).query for url in mirror.values()):
        return None  # a private mirror's credentials or a signed URL: never stored
    run = {"container": invocation.container, "argv": list(invocation.argv), "env": dict(entry_env),
           "workdir": invocation.workdir, "workspace": chosen.workspace, "entrypoint": invocation.name,
           "host": host.name}
    if {**passed.values, **entry_env} != invocation.env:
        return None  # not the run the quick path would make from these
    if quick_up_record.reads_unkeyed_variables(loaded):
        return None  # the manifest read a variable the key leaves out (SSH_CONNECTION): its next value is another run
    opened, _written = recording.stop()
    candidates = quick_up_record._candidates(loaded, recording.environ, remote=True)
    files = quick_up_record._read_files(opened, candidates)
    if files is None:
        return None
    record = {"format": FORMAT, "key": recording.key,
              "remote": {**remote, "commands": reads, "session": list(sessions[0]), "docker_socket": host.docker_socket},
              "listing": listing_facts(*listing), "files": files,
              "stats": {env_file: quick_up.stat_print(env_file)} if env_file else {},
              # The profiles by the directory each was found in: one of the same name appearing in
              # a directory searched before it is the profile the full path loads (its bytes are
              # no file this record fingerprints).
              "manifest": str(loaded.file),
              "profiles": quick_up_record._profiles(files, str(loaded.file), recording.environ),
              "run": run, "passed": {"names": names, "env_file": env_file, "mirror": mirror},
              "stdin_tty": stdin_is_a_terminal(),
              "stderr": "".join(recording._stderr.kept)}
    if any(_holds(text, secret) for secret in secrets for text in _texts(record)):
        return None  # e.g. a --var holding a credential: the listing's labels (io.envctl.vars) show it
    return record


_DIGEST = re.compile(r"(sha256:)?[0-9a-f]{32,}")


def _holds(text: str, secret: str) -> bool:
    """Whether `secret` shows in `text`: anywhere in it, but in an ID or hash (the listing's
    config hashes, image IDs) only as the whole of it: a short value ("8", an inventory
    variable) would otherwise be found in one by chance, and no such host recorded."""
    return text == secret or (secret in text and not _DIGEST.fullmatch(text))


def _texts(record: dict) -> list[str]:
    """Every text the record holds but the fingerprints and its key (sha256 hex and stat numbers:
    what a file or a command's output held is not in them): what no credential may be found in."""
    found: list[str] = []

    def walk(value) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key)
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk({key: value for key, value in record.items() if key not in ("key", "files", "stats", "remote")})
    walk(list(record["files"]) + list(record["stats"]))  # their paths
    remote = record["remote"]
    walk([value for key, value in remote.items() if key != "commands"])
    walk([command["argv"] for command in remote["commands"]])
    return found
