"""Progress bars for long byte transfers (loading and reading tarballs, later fetches)."""

from __future__ import annotations

from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn


class ByteProgress:
    """`with ByteProgress() as progress: advance = progress("loading x", total); advance(n)`.
    Draws on stderr, and only on a terminal: logs and pipes get no control characters."""

    def __init__(self) -> None:
        console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
            console=console, transient=True, disable=not console.is_terminal,
        )

    def __enter__(self) -> "ByteProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def __call__(self, label: str, total: int) -> Callable[[int], None]:
        task = self._progress.add_task(label, total=total)
        return lambda n: self._progress.advance(task, n)
