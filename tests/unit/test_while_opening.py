"""`up --host` loads a transfer's display (rich) while a server's handshake runs, and only then
(envctl/cli_remote.py on_hosts's while_opening, envctl/progress.py load_display): a host whose
connection is open already is worked on at once."""

import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from envctl import cli_remote
from envctl.remote import early_open
from envctl.remote.hosts_open import RemoteOptions


@dataclass(frozen=True)
class Entry:
    name: str


class Opening:
    """As early_open.Opening: the hosts chosen, each opened already or still opening."""

    def __init__(self, names, opened: bool, calls: list):
        self.started = time.monotonic()
        self.entries = [Entry(n) for n in names]
        self._opened, self.calls = opened, calls

    def chosen(self, warn):
        return self.entries

    def opened(self, entry) -> bool:
        return self._opened

    def host(self, entry):
        self.calls.append(f"host {entry.name}")
        return entry.name


OPTIONS = RemoteOptions(("lab1",), None, None, None)


def run(monkeypatch, opening, calls) -> int:
    monkeypatch.setattr(early_open, "take", lambda options, probes: opening)
    monkeypatch.setattr(cli_remote, "open_entry", lambda entry, options, probes: calls.append(f"open {entry.name}"))
    return cli_remote.on_hosts(OPTIONS, lambda host, echo: calls.append(f"work {host}") or "done", "up x",
                               while_opening=lambda: calls.append("while opening"))


def test_a_host_still_opening_gets_the_wait_used_before_it_is_waited_for(monkeypatch):
    calls: list = []
    assert run(monkeypatch, Opening(["lab1"], opened=False, calls=calls), calls) == 0
    assert calls == ["while opening", "host lab1", "work lab1"]


def test_what_fails_while_waiting_never_fails_the_host(monkeypatch):
    calls: list = []
    monkeypatch.setattr(early_open, "take", lambda options, probes: Opening(["lab1"], opened=False, calls=calls))

    def failing() -> None:
        raise ImportError("no module named rich")

    code = cli_remote.on_hosts(OPTIONS, lambda host, echo: calls.append(f"work {host}") or "done", "up x",
                               while_opening=failing)
    assert code == 0 and calls == ["host lab1", "work lab1"]


def test_a_host_opened_already_is_worked_on_at_once(monkeypatch):
    calls: list = []
    assert run(monkeypatch, Opening(["lab1"], opened=True, calls=calls), calls) == 0
    assert calls == ["host lab1", "work lab1"]


def test_a_host_the_command_opens_itself_is_not_waited_for_idly(monkeypatch):
    """No early opening (a form early_open does not read): open_entry runs on the host's thread
    at once; nothing is loaded beside it."""
    calls: list = []
    monkeypatch.setattr(cli_remote, "entries", lambda options: [Entry("lab1")])
    assert run(monkeypatch, None, calls) == 0
    assert calls == ["open lab1", "work None"]


@pytest.mark.parametrize("twice", [False, True])
def test_load_display_imports_rich_once_and_importing_progress_does_not(twice):
    code = ("import sys, envctl.progress as p; assert 'rich.progress' not in sys.modules; "
            f"p.load_display(); {'p.load_display(); ' if twice else ''}"
            "assert 'rich.progress' in sys.modules and 'rich.console' in sys.modules; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
