"""pytest fixtures for the loopback servers; import them into a test module to use them:

    from servers.fixtures import file_server, hf_endpoint, ftp_server  # noqa: F401

Each fixture is function-scoped, yields a started server with no content and default knobs,
and stops it (bounded, see each server's module) after the test:

- `file_server`: `servers.http_files.FileServer`; add content with `file_server.put(path, bytes)`.
- `hf_endpoint`: `servers.hf_endpoint.HFEndpoint`; add repos with `hf_endpoint.add_repo(...)`.
  It does not set HF_ENDPOINT: huggingface_hub reads that variable once, at import, so pass
  `endpoint=hf_endpoint.url` to the client, or set the variable in a subprocess's environment.
- `ftp_server`: `servers.ftp.FTPServer` serving the test's `tmp_path / "ftp-root"` (created
  empty; write files there, also while the server runs) as user "user", password "secret".

Knobs are attributes, so a test changes them on the yielded object; a test that needs
constructor-only options (`cdn=True` for HFEndpoint) builds the server itself in a `with`.
"""

from __future__ import annotations

import pytest

from .ftp import FTPServer
from .hf_endpoint import HFEndpoint
from .http_files import FileServer


@pytest.fixture
def file_server():
    with FileServer() as server:
        yield server


@pytest.fixture
def hf_endpoint():
    with HFEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
def ftp_server(tmp_path):
    root = tmp_path / "ftp-root"
    root.mkdir()
    with FTPServer(root=root) as server:
        yield server
