"""A progress bar for long scans: files and bytes, speed, the file just read.

It appears only when a person is watching (stderr is a terminal, not CI, not
``--quiet``/``--no-progress``) and only when the scan is not instant: after
``delay`` seconds, or at once when there are many bytes to read. rich's
progress module is imported only then, so short scans pay nothing for it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

BIG_SCAN_BYTES = 256 * 1024 * 1024  # show at once above this: reading it will take a while
_FALSY = {"", "0", "false", "no", "off"}


def progress_wanted(*, quiet: bool, no_progress: bool) -> bool:
    """Whether a progress bar may be drawn on stderr."""
    if quiet or no_progress:
        return False
    if os.environ.get("CI", "").strip().lower() not in _FALSY:
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class ScanProgress:
    """Callbacks for :func:`aivet.scan`: ``on_start(files, bytes)`` and ``advance(path, nbytes)``.

    Disabled instances cost nothing. ``close()`` must be called (use ``with``).
    """

    def __init__(self, enabled: bool, *, delay: float = 0.5, console: Console | None = None) -> None:
        self.enabled = enabled
        self.delay = delay
        self._console = console
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._files = self._bytes = 0
        self._done_files = self._done_bytes = 0
        self._last = ""
        self._closed = False

    def __enter__(self) -> ScanProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def shown(self) -> bool:
        return self._progress is not None

    def on_start(self, files: int, nbytes: int) -> None:
        """Called once the files are known."""
        if not self.enabled:
            return
        self._files, self._bytes = files, nbytes
        if nbytes >= BIG_SCAN_BYTES or self.delay <= 0:
            self._show()
        else:
            self._timer = threading.Timer(self.delay, self._show)
            self._timer.daemon = True
            self._timer.start()

    def advance(self, path: str, nbytes: int) -> None:
        """Called after each file."""
        if not self.enabled:
            return
        with self._lock:
            self._done_files += 1
            self._done_bytes += nbytes
            self._last = path
            self._update()

    def close(self) -> None:
        """Stop the timer and remove the bar (it is transient: the report follows)."""
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            if self._progress is not None:
                self._progress.stop()

    def _show(self) -> None:
        with self._lock:
            if self._closed or self._progress is not None:
                return
            self._progress = _bar("[bold]scanning", self._console, files=True, current=True)
            self._task = self._progress.add_task("scan", total=max(self._bytes, 1), files="", current="")
            self._progress.start()
            self._update()

    def _update(self) -> None:
        if self._progress is None or self._task is None:
            return
        from aivet.report import printable

        current = printable(self._last)
        if len(current) > 40:
            current = "…" + current[-39:]
        self._progress.update(self._task, completed=self._done_bytes,
                              files=f"{self._done_files}/{self._files} files", current=current)


def _bar(label: str, console: Console | None = None, *, files: bool = False, current: bool = False) -> Progress:
    """The one progress bar style: label, bar, [files], bytes, bytes/s, time left, [current file]."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns: list[Any] = [TextColumn(label), BarColumn()]
    if files:
        columns.append(TextColumn("{task.fields[files]}"))
    columns += [DownloadColumn(binary_units=True), TransferSpeedColumn(), TimeRemainingColumn()]
    if current:
        columns.append(TextColumn("{task.fields[current]}", style="dim"))
    return Progress(*columns, console=console or Console(stderr=True), transient=True)


class ByteProgress:
    """Bytes and bytes/s for hashing (sign, verify, bom); safe to call from hashing threads."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.enabled = progress_wanted(quiet=False, no_progress=not enabled)
        self.label = label
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._pending = 0
        self._last = 0.0

    def total(self, nbytes: int) -> None:
        if not self.enabled:
            return
        self._progress = _bar(self.label)
        self._progress.start()
        self._task = self._progress.add_task(self.label, total=nbytes)

    def advance(self, nbytes: int) -> None:
        if self._progress is None or self._task is None:
            return
        with self._lock:  # batch updates: hashing threads call this for every few MiB
            self._pending += nbytes
            now = time.monotonic()
            if now - self._last < 0.1:
                return
            self._last, pending, self._pending = now, self._pending, 0
        self._progress.update(self._task, advance=pending)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
