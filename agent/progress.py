"""A progress bar on the terminal (stderr): bytes, rate and files."""

from __future__ import annotations

import signal
from types import FrameType, TracebackType
from typing import Any

from ingest.dock import DockInterrupted, NoProgress
from ingest.dock import Progress as DockProgress


class TerminalProgress:
    def __init__(self) -> None:
        from rich.console import Console  # (only a dock shows it; every command starts)
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )
        self.bytes_task = self.bar.add_task("copying", visible=False)
        self.files = 0
        self.total_files = 0

    def __enter__(self) -> TerminalProgress:
        self.bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.bar.stop()

    def check(self) -> None:
        return None

    def begin(self, files: int, total_bytes: int) -> None:
        self.total_files = files
        self.bar.update(self.bytes_task, total=max(total_bytes, 1), visible=True,
                        description=f"0/{files} files")

    def file_started(self, path: str, size: int) -> None:
        return None

    def advance(self, nbytes: int) -> None:
        self.bar.advance(self.bytes_task, nbytes)

    def file_done(self, path: str, status: str) -> None:
        self.files += 1
        self.bar.update(self.bytes_task, description=f"{self.files}/{self.total_files} files")


def ignore_signals(*signums: int) -> None:
    """Leave ``signums`` ignored from now on (call from the main thread).

    They are blocked while the actions change: one arriving between Python's check of
    pending signals and the change would be reported on stderr, with a traceback, as
    "ignored due to race condition". A signal pending then is discarded (POSIX).
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, set(signums))
    try:
        for signum in signums:
            signal.signal(signum, signal.SIG_IGN)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class SignalStop:
    """SIGTERM and SIGINT while it is entered: the handler only sets a flag; a dock sees it
    at its next step or block, discards or finishes the file in hand, and closes
    truthfully. Progress is passed on to ``inner``."""

    def __init__(self, inner: DockProgress | None = None, *, after: Any = None) -> None:
        """``after``: the action left for both signals on leaving (e.g. SIG_IGN when the
        program ends with the command, so a late signal cannot change how it ended);
        None puts back what was there."""
        self.inner: DockProgress = inner or NoProgress()
        self.signum: int | None = None
        self.after = after
        self._old: dict[int, Any] = {}

    def __enter__(self) -> SignalStop:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.after is signal.SIG_IGN:
            ignore_signals(*self._old)
            return
        for sig, old in self._old.items():
            signal.signal(sig, old if self.after is None else self.after)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signum = signum

    def check(self) -> None:
        if self.signum is not None:
            raise DockInterrupted(f"evidock was stopped by {signal.Signals(self.signum).name}")

    def begin(self, files: int, total_bytes: int) -> None:
        self.inner.begin(files, total_bytes)

    def file_started(self, path: str, size: int) -> None:
        self.check()
        self.inner.file_started(path, size)

    def advance(self, nbytes: int) -> None:
        self.check()
        self.inner.advance(nbytes)

    def file_done(self, path: str, status: str) -> None:
        self.inner.file_done(path, status)
