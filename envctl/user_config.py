"""The user's own configuration file: one place for a lab's mirrors.

The file is `ENVCTL_CONFIG` when set (it must then exist), else
`$XDG_CONFIG_HOME/envctl/config.yaml` (default `~/.config/envctl/config.yaml`) when it exists.
Its shape:

    mirrors:
      huggingface: https://hf-mirror.com          # as HF_ENDPOINT
      modelscope: https://modelscope.example.cn   # as MODELSCOPE_ENDPOINT
      git: {"https://github.com/": "https://gitee.com/mirrors/"}   # URL prefix rewrites
      registries: {"quay.io": "m.daocloud.io/quay.io", "docker.io": "docker.m.daocloud.io"}
      pip: https://pypi.tuna.tsinghua.edu.cn/simple                 # handed to containers as PIP_INDEX_URL

The inventory (envctl/remote/inventory.py) takes the same `mirrors:` mapping per host and in its
defaults; `read_mirrors` reads both. Which setting wins where (environment variables over the
file, a host's own over this machine's) is envctl/mirror_routes.py. Every problem is reported
at once, as file:line:column: path: message (exit 3), never a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from envctl.errors import ManifestError, Problem
from envctl.manifest.docker_values import repository_component
from envctl.manifest.yamlsrc import Document, PathKey, dotted, parse_file
from envctl.paths import config_home, expand_home
from envctl.references import DEFAULT_DOMAIN, LEGACY_DOMAIN

SECTIONS = ("mirrors",)
MIRROR_KINDS = ("huggingface", "modelscope", "git", "registries", "pip")
# The variable each single-URL mirror stands for; the tools users know read the same ones
# (huggingface_hub: HF_ENDPOINT; the modelscope SDK: MODELSCOPE_ENDPOINT / MODELSCOPE_DOMAIN;
# pip: PIP_INDEX_URL, pip's documented environment form of --index-url).
MIRROR_VARIABLES = {"huggingface": "HF_ENDPOINT", "modelscope": "MODELSCOPE_ENDPOINT", "pip": "PIP_INDEX_URL"}
# A registry host as an image reference names it: docker.io, quay.io, registry.example:5000, [::1]:5000.
_REGISTRY_HOST = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:]+\])(?::[0-9]{1,5})?$")
# Docker Hub's other spellings: the legacy index name and the host its API is served from.
_DOCKER_HUB_ALIASES = (LEGACY_DOMAIN, "registry-1.docker.io")


@dataclass(frozen=True)
class Mirrors:
    """Where envctl (and the containers it runs) download from instead of the public services.

    `git`: URL prefix → replacement prefix, the longest matching prefix applies (as git's own
    `url.<base>.insteadOf`). `registries`: registry host (as in an image reference: quay.io,
    docker.io, host:port) → the mirror's repository prefix (`m.daocloud.io/quay.io`).
    `origins`: where each setting was written, "FILE:LINE", keyed by the kind (huggingface,
    modelscope, pip) or "git PREFIX" / "registries HOST"; not part of equality."""

    huggingface: str | None = None
    modelscope: str | None = None
    git: dict[str, str] = field(default_factory=dict, hash=False)
    registries: dict[str, str] = field(default_factory=dict, hash=False)
    pip: str | None = None
    origins: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def __repr__(self) -> str:  # a private mirror's password never in a repr (HostEntry prints its mirrors)
        shown = {k: shown_url(v) if isinstance(v, str) else {p: shown_url(u) for p, u in v.items()}
                 for k, v in vars(self).items() if k != "origins" and v}
        return f"Mirrors({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def __bool__(self) -> bool:
        return bool(self.huggingface or self.modelscope or self.git or self.registries or self.pip)


def over(lower: Mirrors, higher: Mirrors) -> Mirrors:
    """`higher`'s settings over `lower`'s, kind by kind; git prefixes and registry hosts are
    merged one by one (the higher's entry for the same prefix or host wins)."""
    return Mirrors(
        huggingface=higher.huggingface or lower.huggingface,
        modelscope=higher.modelscope or lower.modelscope,
        git={**lower.git, **higher.git},
        registries={**lower.registries, **higher.registries},
        pip=higher.pip or lower.pip,
        origins={**lower.origins, **{k: v for k, v in higher.origins.items() if _set_in(higher, k)}},
    )


def _set_in(mirrors: Mirrors, origin_key: str) -> bool:
    kind, _, key = origin_key.partition(" ")
    return key in getattr(mirrors, kind) if key else bool(getattr(mirrors, kind))


@dataclass(frozen=True)
class UserConfig:
    path: Path | None = None  # the file read; None when there is none
    mirrors: Mirrors = field(default_factory=Mirrors)


def config_path(environ: Mapping[str, str]) -> Path | None:
    """ENVCTL_CONFIG (returned even when missing, so that loading says so), else
    $XDG_CONFIG_HOME/envctl/config.yaml (~/.config/...) when it exists, else None. Only
    `environ` is consulted for the home directory."""
    given = environ.get("ENVCTL_CONFIG")
    if given:
        return Path(expand_home(given, environ))
    home = config_home(environ)
    default = home / "config.yaml" if home is not None else None
    return default if default is not None and default.exists() else None  # a directory there is reported, not skipped


def load(environ: Mapping[str, str] | None = None) -> UserConfig:
    """The user's configuration (see config_path); an empty UserConfig when there is no file.
    Raises ManifestError (exit 3) listing every problem of the file, each as file:line:column."""
    environ = os.environ if environ is None else environ
    found = config_path(environ)
    if found is None:
        return UserConfig()
    hint = "the path comes from ENVCTL_CONFIG" if environ.get("ENVCTL_CONFIG") else None
    if found.is_dir():
        raise ManifestError([Problem(str(found), None, None, "", "is a directory, not the configuration file")], hint=hint)
    doc, problems = parse_file(found)
    if doc is None:
        raise ManifestError(problems, hint=hint)
    return _read(doc, found, list(problems))


def environ_defaults(mirrors: Mirrors) -> dict[str, str]:
    """The environment variables the mirrors imply (HF_ENDPOINT, MODELSCOPE_ENDPOINT,
    PIP_INDEX_URL), to be overridden by the caller's own: `{**environ_defaults(m), **environ}`."""
    return {variable: getattr(mirrors, kind) for kind, variable in MIRROR_VARIABLES.items() if getattr(mirrors, kind)}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value == "":
        return "empty text"
    return {str: "text", int: "a number", float: "a number", list: "a list",
            dict: "a mapping", type(None): "nothing"}.get(type(value), type(value).__name__)


def shown_url(url: str) -> str:
    """A URL as messages and plans show it: its credentials (a private mirror's basic auth
    password, a token written as the user name, a signed query value) replaced by ***
    (envctl.artifacts.urls.redact_url)."""
    from envctl.artifacts.urls import redact_text, redact_url

    try:
        tidied = urlunsplit(urlsplit(url))
    except ValueError:  # no URL Python can split (`https://[::1/simple`): its credentials found as in text
        return redact_text(url)
    shown = redact_url(url)
    # As written when nothing was hidden: urlsplit and urlunsplit would also tidy it (strip
    # spaces, drop an empty query), and a message quotes what the user wrote.
    return url if shown == tidied else shown


def _shown_rejected(value: str) -> str:
    """A value refused as a mirror's URL, as its message quotes it: shown_url's, and a user
    alone before the host masked whatever the scheme (`htps://TOKEN@pip.lab/simple` was meant as
    an http(s) URL, where a user alone is a token)."""
    shown = shown_url(value)
    userinfo = re.match(r"^[^/?#@]*//([^/?#@]*)@", value)
    if userinfo and not userinfo[1].partition(":")[2]:  # a user alone, or with an empty password
        shown = re.sub(r"^([^/?#@]*//)[^/?#@]*@", r"\1***@", shown)
    return shown


Report = Callable[[PathKey, str, bool], None]


def read_mirrors(doc: Document, raw: Any, at: PathKey, report: Report) -> Mirrors:
    """The `mirrors:` mapping at `at` in `doc` (the config file's, or an inventory host's).
    Each bad entry is passed to `report(path, message, at_key)` and left out."""
    if raw is None:
        return Mirrors()
    if not isinstance(raw, dict):
        report(at, f"expected a mapping of mirrors ({', '.join(MIRROR_KINDS)}), got {_kind(raw)}", False)
        return Mirrors()
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}

    def where(path: PathKey) -> str:
        pos = doc.positions.of_key(path)
        return f"{doc.file}:{pos.line if pos else 1}"

    for kind, value in raw.items():
        here = at + (kind,)
        if kind not in MIRROR_KINDS:
            report(here, f"unknown mirror '{kind}'; mirrors: {', '.join(MIRROR_KINDS)}", True)
        elif value is None:
            continue
        elif kind in ("git", "registries"):
            entries = _read_rewrites(kind, value, here, report)
            if entries:
                values[kind] = entries
                origins.update({f"{kind} {key}": where(here + (key,)) for key in entries})
        else:
            problem = url_problem(value)
            if problem:
                report(here, problem, False)
            else:
                # An endpoint is joined with paths (/api/...): no trailing slash. pip's index URL
                # is handed over as written.
                values[kind] = value.rstrip("/") if kind != "pip" else value
                origins[kind] = where(here)
    return Mirrors(**values, origins=origins)


