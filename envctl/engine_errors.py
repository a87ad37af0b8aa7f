"""What an exception from the Docker engine's client means, in envctl's terms.

docker-py turns an engine's HTTP answer into one exception per status (`_raise_for_status` →
`create_api_error_from_http_exception`: 404 → NotFound / ImageNotFound, anything else ≥ 400 →
APIError with the engine's `message` as `explanation`), refuses some values itself before any
request (InvalidArgument, NullResource, plain DockerException or ValueError from its parsers,
e.g. `parse_bytes`, `split_port`), and lets requests' and urllib3's transport errors through
unchanged (ConnectionError when the socket is gone, ReadTimeout, ProtocolError "Connection
broken" in the middle of a stream). `translate` maps each of these to an envctl error with a
hint; it keeps docker-py's class too (see `translate`), so a call site that branches on
`NotFound` meaning "absent" works unchanged.

Sources: docker-py 7.x docker/errors.py and docker/api/client.py (`_raise_for_status`); the
engine's status codes in the Engine API reference (400 bad parameter, 404 no such object,
409 conflict, 500 server error).
"""

from __future__ import annotations

import errno
import http.client
import re
from dataclasses import dataclass
from typing import Callable

from envctl.errors import EXIT_ENGINE_FAILED, EXIT_HOST_NOT_READY, EnvctlError
from envctl.fs_errors import explain_os_error

ENGINE_LOG_HINT = "the engine's own log says more: journalctl -u docker (or the dockerd output)"


class EngineError(EnvctlError):
    """The Docker engine refused or failed an operation (exit 8)."""

    exit_code = EXIT_ENGINE_FAILED


class EngineNotFound(EngineError):
    """The engine has no such image, container or exec instance (HTTP 404)."""


class EngineConflict(EngineError):
    """The object is in a state that forbids the operation, or its name is taken (HTTP 409)."""


class EngineRefused(EngineError):
    """A value was refused, by docker-py before sending it or by the engine (HTTP 400)."""


class EngineUnavailable(EngineError):
    """The engine stopped answering: its socket is gone, the connection broke, or it timed out.
    The host is not ready (exit 5)."""

    exit_code = EXIT_HOST_NOT_READY


# The transport errors that mean "the engine went away", below and inside requests.
_CONNECTION_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.EPIPE, errno.ENOENT, errno.ECONNABORTED,
                      errno.ENOTCONN, errno.ETIMEDOUT}


def translate(exc: BaseException, operation: str, engine: str) -> BaseException:
    """The envctl error for `exc`, raised by `operation` (e.g. "containers.create") on the engine
    at `engine` (its base URL). An EnvctlError, a bug (TypeError, KeyError, ...) and anything
    not an Exception come back unchanged.

    The error returned is an instance of a class derived from both the envctl class and
    `type(exc)`, carrying exc's attributes (`status_code`, `explanation`, `build_log`, ...): code
    that catches docker-py's or requests' classes keeps working, and whatever nobody catches
    reaches the command line as an EnvctlError with its exit code and hint."""
    if isinstance(exc, EnvctlError) or not isinstance(exc, Exception):
        return exc
    error = _explain(exc, operation, engine)
    return exc if error is None else _both(error, exc)


def _explain(exc: Exception, operation: str, engine: str) -> EnvctlError | None:
    import docker.errors
    import requests.exceptions
    import urllib3.exceptions

    if isinstance(exc, docker.errors.APIError):
        return _api_error(exc, operation, engine)
    if isinstance(exc, (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError)):
        return EngineUnavailable(f"{_named(engine)} did not answer in time ({operation})",
                                 hint="it may be overloaded or stuck: check `docker info`, then run the command again")
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                        urllib3.exceptions.HTTPError, http.client.HTTPException)):
        return _gone(operation, engine, exc)
    if isinstance(exc, docker.errors.BuildError):
        return EngineError(f"the image build failed: {exc.msg}", hint="the build log above says which step failed")
    if isinstance(exc, docker.errors.ContainerError):
        return EngineError(f"a container exited with {exc.exit_status}: {_first_line(exc.stderr)}")
    if isinstance(exc, docker.errors.StreamParseError):
        return EngineError(f"the Docker engine sent a stream envctl cannot read ({operation}): {exc.msg}",
                           hint=ENGINE_LOG_HINT)
    if isinstance(exc, (docker.errors.DockerException, ValueError)):
        return EngineRefused(f"Docker refused a value ({operation}): {_first_line(str(exc))}",
                             hint="correct that value in the manifest; `envctl validate NAME` checks the others")
    if isinstance(exc, OSError):
        if exc.filename is not None:  # a file of ours (a tarball being sent), not the engine's socket
            return explain_os_error(exc)
        if exc.errno in _CONNECTION_ERRNOS or isinstance(exc, ConnectionError) or exc.errno is None:
            return _gone(operation, engine, exc)
    return None


