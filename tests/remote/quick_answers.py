"""Running envctl as typed or on its full path (ENVCTL_NO_QUICK=1) and telling which path
answered, for the tests of the quick paths over SSH (test_quick_status_remote.py,
test_quick_up_remote.py): `python -X importtime` reports every module imported, and the full path
imports typer's app (envctl.cli_app) while a quick path does not. Never timings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field

from envctl.remote import live_master


@dataclass(frozen=True)
class Said:
    code: int
    stdout: str
    stderr: str  # without -X importtime's lines
    quick: bool  # typer's app was not imported
    modules: frozenset = field(compare=False)

    @property
    def output(self) -> tuple:
        return self.code, self.stdout, self.stderr


def envctl(world, *args, quick: bool = True, **extra) -> Said:
    """`envctl ARGS` in the test's world (`extra`: more environment variables); `quick=False`
    takes the full path."""
    environ = world.environ(**extra)
    if not quick:
        environ["ENVCTL_NO_QUICK"] = "1"
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "envctl", *args], capture_output=True, text=True,
                          errors="replace", env=environ, timeout=300)
    lines = done.stderr.splitlines(keepends=True)
    modules = {line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")}
    assert modules, done.stderr[-2000:]
    return Said(done.returncode, done.stdout, "".join(line for line in lines if not line.startswith("import time:")),
                "envctl.cli_app" not in modules, frozenset(modules))


def master_socket(world, destination: str = "lab1") -> str:
    """The control socket of envctl's master connection to `destination` in the test's world."""
    return os.path.join(str(world.control_dir), live_master.control_name(destination, str(world.lab.ssh_config)))


def forwarded_socket(world, destination: str = "lab1") -> str:
    """The local end of the host's engine socket forwarded over the master."""
    with open(master_socket(world, destination) + ".facts") as facts:
        engine = json.load(facts)["docker_host"][len("unix://"):]
    return os.path.join(str(world.control_dir), live_master.forward_name(destination, str(world.lab.ssh_config), engine))
