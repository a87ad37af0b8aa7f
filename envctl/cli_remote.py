"""What the host-aware commands share: the --host options, choosing hosts from the inventory
and ssh config (each an SSHHost; this machine's LocalHost without --host), and running one
piece of work on many hosts at once.

Many hosts run in parallel, each line of output prefixed with its host; one host failing never
stops the others; a summary table closes the run and the exit code says whether all succeeded
(0), or the failure's own code when one host was asked, else 7 (remote failed).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, List, Optional

import typer

from envctl.cli_app import say
from envctl.errors import EXIT_REMOTE_FAILED, EXIT_USAGE, EnvctlError
from envctl.remote.hosts_open import RemoteOptions, choose, open_entry  # noqa: F401  (RemoteOptions: the commands' import)

if TYPE_CHECKING:  # envctl.plan imports the manifest model and the fetchers: not for --help
    from envctl.plan import Options

HOST_HELP = "run on these hosts (names, groups or ranges like lab[1-4], comma-separated; from the inventory or ssh config)"


def host_option():
    return typer.Option(None, "--host", "--hosts", "-H", help=HOST_HELP)


def ssh_config_option():
    return typer.Option(None, "--ssh-config", help="ssh config file to use (default: ENVCTL_SSH_CONFIG, else OpenSSH's own)")


def inventory_option():
    return typer.Option(None, "--inventory", help="inventory file (default: ENVCTL_INVENTORY, else ~/.config/envctl/inventory.yaml)")


def accept_option():
    return typer.Option(None, "--accept-host-key", metavar="SHA256:...",
                        help="record this host key fingerprint in known_hosts when the key of the host, or of a "
                             "bastion on the way to it, is unknown (checked with its administrator)")


def remote_options(hosts: Optional[List[str]], ssh_config: Optional[str], inventory: Optional[str],
                   accept_host_key: Optional[str]) -> RemoteOptions:
    return RemoteOptions(tuple(hosts or ()), ssh_config, inventory, accept_host_key)


def entries(options: RemoteOptions):
    """The inventory entries the options name (hosts_open.choose), its warnings printed."""
    return choose(options, _warn)


def _warn(text: str) -> None:
    say(f"warning: {text}")


def single_target(options: RemoteOptions):
    """The one host a command such as exec or shell runs on: this machine without --host."""
    if not options.wanted:
        from envctl.cli_app import local_host

        return local_host()
    chosen = entries(options)
    if len(chosen) != 1:
        raise EnvctlError(f"this command runs on one host; --host names {len(chosen)} ({', '.join(e.name for e in chosen)})",
                          exit_code=EXIT_USAGE)
    return open_entry(chosen[0], options)


@dataclass
class HostResult:
    host: str
    ok: bool
    summary: str
    seconds: float
    exit_code: int = 0


def on_hosts(options: RemoteOptions, work: Callable[[object, Callable[[str], None]], str], verb: str,
             outcomes: list | None = None, probes: bool = True, while_opening: Callable[[], None] | None = None) -> int:
    """Run `work(host, echo)` on every chosen host at once; returns the exit code. `work`
    returns a one-line summary for the table. `outcomes` receives each host's HostResult.
    `probes`: False when `work` reads only the engine (open_entry). Hosts whose opening
    envctl/cli.py started before the command (envctl/remote/early_open.py) are taken from it;
    `while_opening()` is called on a host's thread when that host is still opening (its
    handshake: idle time, ~1 s at 50 ms), never when it is open already."""
    from envctl.remote import early_open

    early = early_open.take(options, probes)
    chosen = early.chosen(_warn) if early is not None else entries(options)
    width = max(len(e.name) for e in chosen)
    lock = threading.Lock()

    def run(entry) -> HostResult:
        started = early.started if early is not None else time.monotonic()  # a host's time includes its opening

        def echo(text: str) -> None:
            with lock:  # whole lines, each with its host, never interleaved with another host's
                for line in text.splitlines() or [""]:
                    say(f"{entry.name:<{width}}  {line}" if len(chosen) > 1 else line)

        try:
            if early is not None and while_opening is not None and not early.opened(entry):
                try:
                    while_opening()
                except Exception:  # noqa: BLE001  (time put to use, never the host's failure)
                    pass
            host = early.host(entry) if early is not None else open_entry(entry, options, probes)
            summary = work(host, echo)
            return HostResult(entry.name, True, summary, time.monotonic() - started)
        except EnvctlError as exc:
            message = exc.message.splitlines()[0] if exc.message else type(exc).__name__
            if len(chosen) == 1:
                raise
            echo(f"error: {exc.message}" + (f"\n  hint: {exc.hint}" if exc.hint else ""))
            return HostResult(entry.name, False, message, time.monotonic() - started, exc.exit_code)
        except Exception as exc:  # a bug on one host must not hide the others' results
            if len(chosen) == 1:
                raise
            echo(f"error: internal error: {exc!r}")
            return HostResult(entry.name, False, f"internal error: {exc!r}", time.monotonic() - started, 70)

    results = _each_on_a_thread(run, chosen)
    if outcomes is not None:
        outcomes.extend(results)
    if len(chosen) > 1:
        say("")
        say(f"{'host':<{width}}  {'result':<6}  {'time':>7}  {verb}")
        for r in results:
            say(f"{r.host:<{width}}  {'ok' if r.ok else 'FAILED':<6}  {r.seconds:6.1f}s  {r.summary}")
        failed = [r for r in results if not r.ok]
        say(f"{len(results) - len(failed)} of {len(results)} hosts succeeded")
        return EXIT_REMOTE_FAILED if failed else 0
    return 0


HOSTS_AT_ONCE = 16


def _each_on_a_thread(run: Callable, chosen: list) -> list:
    """`[run(entry) for entry in chosen]`, HOSTS_AT_ONCE at a time, each on a daemon thread; the
    first exception `run` raised, in `chosen`'s order, is raised here once all ended. Daemon
    threads, not a pool's: Ctrl-C (KeyboardInterrupt here, on the main thread) ends the command
    at once instead of waiting for the hosts' work, which stops starting anything new
    (envctl/interrupts.py)."""
    results: list = [None] * len(chosen)
    raised: list = [None] * len(chosen)
    turns = threading.Semaphore(HOSTS_AT_ONCE)

    def one(index: int, entry) -> None:
        with turns:
            try:
                results[index] = run(entry)
            except BaseException as exc:  # noqa: BLE001  (raised on the main thread below)
                raised[index] = exc

    threads = [threading.Thread(target=one, args=(i, entry), name=f"envctl-host-{entry.name}", daemon=True)
               for i, entry in enumerate(chosen)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for exc in raised:
        if exc is not None:
            raise exc
    return results


def each_host(options: RemoteOptions, work: Callable[[object, Callable[[str], None]], str], verb: str,
              outcomes: list | None = None, probes: bool = True, while_opening: Callable[[], None] | None = None) -> int:
    """Run `work(host, echo)` on this machine (a LocalHost) when no --host is given, else on
    every host named (on_hosts); the host is chosen here once, and `work` never asks which kind
    it got. Returns the exit code (errors on this machine are raised, as for one remote host)."""
    if options.wanted:
        return on_hosts(options, work, verb, outcomes, probes, while_opening)
    from envctl.cli_app import local_host

    work(local_host(), say)
    return 0


def with_host_cards(options: Options, host) -> Options:
    """--cards wins; else the inventory's cards for that host (a count or indices, read by
    envctl.cards when the inventory was loaded); else the manifest's."""
    if options.cards is not None or host.cards is None:
        return options
    return replace(options, cards=host.cards)
