"""The run-time-only environment of setup steps and entrypoints: the one place that computes it.

`container.pass_env: [HF_TOKEN, ...]` names variables handed to each setup step and entrypoint
when it runs, and to nothing else: not the container's configuration (`docker inspect`'s
Config.Env), its labels or config hash, the setup steps' hashes, plans, saved plans, logs or
lock files. So a token is never baked into a container, and rotating it recreates nothing and
re-runs no step.

Where a value comes from, first found wins:

1. the caller's environment (the shell that runs envctl, on this machine — also for `--host`:
   the Docker client runs here);
2. the env files, the last given first: `--env-file FILE` on the command line (repeatable), then
   `container.env_file` in the manifest (relative to the manifest's directory; a missing one is
   not an error, since each user keeps their own).

The environment winning over the file is Docker Compose's rule ("Environment variables
precedence", docs.docker.com/compose/how-tos/environment-variables/envvars-precedence/): an
exported variable is the most deliberate choice.

Env files are read as `docker run --env-file` reads them (Docker CLI's kvfile format,
docs.docker.com/reference/cli/docker/container/run/#env, checked against docker 20.10 in the
tests): UTF-8 (a BOM is dropped), leading whitespace dropped, blank lines and lines starting
with `#` ignored, `NAME=VALUE` taken as written — no quote removal, no `${}` expansion, trailing
spaces kept, no inline comments — and a `NAME` without `=` takes the caller's environment's
value. A name holding a space or tab, or an empty name, is an error at its file:line.

Values are kept out of every `repr` and are handed over only through process environments and
the Engine API's exec body (envctl/setup_steps.py, envctl/execute.py): never a command line.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from envctl.errors import EXIT_USAGE, EnvctlError
from envctl.manifest.interpolate import looks_secret

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # what a POSIX shell can export
_BOM = "\ufeff"


ENV_FILE_HELP = ("an env file (NAME=VALUE lines, as docker run --env-file reads them) with values for the manifest's "
                 "container.pass_env; the caller's environment wins; repeatable, the last given wins")


class EnvFileError(EnvctlError):
    """An env file that cannot be read or is not in Docker's env-file format (exit 2)."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class PassedVariable:
    """One `pass_env` name as plans show it: never its value.
    `state`: set | empty | not set; `origin`: "environment", an env file's path, or None."""

    name: str
    state: str
    origin: str | None = None

    def describe(self) -> str:
        """`HF_TOKEN (passed, set from the environment)`, `HF_TOKEN (passed, not set)`."""
        if self.state == "not set":
            return f"{self.name} (passed, not set)"
        return f"{self.name} (passed, {self.state} from {'the environment' if self.origin == 'environment' else self.origin})"


@dataclass(frozen=True)
class RuntimeEnv:
    """What setup steps and entrypoints receive at run time, beyond their manifest `env`.
    `values`: name → value (only names that have one); `passed`: each pass_env name and where
    its value comes from, in the manifest's order; `warnings`: lines for plan and up."""

    values: Mapping[str, str] = field(default_factory=dict, repr=False)
    passed: tuple[PassedVariable, ...] = ()
    warnings: tuple[str, ...] = ()
    mirrors: frozenset[str] = frozenset()  # names whose values are mirror URLs (with_pip_mirror), not secrets

    @property
    def secrets(self) -> frozenset[str]:
        """The values to mask wherever text is shown (envctl/masking.py): those of names that
        look like credentials (HF_TOKEN, *_API_KEY, *PASSWORD*: interpolate.looks_secret, the
        rule the rest of envctl uses), not a passed log level or endpoint, whose short values
        (INFO, 1) would otherwise be masked all over a server's output."""
        return frozenset(v for k, v in self.values.items() if v and k not in self.mirrors and looks_secret(k))


