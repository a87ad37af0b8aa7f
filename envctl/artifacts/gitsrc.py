"""Git sources: just the pinned commit, resolved from a full sha, a short sha, a tag or a branch.

A bare repository per remote is kept in the cache, so a second commit of the same repository
fetches only what is new. A full sha or a ref is fetched alone (`--depth 1`); a short sha (the
tutorials pin `35f21dda9f567`) cannot be asked of a server, so the branches and tags are fetched
and the sha is resolved locally. The commit's tree (or one directory of it) is written out with
`git archive`, so no .git directory and nothing else from the repository lands in the artifact.

A password or token in the URL (`git+https://user:TOKEN@host/repo@tag`, how private GitLab
and Gitea repositories are cloned with an access token; `git+https://TOKEN@github.com/...`, a
token written as the user name, GitHub's form) is handed to git as an
`Authorization: Basic` header in `http.<url>.extraHeader`, set through git's
`GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n` environment (git-config(1), git
2.31+): never on a command line (which other users can read in `ps`), never in the mirror's
config or FETCH_HEAD (git is given the URL without its userinfo), never in a message. The
header is scoped to that URL, and libcurl does not send it to another host a redirect leads to.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import tarfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from envctl.artifacts import urls
from envctl.artifacts.git_errors import explain
from envctl.errors import FetchError
from envctl.artifacts.sources import Source
from envctl.mirror_routes import rewrite

_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_SHORT_SHA = re.compile(r"^[0-9a-f]{4,39}$")
_ENV = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C",
        # A server that stops sending is given up after a minute (git's http.lowSpeedLimit and
        # http.lowSpeedTime, read from these variables), not after the hour below; the user's own win.
        "GIT_HTTP_LOW_SPEED_LIMIT": os.environ.get("GIT_HTTP_LOW_SPEED_LIMIT", "1"),
        "GIT_HTTP_LOW_SPEED_TIME": os.environ.get("GIT_HTTP_LOW_SPEED_TIME", "60")}


class _Remote:
    """What git is given for a source: the URL without a password, and the environment that
    carries the credentials (see the module docstring)."""

    def __init__(self, source: Source, rewrites: Mapping[str, str] | None = None):
        parts = urlsplit(source.location)
        self.env, self.secrets = _ENV, [s for s in (source.password, unquote(source.password or "")) if s]
        # A lab mirror (the user config's mirrors.git, envctl.mirror_routes) serves the objects;
        # the mirror directory, cache key and lock keep source.location, and a pinned commit is
        # still checked to be there.
        found = rewrite(source.location, rewrites or {})
        self.through = found[0] if found else None
        if source.password is None or parts.scheme not in ("http", "https"):
            self.url = self.through or source.location
            return
        self.url = self.through or urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
        if self.through and urlsplit(self.through).netloc != parts.netloc.rsplit("@", 1)[1]:
            return  # a mirror on another server is not given the origin's credential
        # A token written as the user name goes as git itself would send it: that user, no password.
        user, password = (source.password, "") if source.token_user else (parts.username or "", source.password)
        basic = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
        self.secrets.append(basic)
        count = int(_ENV.get("GIT_CONFIG_COUNT") or 0)  # the user's own entries stay
        self.env = {**_ENV, "GIT_CONFIG_COUNT": str(count + 1), f"GIT_CONFIG_KEY_{count}": f"http.{self.url}.extraHeader",
                    f"GIT_CONFIG_VALUE_{count}": f"Authorization: Basic {basic}"}


def _git(*args: str, git_dir: Path | None = None, check: bool = True, remote: _Remote | None = None) -> subprocess.CompletedProcess:
    argv = ["git"] + ([f"--git-dir={git_dir}"] if git_dir else []) + list(args)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=remote.env if remote else _ENV, timeout=3600)
    except FileNotFoundError:
        raise FetchError("git is not installed on this machine", hint="install git (apt-get install git)") from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"git {args[0]} did not finish in an hour", hint="fetch again: what git fetched is kept") from None
    if remote is not None:
        done.stderr = urls.redact_text(done.stderr, sorted(remote.secrets, key=len, reverse=True))
    if check and done.returncode != 0:
        raise FetchError(f"git {args[0]} failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    return done


def mirror_path(cache_root: Path, source: Source) -> Path:
    parts = urlsplit(source.location)
    return cache_root / "git" / (parts.hostname or "local") / (parts.path.strip("/").removesuffix(".git") + ".git")


def resolve(source: Source, mirror: Path, rewrites: Mapping[str, str] | None = None) -> str:
    """Fetch what is needed into the mirror and return the full commit sha of source.revision.
    `rewrites`: URL prefix → replacement prefix, the longest match applies (mirrors.git)."""
    if not (mirror / "HEAD").exists():
        mirror.mkdir(parents=True, exist_ok=True)
        _git("init", "--bare", "--quiet", str(mirror))
    ref = source.revision or "HEAD"
    remote = _Remote(source, rewrites)
    url = source.location  # for messages: the password as ***
    if _FULL_SHA.match(ref):
        if _has_commit(mirror, ref):
            return ref
        if _git("fetch", "--quiet", "--depth", "1", remote.url, ref, git_dir=mirror, check=False,
                remote=remote).returncode == 0 and _has_commit(mirror, ref):
            return ref
        _fetch_all(mirror, remote, url, ref)
        if _has_commit(mirror, ref):
            return ref
        raise FetchError(f"git+{url}: commit {ref} is not in the repository")
    if _SHORT_SHA.match(ref):
        found = _rev_parse(mirror, ref)
        if found:
            return found
        _fetch_all(mirror, remote, url, ref)
        found = _rev_parse(mirror, ref)
        if found:
            return found
        # Not a commit prefix: perhaps a branch or tag named like hex; fall through.
    done = _git("fetch", "--quiet", "--depth", "1", remote.url, ref, git_dir=mirror, check=False, remote=remote)
    if done.returncode != 0:  # the network, TLS, a login, the repository or the ref (git_errors)
        raise explain(done.stderr, url, ref, done.returncode)
    return _rev_parse(mirror, "FETCH_HEAD")


def _has_commit(mirror: Path, sha: str) -> bool:
    return _git("cat-file", "-e", f"{sha}^{{commit}}", git_dir=mirror, check=False).returncode == 0


def _rev_parse(mirror: Path, ref: str) -> str | None:
    done = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", git_dir=mirror, check=False)
    if done.returncode != 0:
        if "ambiguous" in done.stderr:
            raise FetchError(f"short sha {ref} is ambiguous in this repository: pin more digits")
        return None
    return done.stdout.strip()


def _fetch_all(mirror: Path, remote: _Remote, url: str, ref: str) -> None:
    """Every branch and tag (to find a commit by its sha); `url`, `ref`: for messages."""
    done = _git("fetch", "--quiet", "--tags", remote.url, "+refs/heads/*:refs/remotes/origin/*", git_dir=mirror,
                check=False, remote=remote)
    if done.returncode != 0:
        raise explain(done.stderr, url, ref, done.returncode)


def export(mirror: Path, commit: str, destination: Path, subpath: str | None) -> None:
    """Write the commit's tree (or its `subpath` directory) into the new directory `destination`."""
    destination.mkdir(parents=True)
    argv = ["git", f"--git-dir={mirror}", "archive", "--format=tar", commit]
    if subpath:
        argv.append(subpath.strip("/"))
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_ENV) as process:
        try:
            with tarfile.open(fileobj=process.stdout, mode="r|") as archive:
                archive.extractall(destination, filter="data")
        except tarfile.ReadError:
            pass  # git wrote no archive: its message below says why
        error = process.stderr.read().decode(errors="replace").strip()
    if process.returncode != 0:
        if subpath and "did not match any files" in error:
            raise FetchError(f"subpath '{subpath}' does not exist at commit {commit}")
        raise FetchError(f"git archive of {commit} failed: {error.splitlines()[-1] if error else process.returncode}")
