"""The quick path of `up NAME --host H` (envctl/quick_up.py, envctl/quick_up_remote.py,
envctl/quick_up_record.py) at its edges: an inventory edited while the recorded `up` waited, a slow
host, Ctrl-C, an ssh config whose Include is broken, a user who cannot write /dev. In each the
quick answer could differ from what the full path (ENVCTL_NO_QUICK=1) prints or does. Which path
answered is read as tests/remote/quick_answers.py reads it (typer's app imported or not). Never
timings."""

from __future__ import annotations

import fcntl
import glob
import json
import os
import signal
import subprocess
import sys
import time

import yaml

from test_quick_up_remote import brought_up, config, envctl, tarball  # noqa: F401  (config, tarball: fixtures)


def _lock_file(world) -> str:
    """The environment's lock on this machine (a full `up` takes it while it acts on the container)."""
    return str(world.base / "cache" / "locks" / "lab1" / f"{world.container}.lock")


def _waiting_on_flock(pid: int) -> bool:
    with open("/proc/locks") as locks:
        return any("->" in line and " FLOCK " in line and f" {pid} " in line for line in locks)


def test_an_inventory_edited_while_the_recorded_up_ran_is_not_recorded_as_what_it_planned_with(
        world, lab, tarball, config):
    """The full `up` opens its host from the inventory before the recording starts
    (envctl/remote/early_open.py). An inventory edited while that `up` runs (here: while it waits
    for the environment's lock another `up` holds) must not be recorded as the bytes its plan rested
    on: the next `up` would answer from the old data_dir's cache entry, where the full path sends
    the artifact to the new one."""
    path, said = brought_up(world, tarball, config)
    lock = open(_lock_file(world), "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        running = subprocess.Popen([sys.executable, "-m", "envctl", "up", path, "--host", "lab1"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=world.environ())
        deadline = time.monotonic() + 120  # a bound on waiting, not an assertion on time
        while not _waiting_on_flock(running.pid):
            assert running.poll() is None and time.monotonic() < deadline, running.communicate()
            time.sleep(0.05)
        inventory = yaml.safe_load(world.inventory.read_text())
        inventory["hosts"]["lab1"] = {"data_dir": world.data_dir() + "-moved"}
        world.inventory.write_text(yaml.safe_dump(inventory))
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    out, err = running.communicate(timeout=300)
    assert (running.returncode, out, err) == said.output  # planned with the inventory it read first
    world.cleanups.append(lambda: lab.run_in("lab1", "rm", "-rf", world.data_dir() + "-moved"))
    answer = envctl(world, "up", path, "--host", "lab1")
    assert not answer.quick and "artifact   config: sent on lab1\n" in answer.stderr, answer


def _traced_up(world, tarball, config, trace) -> tuple[str, object]:
    """The environment up on lab1 and a quick answer to `up MANIFEST --host lab1`, every command
    with ENVCTL_SSH_TRACE=trace (part of the record's key, so set throughout)."""
    from test_quick_up_remote import manifest

    path = manifest(world, tarball, config)
    made = envctl(world, "up", path, "--host", "lab1", ENVCTL_SSH_TRACE=trace)
    assert made.code == 0, made
    for _ in range(2):
        said = envctl(world, "up", path, "--host", "lab1", ENVCTL_SSH_TRACE=trace)
    assert said.quick and said.code == 0, said
    return path, said


def _replays_left(world) -> list[str]:
    """ssh processes of this test's control directory other than the masters (their command
    lines are `ssh: PATH [mux]`): a command replayed through a master and left running."""
    left = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                words = cmdline.read().split(b"\0")
        except OSError:
            continue
        if words and words[0] == b"ssh" and any(str(world.control_dir).encode() in word for word in words):
            left.append(" ".join(w.decode(errors="replace") for w in words)[:200])
    return left


def test_a_slow_host_is_left_to_the_full_path_and_ctrl_c_in_the_quick_path_exits_130(world, lab, tarball, config):
    """A host whose answers take longer than the quick path waits (quick_up_remote.SILENCE): the
    full path answers, the same. Ctrl-C while the quick path waits for the replayed commands: exit
    130, no traceback, no replayed ssh left running, though SIGINT was inherited ignored."""
    trace = str(world.base / "trace")
    path, said = _traced_up(world, tarball, config, trace)
    lab.set_delay("lab1", 1000)  # a round trip of about 2 s: the engine's answer alone takes two
    slow = envctl(world, "up", path, "--host", "lab1", ENVCTL_SSH_TRACE=trace)
    assert not slow.quick and slow.output == said.output, slow
    open(trace, "w").close()
    # Started with SIGINT ignored, as a background job of a script inherits it (and CI's jobs
    # may): envctl takes Ctrl-C as its own all the same (envctl/cli.py), the quick path too.
    running = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "envctl", "up", path, "--host", "lab1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=world.environ(ENVCTL_SSH_TRACE=trace),
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + 60  # a bound on waiting, not an assertion on time
    while not open(trace).read():  # the quick path's first replayed command is under way
        assert running.poll() is None and time.monotonic() < deadline, running.communicate()
        time.sleep(0.02)
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=60)
    assert "envctl.cli_app" not in err, err[-3000:]  # interrupted in the quick path
    lines = [line for line in err.splitlines() if not line.startswith("import time:")]
    assert running.returncode == 130 and "Traceback" not in err and out == "", (running.returncode, out, lines)
    assert _replays_left(world) == []


def test_an_ssh_config_file_it_includes_broken_is_left_to_the_full_path(world, lab, tarball, config):
    """The ssh config given names its hosts in a file it includes (Include: a common layout,
    ~/.ssh/config.d/*). The full path reads the config again with `ssh -G` for every command and
    stops when ssh refuses it; the quick path must not answer that world."""
    from test_quick_up_remote import manifest

    included = world.base / "ssh_config.d" / "lab"
    included.parent.mkdir()
    included.write_text(lab.ssh_config.read_text())
    main = world.base / "ssh_config"
    main.write_text(f"Include {included.parent}/*\n")
    env = {"ENVCTL_SSH_CONFIG": str(main)}
    path = manifest(world, tarball, config)
    assert envctl(world, "up", path, "--host", "lab1", **env).code == 0
    for _ in range(2):
        said = envctl(world, "up", path, "--host", "lab1", **env)
    assert said.quick and said.code == 0, said
    with open(included, "a") as out:
        out.write("Host lab1\n  NoSuchOption yes\n")
    full = envctl(world, "up", path, "--host", "lab1", quick=False, **env)
    assert full.code != 0, full
    answer = envctl(world, "up", path, "--host", "lab1", **env)
    assert answer.output == full.output and not answer.quick, answer



def test_the_record_asks_no_user_to_write_dev(world, lab, tarball, config):
    """ssh is started with /dev/null on stdin (subprocess.DEVNULL opens it read-write): no file the
    command writes. Recorded as one, its directory /dev became a "parent" that the quick path
    requires writable (quick_up._Writable: os.access W_OK), which /dev is for root alone: for any
    other user `up NAME --host H` was never answered quickly."""
    brought_up(world, tarball, config)
    records = glob.glob(str(world.base / "cache/state/quick-up/*.json"))
    assert len(records) == 1, records
    with open(records[0]) as kept:
        written = json.load(kept)["written"]
    assert [path for path in written if path == "/dev" or path.startswith("/dev/")] == [], written