def read_env_file(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of an env file in Docker's format (module docstring), in file order; a
    bare `NAME` takes `environ`'s value (omitted when unset there). Raises EnvFileError naming
    the file (and line) when it cannot be read or a line is not `NAME[=VALUE]`."""
    environ = os.environ if environ is None else environ
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EnvFileError(f"cannot read the env file {path}: {exc.strerror or exc}") from None
    out: dict[str, str] = {}
    # Lines end at \n; a \r before it is dropped, as Go's bufio.ScanLines does.
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise EnvFileError(f"{path}:{number}: not UTF-8 text") from None
        if number == 1:
            line = line.removeprefix(_BOM)
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        name, has_value, value = line.partition("=")
        if not name:
            raise EnvFileError(f"{path}:{number}: no variable name before '=' (write NAME=VALUE)")
        if " " in name or "\t" in name:
            raise EnvFileError(f"{path}:{number}: variable name {name!r} holds a space or tab "
                               f"(write NAME=VALUE, with no space before '=')")
        if "\0" in name or "\0" in value:
            raise EnvFileError(f"{path}:{number}: a NUL character cannot be in an environment variable")
        if has_value:
            out[name] = value
        elif name in environ:
            out[name] = environ[name]
    return out


def _readable_by_others(path: Path) -> str | None:
    """A warning when other users can read the file (its mode lets group or others read)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return (f"the env file {path} can be read by other users (mode {stat.S_IMODE(mode):04o}); "
                f"`chmod 600 {path}` keeps its secrets yours")
    return None


def resolve(names: Sequence[str], env_files: Sequence[Path | str] = (), environ: Mapping[str, str] | None = None,
            optional_files: Sequence[Path | str] = ()) -> RuntimeEnv:
    """The run-time environment for `names` (pass_env), from `environ` (default: os.environ),
    then `env_files` (the last one first), then `optional_files` (the manifest's env_file: may
    be missing). Raises EnvFileError for an env file given but unreadable or malformed."""
    environ = os.environ if environ is None else environ
    warnings: list[str] = []
    files: list[tuple[str, dict[str, str]]] = []  # searched in this order
    for given in reversed(list(env_files)):
        path = Path(given)
        files.append((str(path), read_env_file(path, environ)))
        warnings += [w for w in [_readable_by_others(path)] if w]
    for given in optional_files:
        path = Path(given)
        if path.exists():
            files.append((str(path), read_env_file(path, environ)))
            warnings += [w for w in [_readable_by_others(path)] if w]
    values: dict[str, str] = {}
    passed = []
    wanted = set(names)
    for name in names:
        if name in environ:
            values[name] = environ[name]
            origin = "environment"
            if environ[name] == "" and any(name in found for _, found in files):
                warnings.append(f"{name} is set but empty in the environment, so the env file's value is not used "
                                f"(unset it to use the file's)")
        else:
            origin = next((where for where, found in files if name in found), None)
            if origin is not None:
                values[name] = next(found[name] for where, found in files if where == origin)
        if origin is None:
            passed.append(PassedVariable(name, "not set"))
            warnings.append(f"{name} is not set: export it or put it in an env file (--env-file); setup steps and "
                            f"entrypoints run without it")
        else:
            passed.append(PassedVariable(name, "set" if values[name] else "empty", origin))
    for where, found in files:
        extra = sorted(set(found) - wanted)
        if extra:
            warnings.append(f"{where} sets {', '.join(extra)}, not in container.pass_env: not passed")
    return RuntimeEnv(values, tuple(passed), tuple(warnings))


def for_manifest(loaded, env_files: Sequence[Path | str] = (), environ: Mapping[str, str] | None = None,
                 host=None) -> RuntimeEnv:
    """The run-time environment of a loaded manifest (envctl.manifest.loader.Loaded): its
    `container.pass_env`, valued from `environ`, `env_files` and its `container.env_file`
    (relative to the manifest's directory). Raises EnvFileError as `resolve` does."""
    container = loaded.manifest.container
    names = list(getattr(container, "pass_env", None) or ())
    own = getattr(container, "env_file", None)
    optional = [Path(loaded.file).parent / own] if own else []
    # The issue's `HF_TOKEN: ${HF_TOKEN:-}` in container.env: baked, so said, with the way out.
    baked = tuple(f"container.env.{name} looks like a credential and is baked into the container's configuration "
                  f"(docker inspect shows it; a new value recreates the container and re-runs setup): move it to "
                  f"container.pass_env" for name, value in container.env.items() if looks_secret(name) and value)
    runtime = RuntimeEnv() if not names and not env_files else resolve(names, env_files, environ, optional)
    runtime = dataclasses.replace(runtime, warnings=baked + runtime.warnings)
    return with_pip_mirror(runtime, dict(getattr(container, "env", None) or {}), environ, host)


def with_pip_mirror(runtime: RuntimeEnv, container_env: Mapping[str, str],
                    environ: Mapping[str, str] | None = None, host=None) -> RuntimeEnv:
    """`runtime` with PIP_INDEX_URL (pip's environment form of --index-url) when the user config
    file names a pip mirror (`mirrors.pip`; the caller's own PIP_INDEX_URL wins over the file's,
    envctl.mirror_routes). Passed at run time, like pass_env, so changing the mirror recreates
    nothing. Left out when the manifest's container.env sets PIP_INDEX_URL (its author's choice
    for that image wins) or pass_env already gives it. On an SSH `host` the pip mirror is that
    host's (its inventory mirrors and env over this machine's, envctl.mirror_routes.of_host): its
    containers reach the lab's index. Raises ManifestError for a bad config file."""
    from envctl import mirror_routes, user_config

    environ = os.environ if environ is None else environ
    on_host = host is not None and getattr(host, "fetch_mode", None) is not None
    routes = mirror_routes.of_host(host, environ) if on_host else mirror_routes.routes(user_config.load(environ), environ)
    route = routes.endpoints.get("pip")  # present only where a pip mirror is configured
    if route is None or "PIP_INDEX_URL" in container_env or "PIP_INDEX_URL" in runtime.values:
        return runtime
    shown = PassedVariable("PIP_INDEX_URL", "set", f"mirrors.pip {user_config.shown_url(route.url)} ({route.origin})")
    return RuntimeEnv({**runtime.values, "PIP_INDEX_URL": route.url}, runtime.passed + (shown,), runtime.warnings,
                      runtime.mirrors | {"PIP_INDEX_URL"})