def url_problem(value: Any) -> str | None:
    """Why `value` cannot be an endpoint or index URL (an http(s):// URL with a host), or None;
    a password in it is masked in the message."""
    if not isinstance(value, str):
        return f"expected an http(s):// URL, got {_kind(value)}"
    try:
        parts = urlsplit(value)
        parts.port  # raises for a port that is no number, here rather than at the first download
    except ValueError as exc:  # `https://[::1/simple`: Python's words for it
        if "port" in str(exc).lower():  # its words quote the "port": a password's start, when a '#' cut the host short
            from envctl.artifacts.urls import ENCODE_CREDENTIAL, hide_userinfo

            return f"'{hide_userinfo(value)}' is not a URL: its port is not a number ({ENCODE_CREDENTIAL}: %23, %3F, %2F)"
        return f"'{_shown_rejected(value)}' is not a URL: {exc}"
    if parts.scheme not in ("http", "https"):
        shown = _shown_rejected(value)
        guess = f" (did you mean 'https://{shown}'?)" if "://" not in value and value and not value.isspace() else ""
        return f"expected an http(s):// URL, got '{shown}'{guess}"
    if not parts.hostname:
        return f"'{shown_url(value)}' names no host"
    return None


def _read_rewrites(kind: str, value: Any, at: PathKey, report: Report) -> dict[str, str]:
    what = "URL prefix → replacement prefix" if kind == "git" else "registry host → mirror repository prefix"
    if not isinstance(value, dict):
        report(at, f"expected a mapping ({what}), got {_kind(value)}", False)
        return {}
    good: dict[str, str] = {}
    written: dict[str, str] = {}  # canonical registry host → the key as written
    for key, replacement in value.items():
        here = at + (key,)
        if not isinstance(key, str) or not key:
            report(here, f"expected text ({what}), got {_kind(key)} as the key", True)
        elif not isinstance(replacement, str) or not replacement:
            report(here, f"expected text ({what}), got {_kind(replacement)}", False)
        elif kind == "git":
            good[key] = replacement
        elif not _REGISTRY_HOST.match(key):
            report(here, f"'{key}' is not a registry host (as an image reference names it: quay.io, "
                         f"docker.io, registry.example:5000)", True)
        elif registry_key(key) in written:
            report(here, f"'{key}' is the registry '{written[registry_key(key)]}' again (host names are compared "
                         f"in lower case; index.docker.io is docker.io): keep one entry", True)
        else:
            problem = _prefix_problem(replacement)
            if problem:
                report(here, problem, False)
            else:
                written[registry_key(key)] = key
                good[registry_key(key)] = replacement.rstrip("/")
    return good


