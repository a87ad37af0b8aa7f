"""`envctl cards`: who holds which card, on this machine or the hosts named, once or refreshed in
place (--watch)."""

from __future__ import annotations

import json
import sys
import time
from typing import List, Optional

import typer

from envctl.cli_app import app
from envctl.cli_remote import accept_option, each_host, host_option, inventory_option, remote_options, ssh_config_option

CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen: what `watch` does between frames


@app.command()
def cards(
    as_json: bool = typer.Option(False, "--json", help="machine-readable output (with --watch: one JSON document a line)"),
    watch: bool = typer.Option(False, "--watch", "-w", help="refresh in place until interrupted (Ctrl-C)"),
    interval: float = typer.Option(2.0, "--interval", "-n", min=0.2, help="with --watch: seconds between refreshes"),
    hosts: Optional[List[str]] = host_option(),
    ssh_config: Optional[str] = ssh_config_option(),
    inventory: Optional[str] = inventory_option(),
    accept_host_key: Optional[str] = accept_option(),
) -> None:
    """Every card of this host (or of the hosts named): model, bus ID, memory, utilisation,
    temperature, and who holds it: envctl environments (with the user who brought them up),
    other containers given its device node, privileged containers (every card), the processes
    cnmon or npu-smi list."""
    from envctl.host_cards import survey
    from envctl.planning import engine_if_any

    remote = remote_options(hosts, ssh_config, inventory, accept_host_key)

    def frame() -> tuple[int, dict]:
        found = {}

        def work(host, echo) -> str:
            found[host.name] = survey(host, *engine_if_any(host))
            held = sum(1 for f in found[host.name].families for h in f.holders or () if h.holds)
            return f"{sum(len(f.present) for f in found[host.name].families)} card(s), {held} holder(s)"

        code = each_host(remote, work, "cards")
        return code, found

    try:
        _show(frame, as_json, watch, interval, remote.wanted)
    except KeyboardInterrupt:
        if not watch:
            raise
        raise typer.Exit(0) from None  # the way out of --watch


def _show(frame, as_json: bool, watch: bool, interval: float, keyed: bool) -> None:
    from envctl.host_cards import as_dict, lines

    while True:
        code, found = frame()
        if as_json:
            shown = {name: as_dict(h) for name, h in found.items()} if keyed else as_dict(next(iter(found.values())))
            typer.echo(json.dumps(shown, ensure_ascii=False) if watch else json.dumps(shown, indent=2, ensure_ascii=False))
        else:
            text = "\n".join(line for h in found.values() for line in lines(h))
            if watch:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                # In place on a terminal (written as it is: click.echo strips escape sequences); into a
                # pipe or a file, frames one after another, with no escape sequences in a log.
                start = CLEAR if sys.stdout.isatty() else "\n"
                sys.stdout.write(f"{start}envctl cards, every {interval:g}s ({stamp}); Ctrl-C to stop\n\n{text}\n")
            else:
                typer.echo(text)
        if not watch:
            raise typer.Exit(code)
        sys.stdout.flush()
        time.sleep(interval)
