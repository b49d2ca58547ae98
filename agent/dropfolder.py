"""Drop folders: files that other recorders leave in a folder are ingested once complete.

A file is complete when the writer closed it (inotify's close-after-write,
through watchdog) or when its size and mtime have not changed for
``settle_s``. Each complete file is ingested through the same dock path as a
recorder's volume, with the folder's configured device and officer.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from agent.settings import DropFolder
from devices.volume import FolderVolume, SkippedEntry, SourceEntry

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    signature: tuple[int, int] | None = None
    since: float = field(default_factory=time.monotonic)
    closed: bool = False


class OnlyThese(FolderVolume):
    """A drop folder, showing only the files that are complete."""

    def __init__(self, root: Path, ready: set[str]):
        super().__init__(root)
        self.ready = ready

    def scan(self) -> tuple[list[SourceEntry], list[SkippedEntry]]:
        files, skipped = super().scan()
        return [f for f in files if f.path in self.ready], [
            s for s in skipped if s.path in self.ready]


class DropFolderWatcher(FileSystemEventHandler):
    def __init__(self, folders: list[DropFolder], settle_s: float):
        self.folders = folders
        self.settle_s = settle_s
        self.observer = Observer()
        self._pending: dict[Path, _Pending] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        for folder in self.folders:
            folder.path.mkdir(parents=True, exist_ok=True)
            self.observer.schedule(self, str(folder.path), recursive=True)
            for existing in folder.path.rglob("*"):  # files left while the daemon was down
                if existing.is_file() and not existing.is_symlink():
                    self._touch(existing, closed=False)
        self.observer.start()

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=1)  # a daemon thread: a stop never waits for it long

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        if isinstance(event, FileMovedEvent):
            self._touch(Path(str(event.dest_path)), closed=True)
        elif isinstance(event, FileClosedEvent):
            self._touch(Path(str(event.src_path)), closed=True)
        elif isinstance(event, FileCreatedEvent | FileModifiedEvent):
            self._touch(Path(str(event.src_path)), closed=False)

    def _touch(self, path: Path, *, closed: bool) -> None:
        with self._lock:
            pending = self._pending.setdefault(path, _Pending())
            pending.closed = pending.closed or closed
            if not closed:
                pending.signature, pending.since = None, time.monotonic()

    def ready(self) -> list[tuple[DropFolder, set[str]]]:
        """Per folder, the relative paths of files that are complete now."""
        now = time.monotonic()
        done: dict[Path, set[str]] = {}
        with self._lock:
            for path, pending in list(self._pending.items()):
                try:
                    st = path.stat()
                except FileNotFoundError:
                    del self._pending[path]
                    continue
                signature = (st.st_size, st.st_mtime_ns)
                if signature != pending.signature:
                    pending.signature, pending.since = signature, now
                    if not pending.closed:
                        continue
                if pending.closed or now - pending.since >= self.settle_s:
                    folder = next(f for f in self.folders if path.is_relative_to(f.path))
                    done.setdefault(folder.path, set()).add(
                        path.relative_to(folder.path).as_posix())
                    del self._pending[path]
        return [(f, done[f.path]) for f in self.folders if f.path in done]
