"""envctl/remote/command_log.py: which commands an `up --host` ran make a record the quick path
may replay (`reads`), and quick_up.answered_form: which command lines the quick path answers and
a full `up` records. The lab runs both paths: tests/remote/test_quick_up_remote.py."""

from __future__ import annotations

import hashlib

import pytest

from envctl.quick_up import answered_form
from envctl.remote import command_log

PROBE = ("ssh", "-o", "ControlPath=/tmp/ec/m", "-T", "lab1", "--", "sh -c probe")
RECORD = ("ssh", "-o", "ControlPath=/tmp/ec/m", "-T", "lab1", "--", "sh -c 'cat record.json'")
PUSH = ("ssh", "-o", "ControlPath=/tmp/ec/m", "-T", "lab1", "--", "sh -c 'cat > blob'")


@pytest.fixture(autouse=True)
def fresh_log():
    command_log.forget()
    yield
    command_log.forget()


def ran(argv, stdout=b"out", stderr: bytes | None = b"", returncode=0, given=None, reads_only=True) -> None:
    command_log.built(argv, reads_only)
    command_log.answered(argv, given, returncode, stdout, stderr)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_reads_answered_each_once_are_the_record_with_their_digests():
    ran(PROBE, stdout=b"m\0listing\0", stderr=None)
    ran(RECORD, stdout=b"{}", stderr=b"warning\n", returncode=1)
    assert command_log.reads() == [
        command_log.Answer(PROBE, 0, sha(b"m\0listing\0"), None),
        command_log.Answer(RECORD, 1, sha(b"{}"), sha(b"warning\n")),
    ]


def test_nothing_ran_is_an_empty_record():
    assert command_log.reads() == []


def test_a_command_that_may_change_the_host_makes_no_record():
    ran(PROBE)
    ran(PUSH, reads_only=False)
    assert command_log.reads() is None


def test_a_command_built_to_change_the_host_and_never_run_makes_no_record_either():
    ran(PROBE)
    command_log.built(PUSH, False)
    assert command_log.reads() is None


def test_a_command_given_bytes_on_stdin_makes_no_record():
    """Bytes on stdin are not kept (they may be secrets), so such a command cannot be asked again."""
    ran(RECORD, given=b"token")
    assert command_log.reads() is None


def test_empty_stdin_is_no_input():
    """SSHConnection._raw hands b"" to every command it runs without input."""
    ran(RECORD, given=b"")
    ran(PROBE, given=None)
    assert [answer.argv for answer in command_log.reads()] == [RECORD, PROBE]


def test_a_command_built_and_never_answered_makes_no_record():
    """Its output was read as it streamed, or never: what the plan rested on is unknown."""
    ran(PROBE)
    command_log.built(RECORD, True)
    assert command_log.reads() is None


def test_a_background_probe_round_never_answered_counts_for_nothing():
    command_log.built(PROBE, True)
    command_log.read_only_if_answered(PROBE)
    ran(RECORD)
    assert [answer.argv for answer in command_log.reads()] == [RECORD]


def test_a_background_probe_round_answered_is_in_the_record():
    command_log.built(PROBE, True)
    command_log.read_only_if_answered(PROBE)
    command_log.answered(PROBE, None, 0, b"listing", None)
    assert command_log.reads() == [command_log.Answer(PROBE, 0, sha(b"listing"), None)]


def test_read_only_if_answered_does_not_excuse_a_command_that_may_change_the_host():
    command_log.built(PUSH, False)
    command_log.read_only_if_answered(PUSH)
    assert command_log.reads() is None


@pytest.mark.parametrize("second", [
    {"stdout": b"other"},  # the host changed between the two
    {"returncode": 1},
    {"stderr": b"warning\n"},
    {"stderr": None},  # read once with stderr, once without: not one answer to compare against
])
def test_one_command_answered_two_ways_makes_no_record(second):
    ran(RECORD, stdout=b"same", stderr=b"")
    ran(RECORD, **{"stdout": b"same", "stderr": b"", **second})
    assert command_log.reads() is None


def test_one_command_answered_the_same_twice_is_kept_once():
    ran(RECORD, stdout=b"same")
    ran(PROBE)
    ran(RECORD, stdout=b"same")
    assert command_log.reads() == [command_log.Answer(RECORD, 0, sha(b"same"), sha(b"")),
                                   command_log.Answer(PROBE, 0, sha(b"out"), sha(b""))]


def test_forget_starts_over():
    ran(PUSH, reads_only=False, given=b"bytes")
    command_log.built(PROBE, True)
    command_log.read_only_if_answered(PROBE)
    assert command_log.reads() is None
    command_log.forget()
    assert command_log.reads() == []
    command_log.built(PROBE, True)  # no longer excused: the earlier read_only_if_answered is forgotten
    assert command_log.reads() is None


@pytest.mark.parametrize("args", [
    ["up", "dev"],
    ["up", "dev", "--host", "lab1"],
    ["up", "dev", "-H", "lab1"],
    ["up", "dev", "--hosts", "lab1"],
    ["up", "./dev.yaml", "--host", "user@box"],
    ["up", "dev", "--host", "pair"],  # a group is one word: the recording finds it names two hosts
])
def test_the_forms_answered(args):
    assert answered_form(args)


@pytest.mark.parametrize("args", [
    [],
    ["up"],
    ["status", "dev"],
    ["plan", "dev", "--host", "lab1"],
    ["up", "-"],
    ["up", "--force"],
    ["up", ""],
    ["up", "dev", "--host"],
    ["up", "dev", "--host=lab1"],
    ["up", "dev", "--host", "lab1,lab2"],
    ["up", "dev", "--host", "lab1,"],
    ["up", "dev", "--host", ""],
    ["up", "dev", "--host", "--dry-run"],
    ["up", "dev", "--dry-run", "lab1"],
    ["up", "dev", "lab1", "--host"],
    ["up", "--host", "lab1", "dev"],
    ["up", "-H", "lab1", "dev"],
    ["up", "dev", "--host", "lab1", "--dry-run"],
    ["up", "dev", "--host", "lab1", "--host", "lab2"],
    ["up", "dev", "--ssh-config", "cfg"],
    ["up", "dev", "extra"],
])
def test_other_forms_are_the_full_paths(args):
    assert not answered_form(args)


SESSION = ("ssh", "-o", "ControlPath=/tmp/ec/m", "-T", "lab1", "--", "sh -c 'read arguments; docker exec ...'")


def test_the_runs_session_is_kept_apart_from_the_reads():
    """exec's HostSession: built, its output streamed and never answered here; not a read."""
    ran(PROBE)
    command_log.built(SESSION, True)
    assert command_log.reads() is None  # built and never answered: unusable, until said to be the run's
    command_log.session(SESSION)
    assert command_log.reads() == [command_log.Answer(PROBE, 0, sha(b"out"), sha(b""))]
    assert command_log.sessions() == [SESSION]
    command_log.forget()
    assert command_log.sessions() == []
