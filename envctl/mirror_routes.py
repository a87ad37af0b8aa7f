"""Which mirror each download goes through, and where that setting came from.

Precedence, highest first, for the machine that downloads:

- this machine (`fetch`, `lock`, `up` of a local environment, every push host, git sources):
  the caller's environment variables (HF_ENDPOINT, MODELSCOPE_ENDPOINT or MODELSCOPE_DOMAIN,
  PIP_INDEX_URL), then the user config file's `mirrors:`;
- an SSH host that downloads itself (`fetch: remote`) and the containers on it: that host's
  inventory `env:`, then its inventory `mirrors:` (the host's entry over the inventory's
  `defaults:`), then the caller's environment, then the config file. A lab server's own
  mirror beats the HF_ENDPOINT a laptop exports. (With fetch: remote the file listing and small
  files are still asked of that mirror from this machine: envctl/remote/remote_fetch.py.)

Git prefix rewrites and registry mirrors merge entry by entry (a host's rule for a prefix or
registry replaces the file's for the same one). A rewrite changes only where bytes come from:
cache keys, cache records and manifest.lock keep the canonical URL and the resolved commit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from envctl.errors import EXIT_USAGE, EnvctlError
from envctl.user_config import MIRROR_VARIABLES, Mirrors, UserConfig, load, over, shown_url, url_problem

# Variables that also choose an endpoint, besides MIRROR_VARIABLES' (the modelscope SDK reads
# MODELSCOPE_DOMAIN when MODELSCOPE_ENDPOINT is unset; envctl.artifacts.modelscope does too).
ALSO_READ = {"modelscope": ("MODELSCOPE_DOMAIN",)}


@dataclass(frozen=True)
class Route:
    url: str  # the endpoint, index URL, or replacement prefix
    origin: str  # "FILE:LINE", "environment variable HF_ENDPOINT", "inventory FILE:LINE (host lab1)", ...


@dataclass(frozen=True)
class HostLayer:
    """An SSH host's own settings from the inventory: its `mirrors:` (defaults merged) and `env:`."""

    name: str
    mirrors: Mirrors = field(default_factory=Mirrors)
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Routes:
    endpoints: dict[str, Route]  # huggingface | modelscope | pip → the route in effect (absent: the public service)
    git: dict[str, Route]  # URL prefix → replacement prefix
    registries: dict[str, Route]  # registry host → mirror repository prefix
    environ: dict[str, str]  # the environment artifact code is handed: the endpoints in effect set in it
    config_file: str | None = None

    def git_url(self, url: str) -> tuple[str, str, Route] | None:
        """(the URL to fetch from, the prefix that matched, its route) when a rewrite applies."""
        rules = {prefix: route.url for prefix, route in self.git.items()}
        found = rewrite(url, rules)
        return (found[0], found[1], self.git[found[1]]) if found else None


def rewrite(url: str, rules: Mapping[str, str]) -> tuple[str, str] | None:
    """`url` with the longest matching prefix replaced, and that prefix; None when none matches.
    As git's `url.<base>.insteadOf` (git-config(1): "If multiple insteadOf strings match a given
    URL, the longest match is used"). A password in `url` is never part of the match, nor kept
    when the host changes (a mirror is another server: the credential is not its)."""
    for candidate in _match_forms(url):
        matching = [prefix for prefix in rules if candidate.startswith(prefix)]
        if matching:
            prefix = max(matching, key=len)
            return rules[prefix] + candidate[len(prefix):], prefix
    return None