# The runtime's words when it may not give the container's first process a resource limit
# (runc and crun set `--ulimit`s with prlimit(2) at start, after the container was created):
# - runc 1.1 (Docker 20.10-28, containerd 1.6+): "failed to create shim task: OCI runtime create
#   failed: runc create failed: unable to start container process: error during container init:
#   error setting rlimits for ready process: error setting rlimit type 8: operation not
#   permitted: unknown" (seen here from Docker 20.10.24 and 28, runc 1.1.5; wazuh/wazuh-docker#903,
#   containerd/nerdctl#1937, nestybox/sysbox#351)
# - runc 1.0-rc (Docker 19.03): "OCI runtime create failed: container_linux.go:349: starting
#   container process caused "process_linux.go:449: container init caused \"process_linux.go:
#   465: setting rlimits for ready process caused \\\"error setting rlimit type 7: operation not
#   permitted\\\"\"": unknown"
# - crun (Podman's default, Docker with --runtime crun): "crun: setrlimit `RLIMIT_MEMLOCK`:
#   Operation not permitted: OCI permission denied"
# runc names the limit by its Linux number (include/uapi/asm-generic/resource.h); Docker's
# --ulimit names are the RLIMIT_ names in lower case.
_RLIMIT_NUMBERS = ("cpu", "fsize", "data", "stack", "core", "rss", "nproc", "nofile", "memlock", "as", "locks",
                   "sigpending", "msgqueue", "nice", "rtprio", "rttime")
_RUNC_RLIMIT = re.compile(r"error setting rlimit type (\d+): ([A-Za-z ]+[A-Za-z])")
_CRUN_RLIMIT = re.compile(r"setrlimit `?RLIMIT_([A-Z]+)`?: ([A-Za-z ]+[A-Za-z])")
RLIMIT_HINT = ("the engine's runtime cannot raise that limit: it may not exceed what the engine itself may set (a "
               "rootless or nested engine, in LXC or sysbox, lacks CAP_SYS_RESOURCE; nofile stops at "
               "/proc/sys/fs/nr_open); lower the value, or remove it with null over the layer that set it")


@dataclass(frozen=True)
class RlimitRefused:
    """A resource limit the runtime could not set: `ulimit` in Docker's words (memlock), the
    kernel's RLIMIT_ name, and the reason (operation not permitted, invalid argument)."""

    ulimit: str
    resource: str
    reason: str


def rlimit_refused(text: str) -> RlimitRefused | None:
    """The limit an engine's error text says could not be set (runc or crun words), or None."""
    found = _RUNC_RLIMIT.search(text or "")
    if found and int(found.group(1)) < len(_RLIMIT_NUMBERS):
        name = _RLIMIT_NUMBERS[int(found.group(1))]
        return RlimitRefused(name, f"RLIMIT_{name.upper()}", found.group(2).strip().lower())
    found = _CRUN_RLIMIT.search(text or "")
    if found:
        return RlimitRefused(found.group(1).lower(), f"RLIMIT_{found.group(1)}", found.group(2).strip().lower())
    return None


def with_ulimit_origin(error: EnvctlError, container: str, ulimits: dict, origin_of: Callable[[tuple], object]):
    """`error` (starting `container` failed) restated when a ulimit was refused: which
    container.ulimits entry, its value, and where it was written (`origin_of(path)`: a
    provenance.Origin, with layer, file and line; layer "default" when no layer wrote it).
    Any other error comes back unchanged."""
    refused = rlimit_refused(error.message)
    if refused is None:
        return error
    path = ("container", "ulimits", refused.ulimit)
    origin = origin_of(path) if refused.ulimit in ulimits else None
    if origin is not None and getattr(origin, "file", None):
        layer = "the manifest" if origin.layer == "manifest" else origin.layer
        where = f"container.ulimits.{refused.ulimit}: {ulimits[refused.ulimit]}, set in {layer} at " \
                f"{origin.file}:{origin.line}"
    elif refused.ulimit in ulimits:
        where = f"container.ulimits.{refused.ulimit}: {ulimits[refused.ulimit]}"
    else:
        where = (f"not set by the manifest (container.ulimits has no {refused.ulimit}): the engine's own default "
                 "(dockerd's default-ulimits in /etc/docker/daemon.json)")
    combined = EngineRefused(f"the engine could not start {container}: the runtime may not set the ulimit "
                             f"{refused.ulimit} ({refused.resource}): {refused.reason}; {where}", hint=RLIMIT_HINT)
    combined.exit_code = getattr(error, "exit_code", combined.exit_code)
    return combined


