"""Parsing artifact sources into a structured, redactable form.

Accepted: hf://[datasets/]org/repo@revision, modelscope://[datasets/]org/repo@revision, http(s)://...,
ftp://..., git+https://host/repo@ref (also git+http, git+ssh, git+file), file:///abs/path and
plain paths (relative ones are relative to the manifest's directory).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit, urlunsplit

from envctl.artifacts import urls

_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


class SourceError(ValueError):
    """A source string that cannot be understood; the message says how to write it."""


@dataclass(frozen=True)
class Source:
    kind: str  # hf | hf-dataset | modelscope | http | ftp | git | file
    # repo id (a ModelScope dataset's as datasets/org/name), URL (credentials replaced by ***) or absolute path
    location: str
    revision: str | None = None  # commit, tag or branch for hf/modelscope/git
    password: str | None = field(default=None, repr=False)  # from URL userinfo; never rendered
    # http/ftp: the URL as written, signed query values included; sent to its server only.
    request_url: str | None = field(default=None, repr=False)
    # `password` is the URL's user name (a token written as the user, urls.credential_user),
    # sent with an empty password; the location shows it as ***.
    token_user: bool = field(default=False, repr=False)

    @property
    def display(self) -> str:
        """The source as a user may see it: credentials replaced by ***."""
        if self.kind in ("hf", "hf-dataset", "modelscope"):
            scheme = "modelscope" if self.kind == "modelscope" else "hf"
            repo = f"datasets/{self.location}" if self.kind == "hf-dataset" else self.location
            return f"{scheme}://{repo}@{self.revision}"
        if self.kind == "git":
            return f"git+{self.location}@{self.revision}"
        return self.location

    def identity(self) -> str:
        """Everything that selects what this source stands for, without credentials: for a URL
        its scheme, host, port, path and query (urls.identity); for a hub its repository and
        revision; for git its URL and ref; for a file its path."""
        if self.kind in ("http", "ftp"):
            return urls.identity(self.request_url or self.location)
        if self.kind == "git":
            return f"git+{urls.identity(self.location)}@{self.revision}"
        if self.kind == "file":  # /data, /data/ and /data/./ are one directory
            return f"file:{posixpath.normpath(self.location)}"
        return f"{self.kind}:{self.display}"

    def cache_key(self) -> str:
        """A stable relative directory name for this source in the artifact cache.

        No key is a directory above another one: a source inside another source's directory
        (`/data/w.txt` beside `/data`) or a repository whose path continues another's ref
        (`a` at `b/c` beside `a/b` at `c`) would otherwise be stored inside its entry. URLs,
        git repositories and paths are keyed by a hash of their whole identity (a share link's
        files differ only in the query), ending in a readable name; Hub revisions keep their
        `org/name/revision` layout with any `/` of the revision written `~` (refs never hold `~`)."""
        if self.kind in ("hf", "hf-dataset", "modelscope"):
            # A ModelScope dataset has a directory of its own kind: `modelscope/datasets/...` could
            # be above a model of an org named "datasets".
            kind, repo = ("modelscope-dataset", self.location.removeprefix(MODELSCOPE_DATASET)) \
                if self.kind == "modelscope" and self.location.startswith(MODELSCOPE_DATASET) else (self.kind, self.location)
            return f"{kind}/{repo}/{(self.revision or '').replace('/', '~')}"
        digest = urls.identity_digest(self.identity())
        if self.kind == "git":
            parts = urlsplit(self.location)
            name = parts.path.strip("/").removesuffix(".git").rsplit("/", 1)[-1] or "repo"
            host = (parts.hostname or "local") + (f"_{parts.port}" if parts.port else "")
            return f"git/{urls.safe_component(host) or 'host'}/{digest}/{urls.safe_component(name) or 'repo'}"
        if self.kind in ("http", "ftp"):
            scheme, host, port = urls.origin(self.location)
            where = urls.safe_component(f"{host}_{port}") or "host"
            return f"{self.kind}/{where}/{digest}/{urls.file_name(self.location)}"
        name = self.location.rstrip("/").rsplit("/", 1)[-1]
        return f"file/{digest}/{urls.safe_component(name) or 'root'}"


MODELSCOPE_DATASET = "datasets/"  # the location prefix of a ModelScope dataset (its kind stays "modelscope")


def _hub(kind: str, scheme: str, written: str) -> Source:
    """A hub repository: `org/name@rev` is a model; `datasets/org/name@rev` a dataset (as both
    hubs' web addresses and APIs name them); ModelScope's `models/org/name` is a model too."""
    rest, prefix = written, ""
    if rest.startswith(MODELSCOPE_DATASET):
        rest, prefix = rest[len(MODELSCOPE_DATASET):], MODELSCOPE_DATASET
        kind = "hf-dataset" if kind == "hf" else kind
    elif kind == "modelscope" and rest.startswith("models/"):
        rest = rest[len("models/"):]
        if rest.startswith(MODELSCOPE_DATASET):  # the hub's own route, no org's name
            raise SourceError(f"'{scheme}://{written}': 'datasets' is no ModelScope org; a dataset is "
                              f"{scheme}://datasets/ORG/NAME@REVISION")
    repo, at, revision = rest.partition("@")
    if not _REPO.match(repo):
        forms = f"{scheme}://ORG/NAME@REVISION for a model, {scheme}://datasets/ORG/NAME@REVISION for a dataset"
        raise SourceError(f"'{scheme}://{written}': the repository must be org/name ({forms})")
    if not at or not revision:
        pin = "branch or tag" if kind == "modelscope" else "commit or tag"  # ModelScope's API takes no commit
        raise SourceError(f"'{scheme}://{written}': pin a revision: {scheme}://{prefix}{repo}@<{pin}>")
    if not _REF.match(revision):
        raise SourceError(f"'{revision}' is not a revision (a commit, tag or branch)")
    return Source(kind, f"{prefix}{repo}" if kind == "modelscope" else repo, revision)


# The hubs' web pages, which a newcomer copies from the browser: a repository's page (or its
# file list) is HTML, not the repository. Hosts: the hubs and hf-mirror.com, which serves
# Hugging Face's paths.
_HF_HOSTS = ("huggingface.co", "www.huggingface.co", "hf.co", "hf-mirror.com")
_MODELSCOPE_HOSTS = ("modelscope.cn", "www.modelscope.cn")
_MODELSCOPE_PAGES = ("", "summary", "files", "feedback", "dataPeview", "quickstart")


def _hub_page(parts) -> str | None:
    """What a hub's web address is, when it is a repository's page or a file's page rather than
    a file (None for a file: HF's /resolve/REV/FILE, ModelScope's /resolve/ and /api/ routes)."""
    host = (parts.hostname or "").lower()
    segments = [unquote(s) for s in parts.path.strip("/").split("/") if s]
    if host in _HF_HOSTS:
        dataset = segments[:1] == ["datasets"]
        repo, rest = (segments[1:3], segments[3:]) if dataset else (segments[:2], segments[2:])
        if len(repo) != 2 or repo[0] in ("api", "spaces", "docs", "models"):
            return None
        form = f"hf://{'datasets/' if dataset else ''}{repo[0]}/{repo[1]}"
        if not rest:
            return f"a repository's web page; the repository is {form}@<revision> (a commit, tag or branch)"
        if rest[0] == "tree" and len(rest) >= 2:
            sub = f" (subpath: {'/'.join(rest[2:])})" if len(rest) > 2 else ""
            return f"a repository's web page; the repository is {form}@{rest[1]}{sub}"
        if rest[0] == "blob" and len(rest) >= 3:
            page = "/".join([*segments[:len(segments) - len(rest)], "resolve", *rest[1:]])
            # The address to write, with the page's own credentials as *** (the message quotes it).
            return f"a file's web page (HTML); the file itself is {urls.redact_url(f'{parts.scheme}://{parts.netloc}/{page}')}"
        return None
    if host in _MODELSCOPE_HOSTS and segments[:1] in (["models"], ["datasets"]) and len(segments) >= 3:
        rest = segments[3:]
        if rest and rest[0] not in _MODELSCOPE_PAGES:
            return None  # /resolve/..., /repo?...: a file
        prefix = "datasets/" if segments[0] == "datasets" else ""
        return (f"a repository's web page; the repository is modelscope://{prefix}{segments[1]}/{segments[2]}"
                f"@<revision> (a branch or tag, e.g. master)")
    return None


def _strip_credentials(url: str) -> tuple[str, str | None, bool]:
    """(the location to show, the credential, whether it is the URL's user name: a token)."""
    if token := urls.credential_user(url):  # a token as the user name: the location shows ***@
        return urls.redact_url(url), token, True
    parts = urlsplit(url)
    if parts.password is None:
        return url, None, False
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}")), parts.password, False


def _unreadable_port(text: str) -> SourceError:
    """A URL whose port is no number. Most often a password or token holding a '#', '?' or '/'
    that was not percent-encoded: the URL then ends its host there, and what follows ':' is read
    as the port. Everything before the last '@' is hidden: the credential's end stands after it
    where redact_url cannot tell it from the URL."""
    return SourceError(f"'{urls.hide_userinfo(text)}': the URL's port is not a number; {urls.ENCODE_CREDENTIAL} "
                       "(%23, %3F, %2F)")


def parse_source(text: str, base_dir: Path | None = None) -> Source:
    """Parse `text`; relative plain paths resolve against `base_dir`. Raises SourceError."""
    text = text.strip()
    if not text:
        raise SourceError("the source is empty")
    scheme, sep, rest = text.partition("://")
    if not sep:
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        return Source("file", str(PurePosixPath(path)))
    scheme = scheme.lower()
    if scheme in ("hf", "huggingface"):
        return _hub("hf", "hf", rest)
    if scheme in ("modelscope", "ms"):
        return _hub("modelscope", "modelscope", rest)
    if scheme in ("http", "https", "ftp"):
        parts = urlsplit(text)
        try:  # first: a password with an unencoded '#' or '?' reads as a port, and is said masked
            parts.port
        except ValueError:
            raise _unreadable_port(text) from None
        if not parts.hostname:
            raise SourceError(f"'{urls.redact_url(text)}': the URL has no host")
        if (not parts.path or parts.path == "/") and not parts.query:
            raise SourceError(f"'{urls.redact_url(text)}': the URL names no file")
        page = _hub_page(parts)
        if page:
            raise SourceError(f"'{urls.redact_url(text)}' is {page}")
        token = urls.credential_user(text)
        return Source("ftp" if scheme == "ftp" else "http", urls.redact_url(text), None, token or parts.password, text,
                      token_user=token is not None)
    if scheme.startswith("git+"):
        inner = scheme[len("git+"):]
        if inner not in ("https", "http", "ssh", "file"):
            raise SourceError(f"'{scheme}://': git sources are git+https://, git+http://, git+ssh:// or git+file://")
        url, at, ref = f"{inner}://{rest}".rpartition("@")
        # user@host in ssh URLs also contains '@': a ref never contains '/' before the host part.
        if not at or "/" not in url.split("://", 1)[1] or not ref:
            # Quoted without its credentials: unpinned, the URL's userinfo was never split off.
            raise SourceError(f"'{urls.redact_text(text)}': pin a commit or tag: git+{inner}://host/repo@<commit or tag>")
        if not _REF.match(ref):
            raise SourceError(f"'{ref}' is not a git commit, tag or branch")
        try:
            urlsplit(url).port  # else Source.identity() raises it later, a traceback
        except ValueError:
            raise _unreadable_port(f"git+{url}") from None  # without the ref: its '@' is not the userinfo's
        location, password, token_user = _strip_credentials(url)
        return Source("git", location, ref, password, token_user=token_user)
    if scheme == "file":
        path = rest if rest.startswith("/") else "/" + rest
        return Source("file", path)
    raise SourceError(
        f"unknown source scheme '{scheme}://' (use hf://, modelscope://, http(s)://, ftp://, git+https://, file:// or a path)"
    )


def artifact_identity(source: Source, subpath: str | None, include: list[str] | tuple[str, ...]) -> str:
    """What a placed artifact stands for, as its cache record states it: the source's identity
    and the part of it taken. A record stating anything else is never used for this artifact."""
    return json.dumps([source.identity(), (subpath or "").strip("/"), sorted(include or [])], ensure_ascii=False)


def artifact_key(source: Source, subpath: str | None, include: list[str] | tuple[str, ...]) -> str:
    """The cache directory name of an artifact: its source, plus what part of it was taken (a
    subpath, include patterns), so that two manifests taking different parts never share one."""
    key = source.cache_key()
    if subpath:
        key += "~" + subpath.strip("/").replace("/", "~")
    if include:
        key += "~" + hashlib.sha256(json.dumps(sorted(include)).encode()).hexdigest()[:8]
    return key