def _match_forms(url: str) -> list[str]:
    """The URL without its password (user kept: ssh://git@github.com/), then without any userinfo."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return [url]
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return [urlunsplit(parts._replace(netloc=f"{user}@{host}")), urlunsplit(parts._replace(netloc=host))]


def routes(config: UserConfig, environ: Mapping[str, str], host: HostLayer | None = None) -> Routes:
    """The routes in effect for downloads by this machine (`host` None) or by an SSH host."""
    file_where = str(config.path) if config.path else None
    layers: list[tuple[str, object]] = [("file", (config.mirrors, lambda o: o)),
                                        ("env", (environ, lambda n: f"environment variable {n}"))]
    if host is not None:
        layers += [("file", (host.mirrors, lambda o, h=host.name: f"inventory {o} (host {h})")),
                   ("env", (host.env, lambda n, h=host.name: f"inventory env {n} (host {h})"))]
    endpoints: dict[str, Route] = {}
    for kind, variable in MIRROR_VARIABLES.items():
        for layer, (values, origin) in layers:
            if layer == "file" and getattr(values, kind):
                endpoints[kind] = Route(getattr(values, kind), origin(values.origins.get(kind, "?")))
            elif layer == "env":
                for name in (variable,) + ALSO_READ.get(kind, ()):
                    if values.get(name):
                        endpoints[kind] = Route(_endpoint_of(name, values[name]), origin(name))
                        break
    merged = over(config.mirrors, host.mirrors) if host is not None else config.mirrors
    for kind, route in endpoints.items():
        if kind != "pip" or merged.pip:  # the caller's own PIP_INDEX_URL is not envctl's unless it overrides one
            _check_variable(route)
    if not merged.pip:
        # PIP_INDEX_URL in the caller's shell is about pip there: it reaches containers only as
        # the override of a configured pip mirror (or through pass_env), never on its own.
        endpoints.pop("pip", None)

    def rules(kind: str) -> dict[str, Route]:
        out = {}
        for key, value in getattr(merged, kind).items():
            where = merged.origins.get(f"{kind} {key}", "?")
            from_host = host is not None and key in getattr(host.mirrors, kind) \
                and host.mirrors.origins.get(f"{kind} {key}") == where
            out[key] = Route(value, f"inventory {where} (host {host.name})" if from_host else where)
        return out

    environ_out = {**environ, **(host.env if host is not None else {})}
    environ_out.update({MIRROR_VARIABLES[kind]: route.url for kind, route in endpoints.items()})
    return Routes(endpoints, rules("git"), rules("registries"), environ_out, file_where)


def _check_variable(route: Route) -> None:
    """An endpoint set by an environment variable is checked as the config file's are
    (user_config: an http(s):// URL with a host), so that `HF_ENDPOINT=hf-mirror.com` is said at
    once, naming the variable, rather than failing each download with the HTTP library's
    "missing an 'http://' or 'https://' protocol". Raises EnvctlError (exit 2, a bad setting
    of the command). The config file's own values were checked when it was read."""
    if not route.origin.startswith(("environment variable ", "inventory env ")):
        return
    problem = url_problem(route.url)
    if problem:
        raise EnvctlError(f"{route.origin}: {problem}", hint="set it to the mirror's URL, or unset it", exit_code=EXIT_USAGE)


def _endpoint_of(name: str, value: str) -> str:
    if name == "MODELSCOPE_DOMAIN":  # a bare domain means https (the modelscope SDK's reading)
        value = value if "://" in value else f"https://{value}"
    return value.rstrip("/") if name != "PIP_INDEX_URL" else value


def here(environ: Mapping[str, str] | None = None) -> Routes:
    """The routes for downloads by this machine. Raises ManifestError for a bad config file."""
    environ = os.environ if environ is None else environ
    return routes(load(environ), environ)


def of_host(host, environ: Mapping[str, str] | None = None) -> Routes:
    """The routes for downloads by `host` (an SSHHost: its `mirrors` and `env` from the
    inventory); this machine's for a host without them."""
    environ = os.environ if environ is None else environ
    if getattr(host, "fetch_mode", None) is None:
        return here(environ)
    layer = HostLayer(host.name, getattr(host, "mirrors", None) or Mirrors(), dict(getattr(host, "env", {}) or {}))
    return routes(load(environ), environ, layer)


HUB_KINDS = {"hf": "huggingface", "hf-dataset": "huggingface", "modelscope": "modelscope"}
REMOTE_DOWNLOADS = frozenset(HUB_KINDS)  # what an SSH host with fetch: remote downloads itself (remote_fetch's hub kinds)


def shown_in_plan(plan, loaded, host):
    """`plan` (envctl.plan.Plan) with each artifact's `mirror` and `mirror_from` set where a
    mirror applies: the Hub or ModelScope endpoint, or the rewritten git URL, of the machine
    that downloads it (the SSH host for its hub sources with fetch: remote, else this machine).
    Raises ManifestError for a bad config file."""
    from dataclasses import replace

    local = here()
    remote = of_host(host) if getattr(host, "fetch_mode", None) == "remote" else None
    shown = []
    for artifact in plan.artifacts:
        source = loaded.sources.get(artifact.name)
        mirror = None
        if source is not None and source.kind in HUB_KINDS:
            routes_used = remote if remote is not None and source.kind in REMOTE_DOWNLOADS else local
            route = routes_used.endpoints.get(HUB_KINDS[source.kind])
            mirror = (route.url, route.origin) if route else None
        elif source is not None and source.kind == "git":
            found = local.git_url(source.location)
            mirror = (found[0], f"mirrors.git '{found[1]}' in {found[2].origin}") if found else None
        if mirror:
            artifact = replace(artifact, mirror=shown_url(mirror[0]), mirror_from=mirror[1])
        shown.append(artifact)
    return replace(plan, artifacts=tuple(shown), notes=plan.notes + _container_env_notes(plan, loaded, local, remote))


# What the variables a container's env sets mean to the programs inside, and what a newcomer may
# think they mean to envctl: HF_ENDPOINT in a profile's container.env never changed envctl's downloads.
_DEFAULTS = {"huggingface": "https://huggingface.co", "modelscope": "https://www.modelscope.cn"}


def _container_env_notes(plan, loaded, local: Routes, remote: Routes | None) -> tuple[str, ...]:
    env = getattr(plan.container, "env", None) or {}
    notes = []
    for kind, variable in (("huggingface", "HF_ENDPOINT"), ("modelscope", "MODELSCOPE_ENDPOINT")):
        value = env.get(variable)
        kinds = [k for k, v in HUB_KINDS.items() if v == kind]
        if not value or not any(s is not None and s.kind in kinds for s in loaded.sources.values()):
            continue
        route = (remote or local).endpoints.get(kind)
        used = route.url if route else _DEFAULTS[kind]
        if used.rstrip("/") != value.rstrip("/"):
            notes.append(f"container.env {variable} is for the programs in the container; envctl downloads "
                         f"{kind} artifacts from {shown_url(used)} (set mirrors.{kind} in the user config file, "
                         f"`envctl config` shows it, or {variable} in your environment)")
    return tuple(notes)