def _api_error(exc, operation: str, engine: str) -> EngineError:
    status = exc.status_code or 0
    reason = _first_line(exc.explanation or str(exc))
    refused = rlimit_refused(reason)
    if refused is not None:
        return EngineRefused(f"the Docker engine's runtime may not set the ulimit {refused.ulimit} ({refused.resource}) "
                             f"({operation}): {refused.reason}", hint=RLIMIT_HINT)
    if status == 404:
        return EngineNotFound(f"not found on the Docker engine ({operation}): {reason}",
                              hint="it may have been removed meanwhile: `envctl status` shows what envctl made")
    if status == 409:
        return EngineConflict(f"the Docker engine refused {operation}: {reason}",
                              hint="another command changed it meanwhile: `docker ps -a` shows its state; run envctl again")
    if status in (400, 422):
        return EngineRefused(f"the Docker engine refused a value ({operation}): {reason}",
                             hint="correct that value in the manifest; `envctl validate NAME` checks the others")
    if status in (401, 403):
        return EngineRefused(f"the Docker engine does not permit {operation}: {reason}",
                             hint="an authorization plugin or the engine's configuration forbids it")
    if "no space left on device" in reason.lower():
        return EngineError(f"the Docker engine's disk is full ({operation}): {reason}",
                           hint="free space on its data root: `docker system df`, then `docker image prune`")
    return EngineError(f"the Docker engine failed {operation} (HTTP {status}): {reason}", hint=ENGINE_LOG_HINT)


def _gone(operation: str, engine: str, exc: Exception) -> EngineUnavailable:
    hint = ("check that it runs (systemctl status docker; docker info), then run the command again: "
            "what was already fetched is kept")
    if engine and "://" not in engine and ":" in engine:  # HOST:SOCKET, an SSH host's engine through its connection
        host = engine.split(":", 1)[0]
        hint = (f"the SSH connection to {host} or its engine went away: check `ssh {host} docker info`, then run the "
                "command again: what was already sent is kept; a command the engine was running (a setup step) "
                "runs on in the container until it ends")
    return EngineUnavailable(
        f"{_named(engine)} stopped answering during {operation} ({_first_line(str(exc)) or type(exc).__name__})",
        hint=hint)


def _named(engine: str) -> str:
    return f"the Docker engine at {engine}" if engine else "the Docker engine"


def _first_line(text) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    lines = [line for line in str(text or "").splitlines() if line.strip()]
    return lines[0].strip()[:400] if lines else ""


_HYBRIDS: dict[tuple[type, type], type] = {}


def _both(error: EnvctlError, original: Exception) -> EnvctlError:
    """`error` re-made as an instance of (type(error), type(original)) with original's state."""
    key = (type(error), type(original))
    cls = _HYBRIDS.get(key)
    if cls is None:
        try:
            cls = type(type(error).__name__, key, {"__module__": __name__, "__str__": _docker_str})
        except TypeError:  # incompatible layouts: the envctl error alone
            return error
        _HYBRIDS[key] = cls
    try:
        combined = cls.__new__(cls, *original.args)
    except Exception:  # noqa: BLE001  (a constructor with other rules: the envctl error alone)
        return error
    combined.args = original.args
    combined.__dict__.update(original.__dict__)
    combined.__dict__.update(error.__dict__)  # message, hint, exit_code
    combined.__traceback__ = original.__traceback__
    return combined


def _docker_str(self) -> str:
    # str() stays what docker-py's class says, as call sites that quote it expect; users are
    # shown .message and .hint.
    for base in type(self).__mro__[1:]:
        if "__str__" in base.__dict__ and not issubclass(base, EnvctlError):
            return base.__str__(self)
    return self.message
