"""Real registries on loopback: Debian's `docker-registry` (the CNCF Distribution registry 2.8,
installed by tests/ensure-registry.sh), one process per instance, on a free port, with its
storage in the test's directory. Docker reaches 127.0.0.0/8 registries over plain HTTP without
any daemon setting (dockerd's default insecure range).

- `Registry(directory, users=None)`: start/stop; `url`, `host` ("127.0.0.1:PORT"). With `users`
  ({name: password}), it asks for them (Basic auth from an htpasswd file of bcrypt hashes, the
  registry's `auth.htpasswd`); with `auth`, that configuration (a token service's).
- `push_busybox(client, registry, repository, tag, extra)`: a busybox image made here (no
  network: tests/testimages.py's rootfs) pushed by the classic engine; returns its manifest digest.
- `copy(source, target, repository, tag, target_repository)`: the manifest and blobs copied byte
  for byte over the registry API, as a pull-through mirror serves them (same digest).
- `reachable_from(namespace, port)`: the port also opened in another network namespace (the
  containerd-store test engine and the SSH lab's hosts run in their own), forwarded to this
  loopback, where Docker's engines there reach it as a loopback registry too;
  `reachable_from_engine(engine_under_test, *ports)`: that, for the containerd-store engine
  (once per port per test process), nothing for the classic one on this loopback.
- `origin_and_mirror(directory, name, pinned, moved)`: an origin holding NAME:1 and NAME:2 and
  a mirror serving NAME:1 under quay.io/, as the registry tests' module fixtures want them.

A registry that does not start fails the test (never a skip).
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

BINARY = "/usr/bin/docker-registry"
MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.oci.image.index.v1+json")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Registry:
    def __init__(self, directory: Path, users: dict[str, str] | None = None, auth: dict | None = None):
        self.directory = directory
        self.users = users or {}
        self.auth = auth  # an `auth` configuration of its own (tests/servers/registry_token.py's settings)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Registry":
        if not os.access(BINARY, os.X_OK):
            pytest.fail(f"{BINARY} is missing: `make engine` (bash tests/ensure-registry.sh) installs Debian's "
                        "docker-registry", pytrace=False)
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "config.yml"
        settings = {
            "version": 0.1, "log": {"level": "error"},
            "storage": {"filesystem": {"rootdirectory": str(self.directory / "data")}, "delete": {"enabled": True}},
            "http": {"addr": self.host},
        }
        if self.users:
            import bcrypt  # a test dependency (pyproject: test extras)

            htpasswd = self.directory / "htpasswd"
            htpasswd.write_text("".join(f"{name}:{bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
                                        for name, secret in self.users.items()))
            settings["auth"] = {"htpasswd": {"realm": "envctl-test", "path": str(htpasswd)}}
        if self.auth:
            settings["auth"] = self.auth
        config.write_text(json.dumps(settings))  # YAML is a superset of JSON
        log = open(self.directory / "registry.log", "wb")
        self.process = subprocess.Popen([BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        for _ in range(100):
            try:
                if requests.get(f"{self.url}/v2/", timeout=2).status_code == (401 if self.users or self.auth else 200):
                    return self
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.__exit__()
        pytest.fail(f"docker-registry did not start on {self.host}: {(self.directory / 'registry.log').read_text()[-2000:]}",
                    pytrace=False)

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        answer = requests.get(f"{self.url}/v2/{repository}/manifests/{reference}",
                              headers={"Accept": ", ".join(MANIFEST_TYPES)}, timeout=30)
        answer.raise_for_status()
        return answer.content, answer.headers["Content-Type"]

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        answer = requests.put(f"{self.url}/v2/{repository}/manifests/{reference}", data=body,
                              headers={"Content-Type": media_type}, timeout=30)
        answer.raise_for_status()
        return answer.headers["Docker-Content-Digest"]

    def put_blob(self, repository: str, digest: str, data: bytes) -> None:
        started = requests.post(f"{self.url}/v2/{repository}/blobs/uploads/", timeout=30)
        started.raise_for_status()
        location = started.headers["Location"]
        location = location if location.startswith("http") else self.url + location
        done = requests.put(location, params={"digest": digest}, data=data,
                            headers={"Content-Type": "application/octet-stream"}, timeout=60)
        done.raise_for_status()


def copy(source: Registry, target: Registry, repository: str, reference: str, target_repository: str) -> str:
    """Copy one image (manifest, config, layers) byte for byte; returns its manifest digest."""
    body, media_type = source.manifest(repository, reference)
    document = json.loads(body)
    for blob in [document["config"], *document["layers"]]:
        data = requests.get(f"{source.url}/v2/{repository}/blobs/{blob['digest']}", timeout=60).content
        target.put_blob(target_repository, blob["digest"], data)
    return target.put_manifest(target_repository, reference, body, media_type)


def push_busybox(client, registry: Registry, repository: str, tag: str, extra: dict[str, bytes] | None = None,
                 auth: dict | None = None) -> str:
    """A busybox image (with `extra` files) imported into the classic engine, pushed to
    `registry`, and removed from the engine again; returns the manifest digest the push reported."""
    from testimages import _rootfs_tar

    name = f"{registry.host}/{repository}"
    client.api.import_image_from_data(_rootfs_tar(extra), repository=name, tag=tag)
    digest = None
    try:
        for event in client.api.push(name, tag=tag, stream=True, decode=True, auth_config=auth):
            if "error" in event:
                pytest.fail(f"pushing {name}:{tag} failed: {event['error']}", pytrace=False)
            digest = (event.get("aux") or {}).get("Digest") or digest
    finally:
        client.images.remove(f"{name}:{tag}", force=True)
    assert digest and digest.startswith("sha256:"), f"the push of {name}:{tag} reported no digest"
    return digest


_CLONE_NEWNET = 0x40000000


def reachable_from(namespace: int | str, port: int) -> threading.Thread:
    """Listen on 127.0.0.1:`port` in a network namespace (`namespace`: a process ID, whose
    namespace it is, or a namespace file such as /var/run/netns/NAME) and forward each
    connection to 127.0.0.1:`port` here. setns(2) changes the namespace of the calling thread
    only, and a socket keeps the namespace it was made in: the forwarding thread makes its
    listening socket there and its outgoing connections back here. Needs root."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    ready = threading.Event()
    problem: list[str] = []

    def serve() -> None:
        own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
        other = os.open(f"/proc/{namespace}/ns/net" if isinstance(namespace, int) else namespace, os.O_RDONLY)
        try:
            if libc.setns(other, _CLONE_NEWNET) != 0:
                problem.append(f"setns into the network namespace {namespace}: errno {ctypes.get_errno()}")
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(16)
            libc.setns(own, _CLONE_NEWNET)
        finally:
            os.close(own)
            os.close(other)
            ready.set()
        while True:
            inside, _ = listener.accept()
            outside = socket.create_connection(("127.0.0.1", port))
            for a, b in ((inside, outside), (outside, inside)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    if problem:
        pytest.fail(problem[0], pytrace=False)
    return thread


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while True:
            data = source.recv(1 << 16)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass


CONTAINERD_ENGINE_PID = Path("/run/envctl-test-containerd/engine.pid")  # tests/ensure-containerd-engine.sh
_forwarded_to_engine: set[int] = set()


def reachable_from_engine(engine_under_test, *ports: int) -> None:
    """The loopback `ports` reachable from the engine under test: the containerd-store engine
    runs in a network namespace of its own, so each port is forwarded into it once per test
    process; the classic engine shares this loopback."""
    if engine_under_test.store != "containerd":
        return
    pid = int(CONTAINERD_ENGINE_PID.read_text())
    for port in ports:
        if port not in _forwarded_to_engine:
            reachable_from(pid, port)
            _forwarded_to_engine.add(port)


@contextmanager
def origin_and_mirror(directory: Path, name: str, pinned: bytes, moved: bytes):
    """An origin registry holding envctl-it/NAME-XXXXXX:1 (its /etc/marker `pinned`) and :2
    (`moved`), and a mirror serving :1 under quay.io/ byte for byte (the same digest). Yields
    {origin, mirror, repository, digest (of :1), other (digest of :2)}."""
    from engines import CLASSIC, connect

    classic = connect(CLASSIC).client
    with Registry(directory / "origin") as origin, Registry(directory / "mirror") as mirror:
        repository = f"envctl-it/{name}-{uuid.uuid4().hex[:6]}"
        digest = push_busybox(classic, origin, repository, "1", {"etc/marker": pinned})
        other = push_busybox(classic, origin, repository, "2", {"etc/marker": moved})
        mirrored = copy(origin, mirror, repository, "1", f"quay.io/{repository}")
        assert mirrored == digest  # a mirror serves the same bytes, so the same digest
        yield {"origin": origin, "mirror": mirror, "repository": repository, "digest": digest, "other": other}
