"""The hosts of `up`/`plan ... --host NAME`, opened while the rest of envctl starts.

Opening an SSH host (its connection's handshake, the server's facts and the probe round:
envctl/remote/target.py open_host) needs only the inventory, the ssh config and the host
options, never the manifest. envctl/cli.py main starts it here, on a thread, before typer and
the manifest's modules are imported and the manifest is read (about 0.45 s of this machine's
time); the command's on_hosts (envctl/cli_remote.py) then takes the opened hosts instead of
opening them itself. On a host 50 ms away a fresh `up` no longer waits for the handshake after
its start-up: the two overlap. Once a host is open, its engine's API version is asked too
(SSHHost.ask_api_version), which docker-py's client would otherwise ask, one round trip before
the plan's first request.

Nothing else changes: the same functions choose and open the hosts (envctl/remote/hosts_open.py),
a warning of the selection is printed when the command takes the result (where the command
would have printed it), and an error (an invalid inventory, a refused host key, a host that
does not answer) is raised there as it would have been. Only the plain forms are started early,
those whose options this module reads exactly as typer does (`parse`): any other word, and
the command's own opening runs as before. An opening the command does not take (the manifest
was invalid, typer read the options otherwise) is left behind: its threads are daemons, so the
command's exit does not wait for them; what it leaves is what a finished command leaves, a
master connection that ends after ControlPersist.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from concurrent.futures import Future
from typing import Mapping, Sequence

from envctl.option_words import option_name, option_value
from envctl.remote.hosts_open import RemoteOptions, choose, open_entry

# The commands opened early: each opens its hosts with the probe round (on_hosts probes=True).
COMMANDS = ("up", "plan")
_HOST_OPTIONS = ("--host", "--hosts", "-H")
_REMOTE_VALUES = {"--ssh-config": "ssh_config", "--inventory": "inventory", "--accept-host-key": "accept_host_key"}
# The command's other options, each with whether it takes a value (envctl/cli_lifecycle.py up,
# envctl/cli_manifests.py plan). One not listed here leaves the command to open its hosts itself.
_OTHER_OPTIONS = {
    "up": {"--var": True, "--cards": True, "--card-count": True, "--env-file": True, "--share-cards": False,
           "--skip-driver-check": False, "--offline": False, "--force": False},
    "plan": {"--var": True, "--cards": True, "--card-count": True, "--share-cards": False, "--skip-driver-check": False},
}
_NUMBERS = ("--card-count",)  # options typer reads as an integer


def parse(args: Sequence[str]) -> RemoteOptions | None:
    """The remote options of `COMMAND NAME OPTIONS...` (args without the program's name) when
    the command is one of COMMANDS, it has exactly one NAME and every other word is one of its
    options in a form typer reads the same way (`--opt VALUE`, `--opt=VALUE`, `-H VALUE`; a
    value never starts with "-"; --card-count's a number), and it names a host without
    --accept-host-key; else None: a line typer refuses (plan or up without NAME, --card-count
    two) never takes an opening, which would be left behind."""
    if not args or args[0] not in COMMANDS:
        return None
    others = _OTHER_OPTIONS[args[0]]
    hosts: list[str] = []
    given: dict[str, str] = {}
    names = 0
    words = list(args[1:])
    while words:
        word = words.pop(0)
        if not word.startswith("-"):
            names += 1
            if names > 1:
                return None
            continue
        option = option_name(word)
        if option in _HOST_OPTIONS or option in _REMOTE_VALUES or others.get(option):
            value = option_value(word, words)
            if value is None:
                return None
            if option in _NUMBERS and not (value.isascii() and value.isdigit()):
                return None  # typer's usage error
            if option in _HOST_OPTIONS:
                hosts.append(value)
            elif option in _REMOTE_VALUES:
                if _REMOTE_VALUES[option] in given:
                    return None  # typer keeps the last; the command decides
                given[_REMOTE_VALUES[option]] = value
        elif option in others and option == word:
            continue  # a flag (given no value: `--force=yes` is typer's error)
        else:
            return None
    if not hosts or names != 1:  # without NAME: typer's usage error (plan), or up's (no --plan here)
        return None
    if "accept_host_key" in given:
        # Accepting records the host's key (envctl/remote/ssh.py): the command's to do once it
        # gets to the host, never an opening's it may not take (an invalid manifest, exit 3).
        return None
    return RemoteOptions(tuple(hosts), given.get("ssh_config"), given.get("inventory"), given.get("accept_host_key"))


class Opening:
    """The hosts of one set of options, chosen and opened on daemon threads. `chosen()` and
    `host(entry)` give what hosts_open's choose and open_entry would (or raise what they
    would)."""

    def __init__(self, options: RemoteOptions):
        self.options = options
        self.started = time.monotonic()  # where each host's time in on_hosts's summary begins
        self._chosen: Future = Future()
        self._warnings: list[str] = []  # the selection's, said when the command takes it
        self._hosts: dict[str, Future] = {}
        threading.Thread(target=self._choose_and_open, name="envctl-early-open", daemon=True).start()

    def chosen(self, warn) -> list:
        """The chosen entries; the selection's warnings are given to `warn` here, before its
        error when it failed (a name spelled like a group, then a bad range), as the command's
        own selection says them."""
        self._chosen.exception()  # waits for the selection, raising nothing
        for text in self._warnings:
            warn(text)
        return self._chosen.result()

    def host(self, entry):
        return self._hosts[entry.name].result()

    def opened(self, entry) -> bool:
        """Whether the host's opening has ended (opened or failed): host(entry) waits no more."""
        return self._hosts[entry.name].done()

    def _choose_and_open(self) -> None:
        try:
            entries = choose(self.options, self._warnings.append)
        except BaseException as exc:  # raised where the command asks: chosen()
            self._chosen.set_exception(exc)
            return
        for entry in entries:  # every future exists before anyone can ask for one
            self._hosts[entry.name] = Future()
        self._chosen.set_result(entries)
        for entry in entries:
            threading.Thread(target=self._open, args=(entry,), name=f"envctl-open-{entry.name}", daemon=True).start()

    def _open(self, entry) -> None:
        opened = self._hosts[entry.name]
        try:
            host = open_entry(entry, self.options, probes=True)
        except BaseException as exc:  # raised where the command asks: host()
            opened.set_exception(exc)
            return
        host.ask_api_version()  # both commands ask the engine: its API version meanwhile too
        opened.set_result(host)


_started: list[Opening] = []  # at most one: the command line's


def start(args: Sequence[str], environ: Mapping[str, str] = os.environ) -> None:
    """Start opening the hosts of the command line `args` (without the program's name) when
    parse reads them; nothing otherwise. ENVCTL_NO_QUICK=1 (which turns off every quick path)
    turns this off too."""
    if environ.get("ENVCTL_NO_QUICK") == "1":
        return
    options = parse(args)
    if options is None:
        return
    # Imported here, on this thread, before the opening's threads use them: two threads importing
    # one circle of modules at once can fail ("deadlock detected by _ModuleLock"). The device
    # families are imported inside the probe round's arguments (envctl/hosts/ssh.py
    # probe_arguments): the package first, then its modules; the command imports
    # envctl.devices.base first (envctl/containers.py), whose lock Python takes before the
    # package's: on two threads, each would hold the lock the other waits for.
    # http.client: an opening's thread asks the engine's API version with it
    # (SSHHost.ask_api_version) while the command's imports docker-py, which imports it too.
    for module in ("envctl.remote.inventory", "envctl.remote.target", "envctl.devices", "envctl.devices.usage",
                   "envctl.engine_socket", "http.client"):
        importlib.import_module(module)

    _started.append(Opening(options))


def take(options: RemoteOptions, probes: bool) -> Opening | None:
    """The opening started for exactly these options, once; None when there is none or the
    command opens its hosts without the probe round (every early opening runs it)."""
    if not probes:
        return None
    for opening in _started:
        if opening.options == options:
            _started.remove(opening)
            return opening
    return None
