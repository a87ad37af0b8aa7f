"""What the download tests share: a manifest of artifacts, envctl run as a user runs it, a port
nothing listens on, and a search of every output and file for a string that must not be there."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_manifest(tmp_path: Path, artifacts: str) -> Path:
    path = tmp_path / "m" / "manifest.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("name: downloads\ndescription: artifacts\ndevice: {kind: cpu}\nimage: {ref: x}\nartifacts:\n"
                    + textwrap.indent(textwrap.dedent(artifacts), "  "))
    return path


def envctl(tmp_path: Path, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m envctl ARGS` with this test's own cache and home, nothing from the user's."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ENVCTL_", "HF_"))}
    environ.update({"ENVCTL_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path / "home"), **(env or {})})
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, env=environ,
                          timeout=timeout)


def placed(out: str) -> dict[str, Path]:
    """`envctl fetch`'s stdout (NAME<TAB>PATH lines) as {name: path}."""
    return {line.split("\t")[0]: Path(line.split("\t")[1]) for line in out.splitlines() if "\t" in line}


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then closed: connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def files_containing(root: Path, secret: str) -> list[str]:
    """Every file under `root` whose bytes contain `secret` (as written or percent-encoded)."""
    needles = {secret.encode(), secret.replace("/", "%2F").encode()}
    hits = []
    for path in sorted(root.rglob("*")) if root.exists() else []:
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(n in data for n in needles):
                hits.append(str(path))
    return hits
