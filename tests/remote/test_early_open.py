"""`up`/`plan NAME --host H` open their hosts while envctl starts (envctl/remote/early_open.py):
the same hosts, opened once, with the same output and errors as the command's own opening
(ENVCTL_NO_QUICK=1 turns the early opening off, so each test compares the two)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading

import pytest

OFF = {"ENVCTL_NO_QUICK": "1"}


def _lines(trace, kinds=("session ", "connection ")) -> list[str]:
    lines = trace.read_text().splitlines() if trace.exists() else []
    trace.write_text("")
    return [line for line in lines if line.startswith(kinds)]


def _manifest(world):
    return world.write("device: {kind: cpu}\nimage: {ref: busybox:envctl-absent}\n")


def test_the_opening_starts_before_the_manifest_is_read(world, tmp_path):
    """A manifest that is not there: the early opening had already connected (its one
    session); the command's own opening, after the manifest, never starts."""
    trace = tmp_path / "trace"
    missing = str(tmp_path / "missing.yaml")
    early = world.run("up", missing, "--host", "lab1", env=world.environ(ENVCTL_SSH_TRACE=str(trace)))
    world.close_connections()
    assert early.returncode == 4 and "no manifest file" in early.stderr, early.stderr
    opened = _lines(trace)
    off = world.run("up", missing, "--host", "lab1", env=world.environ(ENVCTL_SSH_TRACE=str(trace), **OFF))
    assert (off.returncode, off.stderr) == (early.returncode, early.stderr)
    assert _lines(trace) == []
    # The opening can end with the command (a daemon thread) before or after it sent the probe
    # round; when it did, that is the only ssh command.
    assert len(opened) <= 1


def test_the_command_line_opens_its_hosts_before_anything_else_and_the_command_takes_them(world, tmp_path,
                                                                                        monkeypatch):
    """What envctl/cli.py main starts before typer: the host opened (its facts and probe round:
    one ssh command) with no manifest read, handed once to the command with these options."""
    from envctl import cli
    from envctl.remote import early_open
    from envctl.remote.hosts_open import RemoteOptions

    trace = tmp_path / "trace"
    for key, value in world.environ(ENVCTL_SSH_TRACE=str(trace)).items():
        monkeypatch.setenv(key, value)
    world.close_connections()
    monkeypatch.setattr(early_open, "_started", [])
    cli._open_hosts_early(["up", "no-such-manifest", "--host", "lab1"])
    options = RemoteOptions(("lab1",), None, None, None)
    assert early_open.take(options, probes=False) is None  # status's kind of opening: not this one
    opening = early_open.take(options, probes=True)
    assert opening is not None and early_open.take(options, probes=True) is None  # handed out once
    entry, = opening.chosen(warn=pytest.fail)
    host = opening.host(entry)
    assert (entry.name, host.name, host.data_dir) == ("lab1", "lab1", world.data_dir())
    assert [line.split(" ")[:2] for line in _lines(trace)] == [["session", "lab1"]]
    cli._open_hosts_early(["up", "m", "--host", "lab1", "--dry-run"])  # a form parse leaves to the command
    assert early_open._started == []


