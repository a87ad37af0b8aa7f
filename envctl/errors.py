"""The one error type users see.

Every failure a user can fix is an EnvctlError (or a subclass) carrying a message, an optional
hint (usually the next command to run) and a stable exit code. Third-party exceptions are
translated into these where they are caught; cli.py is the only place that prints them.
"""

from __future__ import annotations

from dataclasses import dataclass

# Exit codes are part of the public contract: scripts and CI jobs branch on them.
EXIT_USAGE = 2
EXIT_MANIFEST_INVALID = 3
EXIT_NOT_FOUND = 4
EXIT_HOST_NOT_READY = 5
EXIT_FETCH_FAILED = 6
EXIT_REMOTE_FAILED = 7
EXIT_ENGINE_FAILED = 8  # the Docker engine refused or failed an operation (envctl/engine_errors.py)
EXIT_INTERNAL = 70


class EnvctlError(Exception):
    """A failure explained in the user's terms."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


@dataclass(frozen=True)
class Problem:
    """One located problem in a manifest: `file:line:col: path: message`."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ManifestError(EnvctlError):
    """A manifest (or a profile it extends) is invalid; every problem found is listed."""

    exit_code = EXIT_MANIFEST_INVALID

    def __init__(self, problems: list[Problem], hint: str | None = None):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems), hint)


class ManifestNotFound(EnvctlError):
    exit_code = EXIT_NOT_FOUND


class HostNotReady(EnvctlError):
    exit_code = EXIT_HOST_NOT_READY


class WorldChanged(EnvctlError):
    """What a plan rested on changed between observation and apply (another `up`, a container
    removed or started by hand, an image re-tagged): `up` stops instead of improvising. Here,
    not in envctl/lifecycle.py beside the checks that raise it, so that what catches or raises
    it elsewhere (the artifact steps, which exec's plan imports) does not import docker-py."""

    exit_code = EXIT_HOST_NOT_READY


class FetchError(EnvctlError):
    """An artifact or image could not be fetched; what was already fetched is kept."""

    exit_code = EXIT_FETCH_FAILED
