"""Git sources: just the pinned commit, resolved from a full sha, a short sha, a tag or a branch.

A bare repository per remote is kept in the cache, so a second commit of the same repository
fetches only what is new. A full sha or a ref is fetched alone (`--depth 1`); a short sha (the
tutorials pin `35f21dda9f567`) cannot be asked of a server, so the branches and tags are fetched
and the sha is resolved locally. The commit's tree (or one directory of it) is written out with
`git archive`, so no .git directory and nothing else from the repository lands in the artifact.
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

from envctl.errors import FetchError
from envctl.artifacts.sources import Source

_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_SHORT_SHA = re.compile(r"^[0-9a-f]{4,39}$")
_ENV = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}


def _git(*args: str, git_dir: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = ["git"] + ([f"--git-dir={git_dir}"] if git_dir else []) + list(args)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=_ENV, timeout=3600)
    except FileNotFoundError:
        raise FetchError("git is not installed on this machine", hint="install git (apt-get install git)") from None
    if check and done.returncode != 0:
        raise FetchError(f"git {args[0]} failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    return done


def mirror_path(cache_root: Path, source: Source) -> Path:
    parts = urlsplit(source.location)
    return cache_root / "git" / (parts.hostname or "local") / (parts.path.strip("/").removesuffix(".git") + ".git")


def resolve(source: Source, mirror: Path) -> str:
    """Fetch what is needed into the mirror and return the full commit sha of source.revision."""
    if not (mirror / "HEAD").exists():
        mirror.mkdir(parents=True, exist_ok=True)
        _git("init", "--bare", "--quiet", str(mirror))
    ref = source.revision or "HEAD"
    url = source.location
    if _FULL_SHA.match(ref):
        if _has_commit(mirror, ref):
            return ref
        if _git("fetch", "--quiet", "--depth", "1", url, ref, git_dir=mirror, check=False).returncode == 0 and _has_commit(mirror, ref):
            return ref
        _fetch_all(mirror, url)
        if _has_commit(mirror, ref):
            return ref
        raise FetchError(f"git+{url}: commit {ref} is not in the repository")
    if _SHORT_SHA.match(ref):
        found = _rev_parse(mirror, ref)
        if found:
            return found
        _fetch_all(mirror, url)
        found = _rev_parse(mirror, ref)
        if found:
            return found
        # Not a commit prefix: perhaps a branch or tag named like hex; fall through.
    done = _git("fetch", "--quiet", "--depth", "1", url, ref, git_dir=mirror, check=False)
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        raise FetchError(f"git+{url}@{ref}: no such commit, tag or branch ({reason})")
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


def _fetch_all(mirror: Path, url: str) -> None:
    _git("fetch", "--quiet", "--tags", url, "+refs/heads/*:refs/remotes/origin/*", git_dir=mirror)


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