def test_the_opening_asks_the_engines_api_version_so_the_commands_client_asks_nothing_to_start(
        world, lab, tmp_path, monkeypatch):
    """The opening asks the engine's /version (SSHHost.ask_api_version); the command's docker-py
    client is then built with that API version: no /version of its own before the plan's first
    request (docker-py's APIClient asks it when given none), only a ping on a thread of its own
    that opens its connection. Counted where every docker-py request
    goes (requests' HTTPAdapter.send); the version is the engine's, and the client's requests
    are answered at it."""
    from support import count_docker_py_requests

    from envctl import cli
    from envctl.remote import early_open
    from envctl.remote.hosts_open import RemoteOptions

    for key, value in world.environ(ENVCTL_SSH_TRACE=str(tmp_path / "trace")).items():
        monkeypatch.setenv(key, value)
    sent = count_docker_py_requests(monkeypatch, keep_version=True)
    wanted = lab.docker("lab1", "version", "--format", "{{.Server.APIVersion}}").stdout.strip()
    for fresh in (True, False):  # a new master (the facts asked), then the live one (remembered)
        if fresh:
            world.close_connections()
        monkeypatch.setattr(early_open, "_started", [])
        cli._open_hosts_early(["plan", "no-such-manifest", "--host", "lab1"])
        opening = early_open.take(RemoteOptions(("lab1",), None, None, None), probes=True)
        entry, = opening.chosen(warn=pytest.fail)
        engine = opening.host(entry).engine()
        # Its connection is opened beside, by a ping on a thread of its own (that /version's
        # connection had served the requests after it): waited for here.
        for thread in threading.enumerate():
            if thread.name == "envctl-engine-lab1":
                thread.join(timeout=30)
        assert engine.raw.api.api_version == wanted and sent == [f"GET /v{wanted}/_ping"], (sent, wanted)
        assert isinstance(engine.raw.api.containers(all=True), list)
        assert sent[1:] == [f"GET /v{wanted}/containers/json"], sent
        sent.clear()


def test_an_engine_that_does_not_answer_the_early_question_is_said_so_by_the_command(world, monkeypatch):
    """The early /version unanswered (no engine at the host's socket): the client asks it
    itself, and the command says what it always said of such a host."""
    from envctl.cli_remote import RemoteOptions, single_target
    from envctl.errors import HostNotReady

    for key, value in world.environ().items():
        monkeypatch.setenv(key, value)
    host = single_target(RemoteOptions(("lab1",), None, None, None))
    host.docker_socket = "/run/envctl-no-engine-here.sock"
    host.ask_api_version()
    with pytest.raises(HostNotReady) as raised:
        host.engine()
    assert raised.value.message.startswith("lab1: the Docker engine at /run/envctl-no-engine-here.sock does not answer")


@pytest.mark.parametrize("command", [("status",), ("exec", "hello"), ("up", "MANIFEST")])
def test_an_engine_that_hangs_is_said_so_in_seconds(world, command):
    """The host's dockerd stopped (SIGSTOP): it accepts connections and never answers. Each
    command's full path says so once the engine was silent for engine_socket.TIMEOUT, not after
    docker-py's 300 s (status, exec: whose client asked /version itself)."""
    import os
    import signal

    manifest = world.write("device: {kind: cpu}\nimage: {ref: busybox:envctl-absent}\nentrypoints:\n  hello: {run: 'true'}\n")
    argv = [str(manifest) if word == "MANIFEST" else word for word in command]
    dockerd = world.lab._processes["lab1", "dockerd"].pid
    os.kill(dockerd, signal.SIGSTOP)
    try:
        # Within 100 s or TimeoutExpired: docker-py's own wait for /version would be 300 s.
        done = world.run(*argv, "--host", "lab1", env=world.environ(**OFF), timeout=100)
    finally:
        os.kill(dockerd, signal.SIGCONT)
    assert done.returncode == 5, done.stderr
    assert "lab1: the Docker engine at " in done.stderr and "does not answer (no answer to GET /version in 10 s)" \
        in done.stderr, done.stderr


def test_ctrl_c_while_the_early_question_reconnects_leaves_no_threads_traceback(world, monkeypatch):
    """Ctrl-C while the early question forwards the engine's socket: its ssh dies of the SIGINT,
    forward_socket connects again and that raises KeyboardInterrupt on the question's thread
    (interrupts.check, before any new ssh command), which Python would print as the thread's
    traceback. The question gives up (docker-py asks, as without it); the main thread says the
    interruption. Here the master ended (the forward fails) after Ctrl-C was pressed."""
    import threading

    from envctl import interrupts
    from envctl.cli_remote import RemoteOptions, single_target

    for key, value in world.environ().items():
        monkeypatch.setenv(key, value)
    host = single_target(RemoteOptions(("lab1",), None, None, None))
    world.close_connections()
    raised = []
    monkeypatch.setattr(threading, "excepthook", lambda hooked: raised.append(hooked.exc_type))
    monkeypatch.setattr(interrupts, "_interrupted", threading.Event())
    interrupts._interrupted.set()
    host.ask_api_version()
    assert host._api_version.result() is None
    for thread in threading.enumerate():
        if thread.name == "envctl-api-version-lab1":
            thread.join()
    assert raised == [], raised


