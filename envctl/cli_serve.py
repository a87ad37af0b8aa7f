"""Servers that keep running: `envctl exec ENTRY --detach` (started here, called by `exec`) and
`envctl stop ENTRY` (envctl/detach.py does the work; envctl/readiness.py says when it is ready)."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import List, Optional

import typer

from envctl.cli_app import app, say
from envctl.cli_remote import accept_option, host_option, inventory_option, remote_options, single_target, ssh_config_option
from envctl.errors import EXIT_HOST_NOT_READY, EXIT_NOT_FOUND, EXIT_USAGE, EnvctlError

STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL, as `docker stop`'s default


def exec_detached(host, remote_wanted: bool, chosen, entry, argv, variables) -> int:
    """Start `entry` (envctl.plan.Entrypoint) of environment `chosen` in the background and wait
    for its readiness; prints where it serves and its log. Returns 0; raises EnvctlError (usage
    2, a run already there 5, not ready 1)."""
    from envctl import detach, execute
    from envctl.runs import running_work

    if entry.interactive:
        raise EnvctlError(f"entrypoint {entry.name} is interactive (it needs a terminal): run it without --detach",
                          exit_code=EXIT_USAGE)
    client = host.engine()
    on = f" on {host.name}" if remote_wanted else ""
    already = [r for r in running_work(client, chosen.container) if r.kind == "entrypoint" and r.name == entry.name]
    if already:
        raise EnvctlError(f"{entry.name} already runs in {chosen.name}{on}: {already[0].describe()}",
                          hint=f"stop it first: envctl stop {entry.name} --env {chosen.name}" + _host_flag(host, remote_wanted),
                          exit_code=EXIT_HOST_NOT_READY)
    if not chosen.workspace:
        raise EnvctlError(f"{chosen.name} has no workspace mount, where a detached run's log goes",
                          hint=f"recreate it with `envctl up {chosen.reference}`")
    _check_workspace_mounted(host, chosen, on, _host_flag(host, remote_wanted))
    ready = entry.ready  # the manifest's `ready:`, resolved with the environment's variant and --var values
    log_on_host = fresh_log(host, execute.log_path(Path(chosen.workspace), entry.name))
    host.mkdirs(str(Path(log_on_host).parent))
    host.write_file(log_on_host, b"")
    detach.check_log_writable(client, chosen.name, detach.in_container(log_on_host, chosen.workspace), log_on_host)
    started = detach.start(client, chosen.name, entry.name, argv, variables, entry.workdir, log_on_host,
                           detach.in_container(log_on_host, chosen.workspace), ready, entry.ports)
    log_line = f"log      {log_on_host}{on} (envctl logs {entry.name} -f{_host_flag(host, remote_wanted)})"
    if ready is None:
        code = detach.ended_at_once(client, started)
        if code is not None:
            raise detach.NotReady(f"{entry.name} ended at once ({detach.ended_by(code)})" + detach.log_tail(client, chosen.name,
                                                                                                 started.log_in_container))
        typer.echo(f"started  {entry.name} in {chosen.name}{on} (pid {started.pid}); it declares no readiness "
                   f"(ready: in the manifest), so it may not answer yet")
        found = None
    else:
        try:  # from the line that invites a Ctrl-C on: one that lands right after it is said too
            say(f"waiting  for {entry.name}: {ready.describe()} (up to {ready.timeout:g}s)")
            found = detach.wait_ready(client, chosen.name, started, ready)
        except KeyboardInterrupt:  # the wait is interrupted, not the server: it keeps running, said so
            say(f"interrupted while waiting: {entry.name} keeps running (pid {started.pid}), not known to be ready; "
                f"{log_line.split(None, 1)[1]}; envctl stop {entry.name} --env {chosen.name}{_host_flag(host, remote_wanted)}")
            raise
        typer.echo(f"ready    {entry.name} in {chosen.name}{on} (pid {started.pid}): {ready.describe()}")
    attrs = client.api.inspect_container(chosen.name)
    for port in entry.ports:
        answered = found if found is not None and port == ready.port else None
        typer.echo(f"serves   {where_served(attrs, port, answered.address if answered else None, host.name if remote_wanted else None)}")
        caveat = loopback_caveat(attrs, port, answered, host.name if remote_wanted else None)
        if caveat:
            say(f"warning: {entry.name} {caveat}")
    typer.echo(log_line)
    typer.echo(f"stop     envctl stop {entry.name} --env {chosen.name}{_host_flag(host, remote_wanted)}")
    return 0


def fresh_log(host, wanted: Path) -> str:
    """`wanted` (`logs/web-20261130T192532Z-3f2a.log`, execute.log_path), or `web-...-2.log`,
    `-3`... when a log of that name is already there: the detached run's log is written anew
    (replaced) on the host, so another run's must never be taken, however unlikely the name's
    four hex digits make that."""
    candidate, number = wanted, 2
    while host.exists(str(candidate)):
        candidate = wanted.with_name(f"{wanted.stem}-{number}{wanted.suffix}")
        number += 1
    return str(candidate)


def _check_workspace_mounted(host, chosen, on: str, host_flag: str) -> None:
    """Raise EnvctlError (exit 5) when the workspace on the host is not what the container has
    at /envctl: gone (making it again for the log would hide that from the next `up`), or made
    again or replaced (it lacks the container's mark: envctl/observe.py). The run's log would
    reach the container's old directory, or nothing, not the host's. Before: the log's
    writability check failed and blamed the container's user."""
    from envctl.containers import LABEL_WORKSPACE_MARK
    from envctl.observe import workspace_state

    label = (getattr(chosen.container, "labels", None) or {}).get(LABEL_WORKSPACE_MARK)
    state = workspace_state(host, chosen.workspace, label)
    if state == "gone":
        why = "is gone from the host"
    elif label and state in ("replaced", "not a directory"):
        why = "is not the directory the container mounted at /envctl (deleted and made again, or replaced)"
    else:
        return
    raise EnvctlError(f"the workspace {chosen.workspace} of {chosen.name}{on} {why}: a detached run's log would not "
                      "reach it", hint=f"`envctl up {chosen.reference}{host_flag}` restarts the container with it "
                                      "(`--force` when work runs there)", exit_code=EXIT_HOST_NOT_READY)


def _host_flag(host, remote_wanted: bool) -> str:
    return f" --host {host.name}" if remote_wanted else ""


def where_served(attrs: dict, port: int, address: str | None, host_name: str | None) -> str:
    """Where a client reaches `port` of a container (`attrs`: the engine's inspect of it):
    published ports, the host's network, the container's own address, or nowhere but inside."""
    of_host = f" of {host_name}" if host_name else " of this machine"
    inside = f"http://{address or '127.0.0.1'}:{port} inside the container"
    mode = (attrs.get("HostConfig") or {}).get("NetworkMode") or ""
    if mode == "host":
        return f"port {port}{of_host} (host network)"
    if mode == "none":
        return f"{inside} only (network none)"
    settings = attrs.get("NetworkSettings") or {}
    bindings = (settings.get("Ports") or {}).get(f"{port}/tcp") or []
    if bindings:
        published = ", ".join(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}" for b in bindings)
        return f"port {port} published at {published}{of_host}"
    addresses = [f"{net.get('IPAddress')}:{port} ({name} network)" for name, net in (settings.get("Networks") or {}).items()
                 if net.get("IPAddress")]
    reach = f"; from the engine's host at {', '.join(addresses)}" if addresses else ""
    return f"{inside}{reach}; not published (container.ports publishes it)"


def loopback_caveat(attrs: dict, port: int, found, host_name: str | None) -> str | None:
    """What a server listening on the loopback only (`found`: envctl.readiness.Listening of
    its ready port) cannot be reached from, or None when that does not matter (it does not,
    or `network: none`, where only the container reaches it anyway)."""
    if found is None or not found.loopback:
        return None
    mode = (attrs.get("HostConfig") or {}).get("NetworkMode") or ""
    if mode == "none":
        return None
    listens = f"listens on {found.address}:{port} only"
    fix = "make it listen on all addresses (0.0.0.0; e.g. --host 0.0.0.0, GRADIO_SERVER_NAME=0.0.0.0)"
    if mode == "host":
        return f"{listens}: only {host_name or 'this machine'} itself reaches it (host network), no other machine; {fix}"
    bindings = ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{port}/tcp") or []
    what = "the published port does not reach it" if bindings else "the container's address does not reach it"
    return f"{listens}, inside the container: {what} (only the container itself does); {fix}"


@app.command()
def stop(
    entrypoint: str = typer.Argument(..., help="the entrypoint whose runs to stop"),
    env: Optional[str] = typer.Option(None, "--env", help="the environment (needed when several are up)"),
    timeout: float = typer.Option(STOP_GRACE, "--timeout", "-t", min=0, help="seconds between SIGTERM and SIGKILL"),
    hosts: Optional[List[str]] = host_option(),
    ssh_config: Optional[str] = ssh_config_option(),
    inventory: Optional[str] = inventory_option(),
    accept_host_key: Optional[str] = accept_option(),
) -> None:
    """Stop the runs of an entrypoint (started with exec --detach, or in another terminal):
    SIGTERM to each run's process group, SIGKILL after --timeout seconds. Exit 4 when none runs."""
    from envctl import detach, environments
    from envctl.runs import running_work

    remote = remote_options(hosts, ssh_config, inventory, accept_host_key)
    host = single_target(remote)
    client = host.engine()
    chosen = environments.choose(client, env)
    on = f" on {host.name}" if remote.wanted else ""
    work = running_work(client, chosen.container)
    runs = [r for r in work if r.kind == "entrypoint" and r.name == entrypoint]
    if not runs:
        others = sorted({r.name for r in work if r.kind == "entrypoint"})
        close = difflib.get_close_matches(entrypoint, others, n=1)
        hint = (f"did you mean '{close[0]}'? " if close else "") + (
            f"running: {', '.join(others)}" if others else "`envctl status` lists what runs")
        raise EnvctlError(f"no run of {entrypoint} is running in {chosen.name}{on}", hint=hint, exit_code=EXIT_NOT_FOUND)
    for run in runs:
        done = detach.stop(client, chosen.name, run.exec_id, run.pid, grace=timeout)
        typer.echo(f"stopped  {run.describe()}: {done}")
    raise typer.Exit(0)
