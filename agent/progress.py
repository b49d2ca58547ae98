"""A progress bar on the terminal (stderr): bytes, rate and files."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class TerminalProgress:
    def __init__(self) -> None:
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
