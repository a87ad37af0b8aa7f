"""Git sources with credentials in the URL (`git+https://user:token@host/repo@tag`, as a
private GitLab or Gitea repository is cloned with a personal access token), fetched from git's
own smart HTTP server behind Basic auth. git must get the token itself — not the `***` shown
in messages — and the token must appear in no output, no command line and no file under the
cache (the bare mirror's config, FETCH_HEAD, packed refs, the artifact's record)."""

from __future__ import annotations

import subprocess

import pytest

from download_helpers import envctl, files_containing, placed, write_manifest
from servers.git_http import GitHTTPServer

GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
TOKEN = "glpat-Xy9EXAMPLEtoken/+="


def private_repository(tmp_path, user: str, password: str):
    """A server of a bare repository `proj.git` with tag v1 (its commit as `.commit`), served
    only to `user` with `password`."""
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(GIT + ["init", "-q", "-b", "main", str(work)], check=True)
    (work / "train.py").write_text("print('private')\n")
    subprocess.run(GIT + ["-C", str(work), "add", "-A"], check=True)
    subprocess.run(GIT + ["-C", str(work), "commit", "-qm", "one"], check=True)
    subprocess.run(GIT + ["-C", str(work), "tag", "v1"], check=True)
    root = tmp_path / "srv"
    root.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(root / "proj.git")], check=True)
    server = GitHTTPServer(root, require_auth=(user, password))
    server.commit = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True,
                                   text=True).stdout.strip()
    return server


@pytest.fixture
def served(tmp_path):
    """`proj.git` served only to alice with TOKEN."""
    with private_repository(tmp_path, "alice", TOKEN) as server:
        yield server


def quoted(token: str) -> str:
    return token.replace("/", "%2F").replace("+", "%2B").replace("=", "%3D")


@pytest.mark.parametrize("ref", ["v1", "short", "full"])  # each is fetched another way (gitsrc.resolve)
def test_a_token_in_a_git_url_reaches_git_and_nothing_else(tmp_path, served, ref):
    ref = {"short": served.commit[:10], "full": served.commit}.get(ref, ref)
    # A user whose git keeps what it is given (credential.helper store) must not find it there.
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".gitconfig").write_text("[credential]\n\thelper = store\n")
    url = f"git+{served.url.replace('http://', f'http://alice:{quoted(TOKEN)}@')}/proj.git@{ref}"
    manifest = write_manifest(tmp_path, f"code: {{source: '{url}'}}\n")
    fetched = envctl(tmp_path, "fetch", str(manifest))
    assert fetched.returncode == 0, fetched.stderr
    assert (placed(fetched.stdout)["code"] / "train.py").read_text() == "print('private')\n"
    locked = envctl(tmp_path, "lock", str(manifest))
    listed = envctl(tmp_path, "cache", "ls")
    assert locked.returncode == 0 and listed.returncode == 0, (locked.stderr, listed.stderr)
    for secret in (TOKEN, quoted(TOKEN), "glpat-Xy9EXAMPLE"):
        for run in (fetched, locked, listed):
            assert secret not in run.stdout + run.stderr
        assert files_containing(tmp_path / "cache", secret) == []
        assert files_containing(tmp_path / "home", secret) == []
        assert secret not in (manifest.parent / "manifest.lock").read_text()
    assert served.refused == 0  # git never sent a wrong password (the *** of the display form)
    assert served.authorizations and all(served.authorizations)


def test_a_wrong_token_is_a_clear_error_without_a_prompt_or_the_token(tmp_path, served):
    url = f"git+{served.url.replace('http://', 'http://alice:glpat-WRONGEXAMPLE@')}/proj.git@v1"
    manifest = write_manifest(tmp_path, f"code: {{source: '{url}'}}\n")
    fetched = envctl(tmp_path, "fetch", str(manifest), timeout=60)
    assert fetched.returncode != 0 and fetched.returncode != 70, fetched.stderr
    assert "Traceback" not in fetched.stderr
    assert "glpat-WRONGEXAMPLE" not in fetched.stdout + fetched.stderr
    assert "alice:***@" in fetched.stderr and "Authentication failed" in fetched.stderr, fetched.stderr
    assert files_containing(tmp_path / "cache", "glpat-WRONGEXAMPLE") == []


def fetch_and_lock(tmp_path, url: str):
    """`envctl fetch`, then `envctl lock`, of a manifest whose one artifact is `url` (the private
    repository's train.py): both runs, checked to succeed, and the lock file's text."""
    manifest = write_manifest(tmp_path, f"code: {{source: '{url}'}}\n")
    fetched = envctl(tmp_path, "fetch", str(manifest))
    assert fetched.returncode == 0, fetched.stderr
    assert (placed(fetched.stdout)["code"] / "train.py").read_text() == "print('private')\n"
    locked = envctl(tmp_path, "lock", str(manifest))
    assert locked.returncode == 0, locked.stderr
    return fetched, locked, (manifest.parent / "manifest.lock").read_text()


def test_a_token_written_as_the_user_name_reaches_git_and_nothing_else(tmp_path):
    """`git+https://TOKEN@github.com/org/repo@tag`, GitHub's form: the token is the user name,
    with no password. git gets it as git would send it (that user, an empty password), in the
    header; the display, the lock and the cache say ***@."""
    token = "ghp_" + "R2d" * 12
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".gitconfig").write_text("[credential]\n\thelper = store\n")
    with private_repository(tmp_path, token, "") as server:
        fetched, locked, lock = fetch_and_lock(tmp_path, f"git+{server.url.replace('http://', f'http://{token}@')}/proj.git@v1")
        assert "git+http://***@127.0.0.1" in lock and token not in lock
        assert server.refused == 0 and server.authorizations and all(server.authorizations)
    for run in (fetched, locked):
        assert token not in run.stdout + run.stderr
    assert files_containing(tmp_path / "cache", token) == []
    assert files_containing(tmp_path / "home", token) == []


def test_a_login_name_alone_takes_its_password_from_gits_credential_helper(tmp_path, served):
    """`git+http://alice@host/repo@tag` names the account, git's way of picking one; the password
    is the credential helper's. Not a token (urls.credential_user): git is given the URL as
    written and asks its helper, as before."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[credential]\n\thelper = store\n")
    (home / ".git-credentials").write_text(served.url.replace("http://", f"http://alice:{quoted(TOKEN)}@") + "\n")
    fetched, locked, lock = fetch_and_lock(tmp_path, f"git+{served.url.replace('http://', 'http://alice@')}/proj.git@v1")
    assert "git+http://alice@127.0.0.1" in lock  # the account, shown
    for run in (fetched, locked):
        assert TOKEN not in run.stdout + run.stderr