def test_each_host_is_opened_once_and_the_output_is_the_commands_own(world, tmp_path):
    manifest = _manifest(world)
    trace = tmp_path / "trace"
    runs = {}
    for label, extra in (("early", {}), ("off", OFF)):
        world.close_connections()  # each from a fresh master: the handshake and facts too
        done = world.run("plan", str(manifest), "--host", "lab1", "--host", "lab2",
                         env=world.environ(ENVCTL_SSH_TRACE=str(trace), **extra))
        # Lines sorted: the hosts' plans are printed in the order they were made; each host's
        # seconds in the summary left out.
        stderr = re.sub(r"  +[0-9.]+s  ", "  SECONDS  ", done.stderr)
        runs[label] = (done.returncode, sorted(done.stdout.splitlines()), sorted(stderr.splitlines()),
                       sorted(_lines(trace)))
    early, off = runs["early"], runs["off"]
    assert early[:3] == off[:3], (early, off)
    assert early[0] == 5 and "# lab1" in early[1] and "# lab2" in early[1]  # the image is absent: not ready
    # The same ssh commands on the hosts (their arguments name the same paths), one opening each.
    assert [line.split(" @")[0] for line in early[3]] == [line.split(" @")[0] for line in off[3]]
    assert sum(1 for line in early[3] if "HOME" in line) == 2  # each host's facts read once


def test_the_selections_warning_and_an_inventory_error_are_said_as_the_command_says_them(world, tmp_path):
    manifest = _manifest(world)
    world.inventory.write_text(world.inventory.read_text() + "groups: {labs: [lab1, lab2]}\n")
    # "lab" is close to the group "labs": warned, and used as an SSH destination (lab's ssh
    # config has no such host: the connection fails as the command's own would).
    said = [world.run("plan", str(manifest), "--host", "lab", env=world.environ(**extra)) for extra in ({}, OFF)]
    assert (said[0].returncode, said[0].stdout, said[0].stderr) == (said[1].returncode, said[1].stdout, said[1].stderr)
    assert said[0].stderr.count("is not a host or group of") == 1, said[0].stderr
    # A warning, then an error of the same selection (a bad range): the warning is said first,
    # as the command's own selection says it (the early one once kept it with its error).
    both = [world.run("plan", str(manifest), "--host", "lab", "--host", "lab[3-1]", env=world.environ(**extra))
            for extra in ({}, OFF)]
    assert (both[0].returncode, both[0].stdout, both[0].stderr) == (both[1].returncode, both[1].stdout, both[1].stderr)
    assert both[0].returncode == 2 and both[0].stderr.index("is not a host or group of") < \
        both[0].stderr.index("counts down"), both[0].stderr
    world.inventory.write_text("hosts: {lab1: {fetch: teleport}}\n")
    broken = [world.run("up", str(manifest), "--host", "lab1", env=world.environ(**extra)) for extra in ({}, OFF)]
    assert (broken[0].returncode, broken[0].stderr) == (broken[1].returncode, broken[1].stderr)
    assert broken[0].returncode != 0 and "teleport" in broken[0].stderr and "Traceback" not in broken[0].stderr


def test_a_command_that_ends_early_does_not_wait_for_a_host_that_does_not_answer(world, tmp_path):
    """The opening's threads are daemons: an invalid manifest is reported and envctl exits while
    the connection to a host that never answers is still being made (here a ProxyCommand that
    sends nothing for 120 s, within a ConnectTimeout longer than that; a non-daemon thread would
    hold the exit until then)."""
    config = tmp_path / "ssh_config"
    config.write_text(f"Host silent\n  ProxyCommand sleep 120\n  ConnectTimeout 300\n  StrictHostKeyChecking yes\n\n"
                      f"Include {world.lab.ssh_config}\n")
    invalid = world.write("device: {kind: cpu}\nimage: {ref: busybox:1, bogus_key: 1}\n")
    env = world.environ(ENVCTL_SSH_CONFIG=str(config))
    try:
        done = subprocess.run([sys.executable, "-m", "envctl", "up", str(invalid), "--host", "silent"],
                              capture_output=True, text=True, env=env, timeout=60)
    finally:
        subprocess.run(["pkill", "-f", "^sleep 120$"], capture_output=True)
    assert done.returncode == 3 and "bogus_key" in done.stderr, done.stderr


