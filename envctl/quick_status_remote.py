"""`envctl status --host NAME` answered without typer, pydantic, docker-py or ssh, or not at all.

`answer(args, environ)` prints what the full `status --host NAME` prints (envctl/cli_runs.py
status: each row after the host's name) when one host is named and it can be decided quickly,
else returns None and the full path runs, unchanged:

- the arguments: `--host/--hosts/-H NAME` (repeated, comma lists, groups, ranges: whatever names
  exactly one host), `--ssh-config PATH`, `--inventory PATH`, each also as `--option=VALUE`;
  any other option or argument, a value starting with `-` and an option given twice are left
  to the full path;
- the host: the inventory read by envctl/remote/inventory.py itself (the full path's reading and
  selection, so the same host and destination), without a problem or a warning;
- the engine: reached only through what an earlier envctl left running, a live master and the
  engine's socket forwarded over it (envctl/remote/live_master.py); no ssh is started and no
  new connection is made anywhere;
- the environments: decided from the engine's answers exactly as `status` decides them
  (envctl/quick_status.py: no work running in any of them, else the full path).

Engine requests, on one connection to the forwarded socket: the list, then the inspection of
every listed container and `docker top` of each the list says is running, all sent at once
(HTTP/1.1 pipelining: the engine, Go's net/http, answers them in order on the connection).
Each request through the forward costs a round trip to the host, so this is two of them plus
the forward's channel opening, whatever the number of environments; the full path makes one
request after another (the API version, the list, then each inspection and `docker top`).
"""

from __future__ import annotations

import os
from typing import Mapping, NamedTuple, Sequence

from envctl.option_words import option_name, option_value

HOST_OPTIONS = ("--host", "--hosts", "-H")  # envctl/cli_remote.py host_option
HOSTS_KEPT = "quick-status-hosts.json"  # the inventory's readings kept in the control directory
HOSTS_KEPT_MOST = 16
# Seconds the forwarded socket may stay silent (no byte accepted or answered) before the full path
# takes over: a host cut off behind a master that has not noticed yet, an engine or master that
# hangs. Each wait counts from the last byte, so a long answer that keeps coming (many
# environments) is read whole; a quick path that cannot decide costs about this much.
SILENCE = 1.0
VALUE_OPTIONS = {"--ssh-config": "ssh_config", "--inventory": "inventory"}


class Wanted(NamedTuple):
    hosts: tuple[str, ...]  # as typed, each possibly a comma list
    ssh_config: str | None
    inventory: str | None


def parse(args: Sequence[str]) -> Wanted | None:
    """The options of `status` after the command name, when they are all of the forms answered
    here and name at least one host; else None."""
    hosts: list[str] = []
    given: dict[str, str] = {}
    words = list(args)
    while words:
        word = words.pop(0)
        option = option_name(word)
        if option not in HOST_OPTIONS and option not in VALUE_OPTIONS:
            return None
        value = option_value(word, words)
        if value is None:
            return None
        if option in HOST_OPTIONS:
            hosts.append(value)
        elif VALUE_OPTIONS[option] in given:
            return None
        else:
            given[VALUE_OPTIONS[option]] = value
    if not hosts:
        return None
    return Wanted(tuple(hosts), given.get("ssh_config"), given.get("inventory"))