def registry_key(host: str) -> str:
    """A registry host as image references name it after Docker's normalisation: lower case
    (DNS names are case-insensitive), Docker Hub's other spellings as docker.io."""
    host = host.lower()
    return DEFAULT_DOMAIN if host in _DOCKER_HUB_ALIASES else host


def _prefix_problem(prefix: str) -> str | None:
    """Why `prefix` cannot be a mirror's repository prefix (`m.daocloud.io/quay.io`,
    `docker.m.daocloud.io`, `127.0.0.1:5000/hub`), or None. The pulled name is PREFIX/REPOSITORY,
    so the prefix obeys Docker's reference grammar (distribution/reference, reference.go): a
    host that Docker reads as a registry (with a '.' or a ':PORT', or localhost: normalize.go's
    splitDockerDomain) and path components in lower case. Credentials cannot be written in an
    image name: Docker's own (`docker login`) are used."""
    if "://" in prefix:
        bare = prefix.split("://", 1)[1].rpartition("@")[2].rstrip("/")
        return (f"'{shown_url(prefix)}': a mirror is a repository prefix as images are named "
                f"(m.daocloud.io/quay.io), without a scheme: write '{bare}'")
    if "@" in prefix:
        host = prefix.rpartition("@")[2]
        return (f"'***@{host}': an image name holds no credentials; log in with `docker login "
                f"{host.partition('/')[0]}` (envctl uses Docker's credentials for pulls)")
    host, _, path = prefix.rstrip("/").partition("/")
    if not _REGISTRY_HOST.match(host):
        return f"'{prefix}': '{host}' is not a registry host (m.daocloud.io, registry.example:5000)"
    if not any(c in host for c in ".:[") and host != "localhost":
        return (f"'{prefix}': Docker reads '{host}' as a Docker Hub namespace, not a registry host "
                f"(a registry host has a '.' or a ':PORT', or is localhost)")
    bad = [part for part in path.split("/") if path and not repository_component(part)]
    if bad:
        return (f"'{prefix}': '{bad[0]}' cannot be part of a repository name (lower-case letters and "
                f"digits, separated by '.', '_', '__' or '-', as Docker names repositories)")
    return None


def _read(doc: Document, path: Path, problems: list[Problem]) -> UserConfig:
    def report(at: PathKey, message: str, key: bool = False) -> None:
        pos = doc.positions.of_key(at) if key else doc.positions.of_value(at)
        problems.append(Problem(doc.file, pos.line if pos else 1, pos.column if pos else 1, dotted(at), message))

    top = doc.data if doc.data is not None else {}
    if not isinstance(top, dict):
        report((), f"the configuration is a mapping (mirrors:), got {_kind(top)}")
        raise ManifestError(problems)
    for key in top:
        if key not in SECTIONS:
            report((key,), f"unknown section '{key}'; sections: {', '.join(SECTIONS)}", key=True)
    mirrors = read_mirrors(doc, top.get("mirrors"), ("mirrors",), report)
    if problems:
        raise ManifestError(sorted(problems, key=lambda p: (p.line or 0, p.column or 0)))  # in file order
    return UserConfig(path=path, mirrors=mirrors)