def _run_watched(world, watch: str, *args, env=None) -> subprocess.CompletedProcess:
    """envctl ARGS run as `python -m envctl` runs it, with `watch` (the body of an audit hook,
    given `event`, `args` and `threading`) installed first."""
    program = ("import sys, threading\n"
               "def hook(event, args):\n" + "".join(f"    {line}\n" for line in watch.splitlines()) +
               "sys.addaudithook(hook)\n"
               "sys.argv = ['envctl', *sys.argv[1:]]\n"
               "from envctl.cli import main\n"
               "main()\n")
    return subprocess.run([sys.executable, "-c", program, *args], capture_output=True, text=True,
                          env=env or world.environ(), timeout=120)


def test_the_openings_threads_import_nothing_the_command_may_be_importing_at_once(world, lab):
    """Every module the opening uses is imported before its threads start (early_open.start):
    a module a thread imports while the command imports it too can end in "deadlock detected by
    _ModuleLock" (envctl.devices: the package first on the opening's thread, envctl.devices.base
    first on the command's). Printed here: each module loaded on an opening's thread. A fresh
    host, one whose master and facts are remembered, and one whose host key is unknown."""
    manifest = _manifest(world)
    watch = ('if event == "import" and threading.current_thread().name.startswith(\n'
             '        ("envctl-open-", "envctl-early-open", "envctl-api-version-", "envctl-engine-")):\n'
             '    print("loaded on", threading.current_thread().name, args[0], file=sys.stderr)')
    world.close_connections()
    fresh = _run_watched(world, watch, "plan", str(manifest), "--host", "lab1")
    remembered = _run_watched(world, watch, "plan", str(manifest), "--host", "lab1")
    lab.forget_host_key("lab2")
    refused = _run_watched(world, watch, "plan", str(manifest), "--host", "lab1,lab2")
    assert (fresh.returncode, remembered.returncode, refused.returncode) == (5, 5, 7), refused.stderr
    assert "is not known" in refused.stderr
    for done in (fresh, remembered, refused):
        assert "loaded on" not in done.stderr, done.stderr


def test_ctrl_c_while_envctl_starts_ends_it_as_the_commands_own_ctrl_c(world):
    """Ctrl-C (here: KeyboardInterrupt raised where typer is imported, after the opening started)
    exits 130 with nothing printed, as a Ctrl-C in the command does; never a traceback."""
    manifest = _manifest(world)
    watch = 'if event == "import" and args[0] == "typer":\n    raise KeyboardInterrupt'
    for extra in ({}, OFF):
        done = _run_watched(world, watch, "up", str(manifest), "--host", "lab1", env=world.environ(**extra))
        assert (done.returncode, done.stdout, done.stderr) == (130, "", ""), done.stderr


def test_a_command_that_stops_before_its_hosts_records_no_host_key(world, lab):
    """`up INVALID --host H --accept-host-key FP` of a host whose key is not known: the manifest
    stops the command (exit 3), and known_hosts is as it was, as with ENVCTL_NO_QUICK=1 (an
    early opening recorded the key, then was never taken)."""
    invalid = world.write("device: {kind: cpu}\nimage: {ref: busybox:1, bogus_key: 1}\n")
    lab.forget_host_key("lab2")
    before = lab.known_hosts.read_text()
    said = [world.run("up", str(invalid), "--host", "lab2", "--accept-host-key", lab.fingerprint("lab2"),
                      env=world.environ(**extra)) for extra in ({}, OFF)]
    assert (said[0].returncode, said[0].stderr) == (said[1].returncode, said[1].stderr)
    assert said[0].returncode == 3 and "bogus_key" in said[0].stderr, said[0].stderr
    assert lab.known_hosts.read_text() == before
