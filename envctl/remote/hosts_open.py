"""Choosing hosts from the inventory and opening them (their SSH connection and first probe
round), without the command line's machinery: the host-aware commands use it through
envctl/cli_remote.py, and envctl/remote/early_open.py uses it before typer is imported."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from envctl.errors import EXIT_USAGE, EnvctlError


@dataclass(frozen=True)
class RemoteOptions:
    """--host/--hosts/-H (each as given: names, groups, ranges, comma-separated), --ssh-config,
    --inventory and --accept-host-key of a command, as typer read them."""
    hosts: tuple[str, ...]
    ssh_config: str | None
    inventory: str | None
    accept_host_key: str | None

    @property
    def wanted(self) -> bool:
        return bool(self.hosts)


def choose(options: RemoteOptions, warn: Callable[[str], None]):
    """The inventory's entries (envctl/remote/inventory.py HostEntry) that the options name, in
    the inventory's order; `warn(text)` for each warning of the selection. Raises EnvctlError
    (exit 2) when they name none, InventoryError for an unreadable or invalid inventory."""
    from envctl.remote.inventory import load_inventory, select

    inventory = load_inventory(options.inventory, os.environ)
    chosen = select(inventory, list(options.hosts), warn=warn)
    if not chosen:
        raise EnvctlError("--host names no host", exit_code=EXIT_USAGE)
    return chosen


def open_entry(entry, options: RemoteOptions, probes: bool = True):
    """The entry's host (an SSHHost), connected. `probes`: False for a command that reads only
    the engine (envctl/remote/target.py open_host). Raises RemoteError."""
    from envctl.remote.ssh import SSHSettings
    from envctl.remote.target import open_host

    settings = SSHSettings.from_environ(options.ssh_config, options.accept_host_key)
    host = open_host(entry.name, entry.ssh, settings, entry.data_dir, entry.root, entry.fetch, entry.cards, entry.env,
                     probes)
    host.mirrors = entry.mirrors  # its inventory mirrors: what it downloads through (envctl.mirror_routes.of_host)
    return host
