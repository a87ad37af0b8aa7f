"""Progress bars for long byte transfers (loading and reading tarballs, fetches, pushes)."""

from __future__ import annotations

import threading
from typing import Callable

# One display for the whole process: several hosts' transfers run in threads at once, and a
# terminal can show only one live display, so their bars share it (one line per transfer).
# It is made when the first bytes of a transfer are counted: rich (~0.1 s to import here) is not
# loaded by a command that moves no bytes (an `up` of an environment already up).
_lock = threading.Lock()
_shared = None  # rich.progress.Progress while a transfer of some user is shown
_users = 0


_loading = threading.Lock()  # held for good by the first load_display: the modules load once


def load_display() -> None:
    """Import what the first transfer's display needs (rich.console and rich.progress, ~0.1 s
    on the bench machine) before it is needed, by a command with time to spare: `up --host`
    while a server's handshake is under way (envctl/cli_remote.py on_hosts), so that its
    pushes do not wait for the import when they start. Once per process; a thread that finds
    another one loading returns at once."""
    if not _loading.acquire(blocking=False):
        return
    import rich.console  # noqa: F401
    import rich.progress  # noqa: F401


class ByteProgress:
    """`with ByteProgress() as progress: advance = progress("loading x", total); advance(n)`.
    Draws on stderr, and only on a terminal: logs and pipes get no control characters."""

    def __enter__(self) -> "ByteProgress":
        global _users
        with _lock:
            _users += 1
        return self

    def __exit__(self, *exc) -> None:
        global _shared, _users
        with _lock:
            _users -= 1
            if _users == 0 and _shared is not None:
                _shared.stop()
                _shared = None

    def __call__(self, label: str, total: int) -> Callable[[int], None]:
        """The `advance(n)` of a bar for `total` bytes. The bar (and the display, and rich) is
        made with the first bytes counted, not here: a tarball whose identity is remembered is
        asked for a bar and never read (the image step of an `up` already up), and neither
        imports rich for it nor leaves an empty bar on the terminal while the command goes on."""
        bar: list = []
        # One advance may be shared by threads whose first bytes come at once (push_segmented's
        # four parts of one file): without this lock each made a bar of its own, four lines
        # stuck at a quarter each.
        making = threading.Lock()

        def advance(n: int) -> None:
            if not bar:
                with making:
                    if not bar:
                        progress = _display()
                        bar[:] = [progress, progress.add_task(label, total=total)]
            bar[0].advance(bar[1], n)

        return advance


def _display():
    """The shared display, started on first use."""
    global _shared
    with _lock:
        if _shared is None:
            from rich.console import Console
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                       TransferSpeedColumn)

            console = Console(stderr=True)
            _shared = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TimeRemainingColumn(), console=console, transient=True, disable=not console.is_terminal,
            )
            _shared.start()
        return _shared