def answer(args: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """What `envctl status ARGS` prints on stdout (its exit code is 0), or None: take the full path."""
    wanted = parse(args)
    if wanted is None:
        return None
    from envctl.remote.live_master import control_directory, forwarded_engine, ssh_config

    directory = control_directory(environ)
    if directory is None:
        return None
    host = _host(wanted, environ, directory)
    if host is None:
        return None
    name, destination = host
    local = forwarded_engine(destination, ssh_config(wanted.ssh_config, environ), directory)
    if local is None:
        return None
    from envctl.engine_socket import EngineUnanswered
    from envctl.quick_status import CannotDecide

    try:
        rows = _rows(local, _tracer(name, environ))
    except (CannotDecide, EngineUnanswered):
        return None
    if not rows:
        return "no environments\n"
    return "".join(f"{name:<12} {line}" for _name, line in sorted(rows, key=lambda row: row[0]))


def _host(wanted: Wanted, environ: Mapping[str, str], directory: str) -> tuple[str, str] | None:
    """(name, SSH destination) of the one host the options name, as the full path chooses it
    (envctl/cli_remote.py entries); None for several, none, a problem or a warning.

    The inventory's reading (envctl/remote/inventory.py: yaml, and pydantic for its suggestions,
    most of this path's own time) is kept in `directory` (the private control directory) under
    a key of what it depends on (`inventory_key`): the same file bytes and names read the same."""
    key = inventory_key(wanted, environ)
    if key is None:
        return None
    kept_path = os.path.join(directory, HOSTS_KEPT)
    kept = _kept(kept_path)
    if isinstance(kept.get(key), list) and len(kept[key]) == 2 and all(isinstance(v, str) for v in kept[key]):
        return kept[key][0], kept[key][1]
    warned: list[str] = []
    try:
        from envctl.remote.inventory import load_inventory, select

        chosen = select(load_inventory(wanted.inventory, environ), list(wanted.hosts), warn=warned.append)
    except Exception:  # noqa: BLE001 (any problem: the full path says it, as it always does)
        return None
    if warned or len(chosen) != 1:
        return None
    found = chosen[0].name, chosen[0].ssh
    if inventory_key(wanted, environ) == key:  # not changed while it was read: keep it
        _keep(kept_path, {**dict(list(kept.items())[-(HOSTS_KEPT_MOST - 1):]), key: list(found)})
    return found


def inventory_file(given: str | None, environ: Mapping[str, str]) -> str | None:
    """The inventory file the full path reads (envctl/remote/inventory.py inventory_path, as a
    string; tests/unit/test_quick_status_remote_parts.py holds the two to each other): --inventory,
    else ENVCTL_INVENTORY, else the default file when there is one."""
    from envctl.paths import config_home, expand_home

    named = given or environ.get("ENVCTL_INVENTORY")
    if named:
        return expand_home(named, environ)
    home = config_home(environ)
    default = home / "inventory.yaml" if home is not None else None
    return str(default) if default is not None and default.is_file() else None


def inventory_key(wanted: Wanted, environ: Mapping[str, str]) -> str | None:
    """What the host chosen by `wanted` depends on, hashed: the inventory file's absolute path and
    bytes (none without one), the names typed, and the reader (envctl/remote/inventory.py's size
    and modification time: another envctl reads it anew). None when the file cannot be read or is
    not a regular file (nothing is read from a pipe or a FIFO: the full path reads it)."""
    import hashlib
    import json
    import stat

    import envctl

    path = inventory_file(wanted.inventory, environ)
    content = None
    if path is not None:
        try:
            # Only a regular file is read here: a pipe (`--inventory <(...)`), a FIFO or a device
            # gives its bytes once, and the full path must find them all.
            if not stat.S_ISREG(os.stat(path).st_mode):
                return None
            with open(path, "rb") as file:
                if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                    return None  # replaced since: read nothing from it
                content = hashlib.sha256(file.read()).hexdigest()
        except OSError:
            return None  # the full path says why
        path = os.path.abspath(path)
    try:
        reader = os.stat(os.path.join(os.path.dirname(envctl.__file__), "remote", "inventory.py"))
    except OSError:
        return None
    said = [path, content, list(wanted.hosts), reader.st_size, reader.st_mtime_ns]
    return hashlib.sha256(json.dumps(said).encode()).hexdigest()


def _kept(path: str) -> dict:
    import json

    from envctl.regular_file import read_regular_text

    try:
        kept = json.loads(read_regular_text(path))
    except (OSError, ValueError):
        return {}
    return kept if isinstance(kept, dict) else {}


def _keep(path: str, kept: dict) -> None:
    """Written whole or not at all (a concurrent envctl reads either)."""
    import json

    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(kept, file)
        os.replace(temporary, path)
    except OSError:
        pass  # only the inventory's reading saved next time


def _rows(local: str, trace) -> list[tuple[str, str]]:
    """(name, line) of every environment, from the engine at the forwarded socket `local`."""
    from envctl.engine_socket import Pipelined, filters
    from envctl.quick_status import (
        LABEL_MANIFEST,
        TOP_QUERY,
        CannotDecide,
        inspected,
        only_keep_alive,
        row,
    )

    with Pipelined(local, trace, silence=SILENCE) as engine:
        [(status, listed)] = engine.get([("/containers/json", {"all": "1", "filters": filters(label=[LABEL_MANIFEST])})])
        if status != 200 or not isinstance(listed, list) or not all(isinstance(c, dict) for c in listed):
            raise CannotDecide()
        asked = []
        for container in listed:
            asked.append((f"/containers/{container.get('Id')}/json", None))
            if container.get("State") == "running":  # the list's word; the inspection decides
                asked.append((f"/containers/{container.get('Id')}/top", TOP_QUERY))
        answers = iter(engine.get(asked))
        rows = []
        for container in listed:
            attrs = inspected(*next(answers))
            top = next(answers) if container.get("State") == "running" else None
            if attrs["State"].get("Running"):
                if attrs.get("ExecIDs"):
                    raise CannotDecide()
                if top is None:  # started since the list
                    [top] = engine.get([(f"/containers/{attrs['Id']}/top", TOP_QUERY)])
                only_keep_alive(attrs, *top)
            rows.append(row(attrs))
        return rows


def _tracer(name: str, environ: Mapping[str, str]):
    """With ENVCTL_SSH_TRACE=FILE, what envctl/remote/ssh.py trace appends for each engine request
    through a forwarded socket (kind "api", as envctl/hosts/ssh.py counts docker-py's)."""
    path = environ.get("ENVCTL_SSH_TRACE")
    if not path:
        return None

    def trace(target: str) -> None:
        from envctl.remote.trace_file import append

        append(path, "api", name, ["GET", target])

    return trace
