"""What `envctl logs -f` follows: the run that writes the log, so that the follow ends when the
run has ended and its log is drained, as `docker logs -f` ends when its container stops.

The run is an exec the engine keeps (envctl/runs.py); the engine says whether it still runs
and, once it ended, its exit code (`GET /exec/{id}/json`: `Running`, `ExitCode`, moby
api/swagger.yaml ExecInspect). Asked through the Engine API, so it reads the same through a
remote host's forwarded socket. An exec the engine no longer knows (the container was removed
or restarted) has ended with no exit code known.
"""

from __future__ import annotations

from docker.errors import APIError, DockerException, NotFound


class RunWatch:
    """The run writing a followed log. `ended()`: whether it has ended (asked of the engine at
    each call); `said()`: what ended it, for stderr (`web ended (exit code 143: SIGTERM)`)."""

    def __init__(self, client, exec_id: str, name: str):
        self._client, self._exec_id, self.name = client, exec_id, name
        self._ended = False
        self.exit_code: int | None = None

    def ended(self) -> bool:
        if self._ended:
            return True
        try:
            info = self._client.api.exec_inspect(self._exec_id)
        except NotFound:
            self._ended = True  # gone with its container: ended, its exit code not known
            return True
        except (APIError, DockerException):
            return False  # the engine did not answer this time: keep following, ask again
        if info.get("Running"):
            return False
        self._ended = True
        code = info.get("ExitCode")
        self.exit_code = code if isinstance(code, int) else None
        return True

    def said(self) -> str:
        from envctl.detach import ended_by

        how = ended_by(self.exit_code) if self.exit_code is not None else "its exit code is not known"
        return f"{self.name} ended ({how}); its log is printed to the end"


def watch_for(client, container, log: str) -> RunWatch | None:
    """The running entrypoint run (envctl/runs.py) that writes `log` in `container`, or None when
    none does (the run ended before `logs` was asked: its log is printed and `logs -f` returns)."""
    from envctl.runs import running_work

    for run in reversed(running_work(client, container)):
        if run.kind == "entrypoint" and run.log == log and run.exec_id:
            return RunWatch(client, run.exec_id, run.name)
    return None
