"""The Docker engine stops in the middle of `envctl up`. A throwaway dockerd of the test's own
(the machine's Docker, in a mount and network namespace of its own with its own data root,
socket and containerd, as tests/ensure-containerd-engine.sh and tests/sshlab_build.py start
theirs) is stopped with SIGTERM, as `systemctl stop docker` does, while a setup step runs.
`up` must end with exit 5, a message that names the engine and the operation, a hint, and no
traceback or "internal error". The machine's own engines are never touched."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support import IMAGE

import docker
import pytest

_INNER = """set -e
ip link set lo up
mount -t tmpfs -o mode=755 tmpfs /run   # a private /run: dockerd starts a containerd of its own
exec dockerd --config-file "$DIR/daemon.json" --data-root "$DIR/data" --exec-root /run/docker \
  --pidfile /run/docker.pid -H "unix://$DIR/docker.sock" --bridge=none --iptables=false --ip-masq=false \
  --ip-forward=false --storage-driver vfs --cgroup-parent /envctl-test-engine-stops --shutdown-timeout 2
"""


class ThrowawayEngine:
    def __init__(self) -> None:
        # A short path: a unix socket's path must fit in 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="envctl-stops-", dir="/tmp"))
        (self.dir / "daemon.json").write_text(json.dumps({"deprecated-key-path": str(self.dir / "key.json")}))
        self.log = open(self.dir / "dockerd.log", "wb")
        self.process = subprocess.Popen(["unshare", "--mount", "--net", "--propagation", "private", "--", "bash", "-c", _INNER],
                                        env={**os.environ, "DIR": str(self.dir)}, stdout=self.log, stderr=self.log,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        self.netns = None
        self.docker_host = f"unix://{self.dir}/docker.sock"
        client = docker.DockerClient(base_url=self.docker_host, version="1.41", timeout=10)
        for _ in range(60):
            if self.process.poll() is not None:
                break
            try:
                client.ping()
                self.netns = os.readlink(f"/proc/{self.process.pid}/ns/net")
                self.client = client
                return
            except Exception:  # noqa: BLE001  (not up yet)
                time.sleep(1)
        pytest.fail(f"the throwaway dockerd did not answer; its log:\n{(self.dir / 'dockerd.log').read_text()[-3000:]}",
                    pytrace=False)

    def stop(self) -> None:
        """SIGTERM, as `systemctl stop docker` sends; then everything left in its namespace."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def close(self) -> None:
        self.stop()
        if self.netns:  # containerd and shims that outlived dockerd: only those in our namespace
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        if os.readlink(f"/proc/{entry}/ns/net") == self.netns:
                            os.kill(int(entry), signal.SIGKILL)
                    except OSError:
                        pass
        cgroup = Path("/sys/fs/cgroup/envctl-test-engine-stops")
        if (cgroup / "cgroup.kill").exists():
            for kill in cgroup.rglob("cgroup.kill"):
                kill.write_text("1")
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def throwaway_engine():
    engine = ThrowawayEngine()
    yield engine
    engine.close()


def test_the_engine_stops_during_a_setup_step(throwaway_engine, saved_tarballs, tmp_path):
    manifest = tmp_path / "stops.yaml"
    manifest.write_text(
        "name: it-engine-stops\ndescription: the engine stops during up\ndevice: {kind: cpu}\n"
        f"image: {{ref: {IMAGE}, tarball: {{source: {saved_tarballs['plain']}}}}}\n"
        "setup:\n  - name: a long step\n    run: touch /tmp/started; sleep 60\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
    env.update(HOME=str(tmp_path / "home"), ENVCTL_CACHE=str(tmp_path / "cache"),
               ENVCTL_WORKSPACE=str(tmp_path / "workspaces"), DOCKER_HOST=throwaway_engine.docker_host)
    up = subprocess.Popen([sys.executable, "-m", "envctl", "up", str(manifest)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)
    try:
        client = throwaway_engine.client
        for _ in range(120):  # until the setup step runs inside the container
            containers = client.containers.list(filters={"name": "envctl-it-engine-stops"})
            if containers and containers[0].exec_run(["test", "-e", "/tmp/started"]).exit_code == 0:
                break
            assert up.poll() is None, up.stderr.read()
            time.sleep(0.5)
        else:
            pytest.fail("the setup step never started")
        throwaway_engine.stop()
        _, stderr = up.communicate(timeout=120)
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 5, stderr
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr
    assert f"the Docker engine at {throwaway_engine.docker_host} stopped answering during api.exec_" in stderr, stderr
    assert "hint:  check that it runs" in stderr, stderr
