"""One remote test's world: envctl run as a user runs it, against the SSH lab's hosts, with its
own inventory, local cache and home (never the user's ~/.ssh or ~/.cache)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PREFIX = "rt-"  # manifests (and so containers) of remote tests


@dataclass
class World:
    lab: object
    base: Path
    name: str
    cleanups: list = field(default_factory=list)  # more to undo after the test

    @property
    def container(self) -> str:
        return f"envctl-{self.name}"

    @property
    def manifest(self) -> Path:
        return self.base / f"{self.name}.yaml"

    @property
    def inventory(self) -> Path:
        return self.base / "inventory.yaml"

    def data_dir(self) -> str:
        """envctl's directory on every lab host (in the host's private /root)."""
        return f"/root/envctl-{self.name}"

    def remote(self, host: str, path: str) -> Path:
        """Where a path on a lab host lies for this test process."""
        return self.lab.path(host, path)

    def write_inventory(self, **hosts) -> None:
        data = {"defaults": {"data_dir": self.data_dir(), "fetch": "push"},
                "hosts": {name: dict(settings) for name, settings in hosts.items()}}
        self.inventory.write_text(yaml.safe_dump(data))

    def write(self, body: str) -> Path:
        self.manifest.write_text(f"name: {self.name}\ndescription: remote test environment\n" + textwrap.dedent(body))
        return self.manifest

    @property
    def control_dir(self) -> Path:
        """This test's own SSH master connections (short: unix socket paths are limited)."""
        if not hasattr(self, "_control"):
            self._control = Path(tempfile.mkdtemp(prefix="ec-"))
        return self._control

    def environ(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
        env.update(HOME=str(self.base / "home"), ENVCTL_CACHE=str(self.base / "cache"),
                   ENVCTL_SSH_CONTROL_DIR=str(self.control_dir),
                   ENVCTL_WORKSPACE=str(self.base / "workspaces"), ENVCTL_SSH_CONFIG=str(self.lab.ssh_config),
                   ENVCTL_INVENTORY=str(self.inventory))
        env.update(extra)
        return env

    def run(self, *args, env=None, timeout=300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True,
                              env=env or self.environ(), timeout=timeout)

    def popen(self, *args) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "envctl", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.environ())

    def containers(self, host: str) -> list[str]:
        out = self.lab.docker(host, "ps", "-a", "--filter", f"name=^{self.container}$", "--format", "{{.Names}} {{.State}}")
        return out.stdout.split("\n")[:-1] if out.stdout else []

    def close_connections(self) -> None:
        """End the master connections envctl left (they persist a while for the next command)."""
        for socket in self.control_dir.iterdir():
            if socket.name.startswith("docker-"):
                continue  # a forwarded Docker socket, not a master
            subprocess.run(["ssh", "-S", str(socket), "-O", "exit", "lab"], capture_output=True, timeout=30)

    def clean(self) -> None:
        """Remove what this test created on every lab host (containers, its data directory)."""
        for undo in self.cleanups:
            undo()
        self.close_connections()
        shutil.rmtree(self.control_dir, ignore_errors=True)
        for host in self.lab.names:
            self.lab.docker(host, "rm", "-f", self.container)
            self.lab.run_in(host, "rm", "-rf", self.data_dir())
