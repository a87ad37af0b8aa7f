"""A hub (Hugging Face, ModelScope models and datasets) that cannot be reached is said as the
network failing, naming the host, as git sources say it (git_errors.py): a host name that does
not resolve (RFC 6761 reserves .invalid so that it never does, online or not), a loopback port
where nothing listens (refused), a loopback server that accepts and closes at once (dropped).
Each through the hub's real client (requests for ModelScope, huggingface_hub's for HF) and
through `envctl fetch`, with no class name or errno text in its place."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from envctl.artifacts import hf, modelscope
from envctl.artifacts.download import FetchError
from envctl.artifacts.sources import parse_source

SOURCES = ["hf://Qwen/Qwen2.5-7B-Instruct@main", "hf://datasets/tatsu-lab/alpaca@main",
           "modelscope://Qwen/Qwen2.5-7B-Instruct@master",
           "modelscope://datasets/AI-ModelScope/alpaca-gpt4-data-zh@master"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed when the block ends: nothing listens there


class _Dropper:
    """Accepts each connection and closes it without a byte of answer."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            connection.recv(65536)
            connection.close()


def _resolve(source: str, endpoint: str):
    parsed = parse_source(source)
    if source.startswith("hf://"):
        return hf.resolve(parsed, {"HF_ENDPOINT": endpoint})
    return modelscope.resolve(parsed, {"MODELSCOPE_ENDPOINT": endpoint})


@pytest.mark.parametrize("source", SOURCES)
def test_unresolvable_refused_and_dropped(source):
    dropper = _Dropper()
    port = _closed_port()
    cases = [("https://hub.envctl-test.invalid", "the host name hub.envctl-test.invalid could not be resolved"),
             (f"http://127.0.0.1:{port}", f"127.0.0.1:{port} refused the connection"),
             (f"http://127.0.0.1:{dropper.port}", f"127.0.0.1:{dropper.port} closed the connection without an answer")]
    try:
        for endpoint, said in cases:
            with pytest.raises(FetchError) as failed:
                _resolve(source, endpoint)
            message = str(failed.value)
            assert message.endswith(f"(endpoint {endpoint}): the network failed: {said}"), message
            assert "Error" not in message and "Errno" not in message
            assert "network, DNS and proxy" in failed.value.hint
    finally:
        dropper.server.close()


def test_fetch_says_the_network_failed_for_every_hub_source(tmp_path):
    port = _closed_port()
    bundle = tmp_path / "offline"
    bundle.mkdir()
    artifacts = "".join(f"  a{i}: {{source: \"{source}\"}}\n" for i, source in enumerate(SOURCES))
    (bundle / "manifest.yaml").write_text("name: offline\ndescription: d\ndevice: {kind: cpu}\n"
                                          "image: {ref: 'e.com/i:1', pull: true}\nartifacts:\n" + artifacts)
    environ = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{port}", "MODELSCOPE_ENDPOINT": f"http://127.0.0.1:{port}",
               "ENVCTL_CACHE": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    environ.pop("ENVCTL_CONFIG", None)
    done = subprocess.run([sys.executable, "-m", "envctl", "fetch", str(bundle)], env=environ, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 6, done.stderr
    assert done.stderr.count(f"the network failed: 127.0.0.1:{port} refused the connection") == len(SOURCES)
    assert "Traceback" not in done.stderr and "ConnectionError" not in done.stderr
    assert done.stderr.count("network, DNS and proxy") == 1  # one hint for them all
