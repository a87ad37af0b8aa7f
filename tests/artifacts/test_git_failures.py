"""A git source that cannot be fetched says why, in the terms of the failure: the network (a
host name not resolved, a connection refused, no answer, a connection that broke), TLS, a
login, no such repository, no such commit, tag or branch, a server error. Was: everything but
a refused login was "no such commit, tag or branch" (an offline machine included). Each
against loopback servers (tests/servers/git_http.py, git_faults.py), through each of git
source's ways to fetch: a tag or branch, a full sha and a short sha (envctl.artifacts.gitsrc)."""

from __future__ import annotations

import subprocess

import pytest

from download_helpers import dead_port, envctl, placed, write_manifest
from servers.git_faults import HangupServer, SilentServer, StatusServer, TLSGitHTTPServer
from servers.git_http import GitHTTPServer

GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
SHA = "0123456789abcdef0123456789abcdef01234567"
# The three ways gitsrc fetches a revision: one ref alone, a full sha alone then every ref, every ref.
REVISIONS = {"tag": "v1", "full-sha": SHA, "short-sha": SHA[:10]}
NETWORK_HINT = "check this machine's network, DNS and proxy"


def fetch(tmp_path, source: str, **env) -> subprocess.CompletedProcess:
    manifest = write_manifest(tmp_path, f"code: {{source: '{source}'}}\n")
    done = envctl(tmp_path, "fetch", str(manifest), env=env, timeout=90)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def repository(tmp_path) -> tuple:
    """A served root holding proj.git with tag v1; (root, commit)."""
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(GIT + ["init", "-q", "-b", "main", str(work)], check=True)
    (work / "train.py").write_text("print('hello')\n")
    subprocess.run(GIT + ["-C", str(work), "add", "-A"], check=True)
    subprocess.run(GIT + ["-C", str(work), "commit", "-qm", "one"], check=True)
    subprocess.run(GIT + ["-C", str(work), "tag", "v1"], check=True)
    root = tmp_path / "srv"
    root.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(root / "proj.git")], check=True)
    commit = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    return root, commit


@pytest.mark.parametrize("way", REVISIONS)
def test_a_host_name_that_does_not_resolve_is_the_network(tmp_path, way):
    done = fetch(tmp_path, f"git+https://git.nonexistent.invalid/org/repo.git@{REVISIONS[way]}")
    assert done.returncode != 0
    assert (f"git+https://git.nonexistent.invalid/org/repo.git@{REVISIONS[way]}: the network failed: the host name "
            "git.nonexistent.invalid could not be resolved (fatal: unable to access "
            "'https://git.nonexistent.invalid/org/repo.git/': Could not resolve host: git.nonexistent.invalid)") in done.stderr
    assert NETWORK_HINT in done.stderr
    assert "no such commit" not in done.stderr


@pytest.mark.parametrize("way", REVISIONS)
def test_a_refused_connection_is_the_network(tmp_path, way):
    port = dead_port()
    done = fetch(tmp_path, f"git+http://127.0.0.1:{port}/org/repo.git@{REVISIONS[way]}")
    assert done.returncode != 0
    assert f"the network failed: cannot connect to 127.0.0.1:{port} (fatal: unable to access" in done.stderr
    assert "no such commit" not in done.stderr


def test_a_server_that_never_answers_is_given_up(tmp_path):
    with SilentServer() as server:
        done = fetch(tmp_path, f"git+{server.url}/org/repo.git@v1", GIT_HTTP_LOW_SPEED_TIME="2")
    assert done.returncode != 0 and server.accepted >= 1
    assert f"the network failed: 127.0.0.1:{server.port} did not answer in time" in done.stderr, done.stderr
    assert "Operation too slow" in done.stderr


# A server that closes without reading the request races the client's send: curl then says the
# reset, the broken pipe or the empty reply, whichever came first; one that read it, the empty reply.
@pytest.mark.parametrize("read_request, curl_says", [
    (False, ("Recv failure: Connection reset by peer", "Send failure: Broken pipe", "Empty reply from server")),
    (True, ("Empty reply from server",))])
def test_a_server_that_hangs_up_is_a_broken_connection(tmp_path, read_request, curl_says):
    with HangupServer(read_request) as server:
        done = fetch(tmp_path, f"git+{server.url}/org/repo.git@v1")
    assert done.returncode != 0 and server.accepted >= 1
    assert f"the network failed: the connection to 127.0.0.1:{server.port} broke during the transfer" in done.stderr, \
        done.stderr
    assert any(words in done.stderr for words in curl_says), done.stderr


