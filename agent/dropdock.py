"""One batch of a drop folder's complete files, docked in the daemon's pool.

The same dock as a recorder's (ingest/pipeline.py), with the folder's device
and officer, stopping at its next step or block once the station stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.dropfolder import OnlyThese
from agent.settings import DropFolder
from agent.worker import STOPPING
from devices.source import FolderSource
from ingest.dock import DockInterrupted, IngestContext, NoProgress
from ingest.pipeline import Dock
from ingest.plan import Identity
from storage.errors import CatalogError, EvidockError
from storage.text import shown

log = logging.getLogger(__name__)


class DropDock:
    def __init__(self, station: IngestContext, folder: DropFolder, ready: set[str], *,
                 stopping: Callable[[], bool]):
        self.station = station
        self.root = folder.path
        self.given = Identity(given_device=folder.device, given_officer=folder.officer)
        self.ready = ready
        self.dock: Dock | None = None
        self.progress = UntilStopped(stopping)

    def run(self) -> None:
        try:
            source = FolderSource(OnlyThese(self.root, self.ready))
            self.dock = Dock(self.station, source, given=self.given,
                             given_by="the drop folder's settings", progress=self.progress)
            self.dock.run()
        except (CatalogError, EvidockError, OSError) as exc:  # the dock could not even start
            log.error("drop folder %s: %s; nothing was copied; the files are tried again when "
                      "they change or the daemon restarts", shown(str(self.root)), exc)

    def not_begun(self) -> None:
        """The station stopped before this batch's turn came."""
        log.warning("drop folder %s: %d file(s) not docked: the station stopped first; they "
                    "are docked at the next start", shown(str(self.root)), len(self.ready))

    def doing(self) -> str:
        """What this dock is doing now, for the log."""
        where = f"drop folder {shown(str(self.root))} ({len(self.ready)} file(s))"
        dock = self.dock
        if dock is None:
            return where
        current = self.progress.current
        return (f"{where}: {dock.state}" + (f", file {shown(current)}" if current else "")
                + f", session {dock.session_id}")


class UntilStopped(NoProgress):
    """Stops the dock at its next step or block once ``stopping()`` is true."""

    def __init__(self, stopping: Callable[[], bool]):
        self.stopping = stopping
        self.current: str | None = None  # the file being filed now

    def check(self) -> None:
        if self.stopping():
            raise DockInterrupted(STOPPING)

    def file_started(self, path: str, size: int) -> None:
        self.check()
        self.current = path

    def advance(self, nbytes: int) -> None:
        self.check()

    def file_done(self, path: str, status: str) -> None:
        self.current = None
