"""`envctl status` (no options) answered without typer, pydantic or docker-py, or not at all.

`answer(environ)` prints what the full `status` prints (envctl/cli_runs.py status and
_status_rows; envctl/environments.py for the fields; envctl/runs.py running_work for the work)
when it can decide it from these engine requests, else returns None and the full path runs:

- `GET /containers/json?all=1&filters={"label": ["io.envctl.manifest"]}`: every container envctl
  made (the full path's list, envctl/lifecycle.py environments);
- `GET /containers/{id}/json` of each: name, State, labels, Config.Image and ExecIDs;
- `GET /containers/{id}/top?ps_args=...` of each running one: its processes, as the full path
  reads them (envctl/runs.py _processes, same ps arguments).

It answers only when no environment runs work: no exec is listed (ExecIDs empty, so there is no
entrypoint run, setup step, `docker exec` or detached server to describe, and nothing to ask with
`docker exec` about listening ports) and `docker top` lists no process but the container's
keep-alive one (State.Pid), so nothing is left in the background either. A running container
whose processes `docker top` cannot list (no procps `ps` on the engine's host) is one the full
path asks with an exec into the container: not answered here. So are labels envctl did not
write (the full path's error), a container gone between two requests, any other DOCKER_HOST
than a unix socket (envctl/engine_socket.py), and anything the engine answers unexpectedly.
Rows are printed as the full path prints them, byte for byte (tests/integration/test_quick.py
compares the two on real engines).
"""

from __future__ import annotations

from typing import Mapping

from envctl.engine_socket import Engine, EngineUnanswered, filters, socket_path

# The labels envctl writes (envctl/containers.py; not imported: it imports the device families).
LABEL_MANIFEST = "io.envctl.manifest"
LABEL_VARIANT = "io.envctl.variant"
LABEL_VARS = "io.envctl.vars"
LABEL_CARDS = "io.envctl.cards"
LABEL_USER = "io.envctl.user"
TOP_ARGS = "-o pid,ppid,etimes,stat,args"  # envctl/runs.py TOP_ARGS
TOP_QUERY = {"ps_args": TOP_ARGS}


class CannotDecide(Exception):
    """The full `status` answers this one."""


def answer(environ: Mapping[str, str]) -> str | None:
    """What `envctl status` prints on stdout (its exit code is 0), or None: take the full path."""
    path = socket_path(environ)
    if path is None:
        return None
    try:
        with Engine(path) as engine:
            rows = sorted((_row(engine, listed) for listed in _listed(engine)), key=lambda row: row[0])
    except (CannotDecide, EngineUnanswered):
        return None
    if not rows:
        return "no environments\n"
    return "".join(line for _name, line in rows)


def _listed(engine: Engine) -> list[dict]:
    status, listed = engine.get("/containers/json", {"all": "1", "filters": filters(label=[LABEL_MANIFEST])})
    if status != 200 or not isinstance(listed, list):
        raise CannotDecide()
    return listed


def _row(engine: Engine, listed: dict) -> tuple[str, str]:
    """(name, the line) of one environment, as cli_runs.status prints it."""
    attrs = inspected(*engine.get(f"/containers/{listed.get('Id')}/json"))
    if attrs["State"].get("Running"):
        if attrs.get("ExecIDs"):
            raise CannotDecide()
        only_keep_alive(attrs, *engine.get(f"/containers/{attrs['Id']}/top", TOP_QUERY))
    return row(attrs)


def inspected(status: int, attrs) -> dict:
    """The inspection of a listed container (`GET /containers/{id}/json`: HTTP status, JSON);
    CannotDecide when it is gone since the list (the full path fails on it) or not as expected."""
    if status != 200 or not isinstance(attrs, dict) or not isinstance(attrs.get("State"), dict):
        raise CannotDecide()
    return attrs


def row(attrs: dict) -> tuple[str, str]:
    """(name, the line) of the environment whose container's inspection is `attrs`, when no
    work runs in it, as cli_runs.status prints it."""
    state = attrs["State"]
    name = str(attrs.get("Name", "")).lstrip("/")  # docker-py Container.name
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    variant = labels.get(LABEL_VARIANT)
    manifest = labels.get(LABEL_MANIFEST, "?")
    reference = f"{manifest}:{variant}" if variant else manifest
    cards = ",".join(map(str, _cards(labels.get(LABEL_CARDS)))) or "-"
    user = labels.get(LABEL_USER)
    by = f"  by {user}" if user else ""
    given = "".join(f" --var {k}={v}" for k, v in _vars(labels.get(LABEL_VARS)).items())
    image = (attrs.get("Config") or {}).get("Image")
    return name, f"{name:<32} {state.get('Status'):<8} cards {cards:<12} {reference}{given}  ({image}){by}\n"


def only_keep_alive(attrs: dict, status: int, top) -> None:
    """Raise CannotDecide unless `docker top` of the running container (`GET
    /containers/{id}/top` with TOP_QUERY: HTTP status, JSON) lists nothing but its keep-alive
    process (envctl/runs.py running_work finds no work then; the caller has seen no exec in
    the inspection `attrs`)."""
    if status != 200 or not isinstance(top, dict):
        raise CannotDecide()  # the full path reads /proc with an exec instead
    titles = top.get("Titles") or []
    try:
        pid_at, stat_at = titles.index("PID"), titles.index("STAT")
        titles.index("PPID"), titles.index("ELAPSED")
    except ValueError:
        raise CannotDecide() from None
    pids = []
    for process in top.get("Processes") or ():
        try:
            if "Z" in process[stat_at]:
                continue  # a zombie: not work (runs.py skips it too)
            pids.append(int(process[pid_at]))
        except (ValueError, IndexError, TypeError):
            raise CannotDecide() from None
    if not pids or any(pid != attrs["State"].get("Pid") for pid in pids):
        raise CannotDecide()


def _cards(text) -> tuple[int, ...]:
    if not text:
        return ()
    from envctl.cards import CardsError, parse_indices

    try:
        return tuple(parse_indices(text))
    except CardsError:
        raise CannotDecide() from None  # the full path names the label envctl did not write


def _vars(text) -> dict:
    from envctl.var_label import parse_vars_label

    values = parse_vars_label(text)
    if values is None:
        raise CannotDecide()  # the full path names the label envctl did not write
    return values