def test_an_untrusted_certificate_is_tls_and_a_trusted_one_fetches(tmp_path):
    root, commit = repository(tmp_path)
    with TLSGitHTTPServer(root, tmp_path) as server:
        source = f"git+{server.url}/proj.git@v1"
        done = fetch(tmp_path, source)
        assert done.returncode != 0
        assert f"the TLS connection to {server.url.removeprefix('https://')} failed: its certificate is not trusted here" \
            in done.stderr, done.stderr
        assert "GIT_SSL_CAINFO" in done.stderr and "never turns certificate checks off" in done.stderr
        trusted = fetch(tmp_path, source, GIT_SSL_CAINFO=str(server.cert))
    assert trusted.returncode == 0, trusted.stderr
    assert (placed(trusted.stdout)["code"] / "train.py").read_text() == "print('hello')\n"


@pytest.mark.parametrize("way", REVISIONS)
def test_a_login_the_repository_needs_is_asked_for(tmp_path, way):
    root, _ = repository(tmp_path)
    with GitHTTPServer(root, require_auth=("alice", "s3cret")) as server:
        done = fetch(tmp_path, f"git+{server.url}/proj.git@{REVISIONS[way]}")
    assert done.returncode != 0
    assert "the server refused access" in done.stderr and "the repository needs a login" in done.stderr, done.stderr


@pytest.mark.parametrize("status, words", [
    (403, "the server refused access (fatal: unable to access '{url}/org/repo.git/': The requested URL returned error: 403)"),
    (500, "the server 127.0.0.1:{port} failed (HTTP 500: fatal: unable to access '{url}/org/repo.git/': "
          "The requested URL returned error: 500)"),
    (502, "the server 127.0.0.1:{port} failed (HTTP 502"),
    (404, "there is no repository at {url}/org/repo.git"),
])
def test_http_refusals_are_named(tmp_path, status, words):
    with StatusServer(status) as server:
        url = server.url
        done = fetch(tmp_path, f"git+{url}/org/repo.git@v1")
    assert done.returncode != 0 and server.requests >= 1
    assert words.format(url=url, port=url.rsplit(":", 1)[1]) in done.stderr, done.stderr


def test_a_repository_the_server_does_not_have(tmp_path):
    root, _ = repository(tmp_path)
    with GitHTTPServer(root) as server:
        url = server.url
        done = fetch(tmp_path, f"git+{url}/nope.git@v1")
    assert done.returncode != 0
    assert f"git+{url}/nope.git@v1: there is no repository at {url}/nope.git (fatal: repository " \
           f"'{url}/nope.git/' not found)" in done.stderr, done.stderr


def test_a_local_path_that_is_no_repository(tmp_path):
    (tmp_path / "empty").mkdir()
    done = fetch(tmp_path, f"git+file://{tmp_path}/empty@v1")
    assert done.returncode != 0
    assert f"there is no repository at file://{tmp_path}/empty" in done.stderr, done.stderr


@pytest.mark.parametrize("ref", ["v9", "no-such-branch"])
def test_a_missing_ref_is_still_no_such_commit_tag_or_branch(tmp_path, ref):
    root, _ = repository(tmp_path)
    with GitHTTPServer(root) as server:
        url = server.url
        done = fetch(tmp_path, f"git+{url}/proj.git@{ref}")
    assert done.returncode != 0
    assert f"git+{url}/proj.git@{ref}: no such commit, tag or branch (fatal: couldn't find remote ref {ref})" \
        in done.stderr, done.stderr
    assert "network" not in done.stderr


def test_a_full_sha_the_repository_lacks_is_said_so(tmp_path):
    root, _ = repository(tmp_path)
    with GitHTTPServer(root) as server:
        done = fetch(tmp_path, f"git+{server.url}/proj.git@{SHA}")
    assert done.returncode != 0
    assert f"commit {SHA} is not in the repository" in done.stderr, done.stderr


def test_the_servers_repository_still_fetches(tmp_path):
    """The neighbour that works: the same server and ways, nothing wrong."""
    root, commit = repository(tmp_path)
    with GitHTTPServer(root) as server:
        for revision in ("v1", commit, commit[:10]):
            done = fetch(tmp_path, f"git+{server.url}/proj.git@{revision}")
            assert done.returncode == 0, done.stderr
