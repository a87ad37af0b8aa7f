"""One connection pool per engine socket, whatever the request's URL.

docker-py's UnixHTTPAdapter keys its connection pools by the request's whole URL
(docker/transport/unixconn.py, `get_connection`: `self.pools.get(url)`, docker 7.x): every
request to a URL not asked before (a container's ID, an exec's ID, another query string) opens a
connection of its own. On this machine's socket that costs microseconds. Through the SSH forward
of a server's socket (envctl/hosts/ssh.py) every connection is a channel the master opens on the
server first, one round trip more: a fresh `up` at 50 ms asks ~16 different URLs, most of them
one after another (issue 14: one connection took it from 4.62 to 4.41 s, medians of three on a
busy machine; bench/bench_remote.py). The docker CLI keeps one
connection for all of its requests; with this adapter docker-py does too (urllib3's pool keeps
up to docker-py's max_pool_size, 10, idle connections for requests made at once from several
threads: envctl makes at most a handful at once on one engine, envctl/apply_reads.py)."""

from __future__ import annotations

import docker
from docker.api.client import APIClient
from docker.transport import UnixHTTPAdapter

# The pool's key: any URL of the socket's, since all of them reach the same engine.
_ONE = "http+docker://localhost"


class SocketPoolAdapter(UnixHTTPAdapter):
    """UnixHTTPAdapter with one urllib3 pool for every request to its socket."""

    def get_connection(self, url, proxies=None):
        return super().get_connection(_ONE, proxies)


def share_one_pool(api: APIClient) -> None:
    """Make every later request of `api` (docker-py's low-level client, as DockerClient.api)
    reuse the connections of one pool. The connection of the request docker-py made while the
    client was built (GET /version) joins that pool, so it is not opened twice. A client that
    does not reach its engine through a unix socket (tcp://, ssh://) is left as it is."""
    old = api.get_adapter(api.base_url)
    if not isinstance(old, UnixHTTPAdapter) or isinstance(old, SocketPoolAdapter):
        return
    shared = SocketPoolAdapter(f"http+unix://{old.socket_path}", old.timeout, max_pool_size=old.max_pool_size)
    asked = next(iter(old.pools.keys()), None)  # /version's URL: its pool's idle connection is reused
    if asked is not None:
        shared.pools[_ONE] = old.pools[asked]
    api.mount("http+docker://", shared)


def docker_client(base_url: str, timeout: int, version: str | None = None) -> docker.DockerClient:
    """docker-py's client for the engine at `base_url`, its requests sharing one pool: every
    client envctl makes (envctl/engine.py connect, envctl/hosts/ssh.py SSHHost.engine) is made
    here. `version`: the engine's API version when already known (its /version's ApiVersion, the
    one docker-py would choose); None: the client asks GET /version for it. Raises what
    DockerClient raises (DockerException, OSError) when the engine does not answer that."""
    client = docker.DockerClient(base_url=base_url, timeout=timeout, version=version)  # None: "auto"
    share_one_pool(client.api)
    return client
