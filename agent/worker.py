"""One docked recorder in the daemon: threading, cancellation and status around one Dock."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from agent.offline import open_offline
from agent.settings import RecorderModel, Settings
from devices.errors import RecorderError
from devices.events import UNKNOWN_MODEL, RecorderInfo
from devices.mount import Mounter
from devices.source import DockedRecorder
from ingest.dock import DockInterrupted, IngestContext, Summary
from ingest.naming import compile_patterns
from ingest.pipeline import Dock
from ingest.plan import looks_like_recorder
from storage.errors import CatalogError, EvidockError
from storage.text import shown

log = logging.getLogger(__name__)
STOPPING = "the station is stopping"


@dataclass
class Progress:
    """Live progress of one dock, read by the status writer."""

    files_total: int = 0
    files_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    current: str | None = None
    first_byte_at: float | None = None  # monotonic


class RecorderWorker:
    """Runs in the daemon's pool; cancel() from any thread stops it at the next block."""

    def __init__(self, settings: Settings, station: IngestContext, info: RecorderInfo,
                 mounter: Mounter | None, *, stopping: Callable[[], bool] = lambda: False):
        self.settings = settings
        self.info = info
        self.model: RecorderModel | None = settings.model_named(info.model)
        self.error: str | None = None
        self.progress = Progress()
        self.summary: Summary | None = None
        self.docked_at = time.monotonic()
        self.finished_at: float | None = None
        self.storage_face: RecorderInfo | None = info if info.has_storage else None
        self._storage: queue.Queue[RecorderInfo] = queue.Queue(maxsize=1)
        self._cancelled: str | None = None
        self._stopping = stopping  # the station's stop flag, seen before cancel() comes
        self._done = threading.Event()
        model = self.model
        patterns = tuple(compile_patterns(model.file_patterns)) if model else ()

        def own(store: IngestContext) -> IngestContext:  # with the model's file names, if any
            return replace(store, options=replace(store.options, patterns=patterns)) \
                if patterns else store
        source = DockedRecorder(
            info, serial=model is not None and model.transport == "serial",
            baudrate=model.baudrate if model else 115200,
            password=model.password if model else "",
            sets_clock=bool(model and model.set_clock),
            can_clear=settings.clears(model), wait_storage=self._wait_storage,
            mounter=mounter, mount_dir=settings.run_dir / "mnt", check=self._talk_check)
        self.dock = Dock(own(station), source, progress=self, clear=settings.clears(model),
                         offline=(lambda why: own(open_offline(settings, why)))
                         if settings.offline_docking else None)

    # Called from the daemon's thread -------------------------------------

    def offer_storage(self, face: RecorderInfo) -> None:
        if self.storage_face is None and self._storage.empty():
            self._storage.put(face)

    def cancel(self, why: str) -> None:
        self._cancelled = why

    @property
    def state(self) -> str:
        return self.dock.state

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def not_begun(self) -> None:
        """The station stopped before this dock's turn came: it never ran."""
        log.warning("%s: not docked: the station stopped before its turn; nothing was "
                    "written; it is docked at the next start if it is still plugged in",
                    shown(self.info.label))
        self.error = "not docked: the station stopped before its turn"
        self.dock.state = "not docked"
        self.finished_at = time.monotonic()
        self._done.set()

    def doing(self) -> str:
        """What this dock is doing now, for the log."""
        current = self.progress.current
        return (f"{shown(self.info.label)}: {self.state}"
                + (f", file {shown(current)}" if current else "")
                + f", session {self.dock.session_id}")

    # ingest.dock.Progress ---------------------------------------------

    def begin(self, files: int, total_bytes: int) -> None:
        self.progress.files_total, self.progress.bytes_total = files, total_bytes

    def file_started(self, path: str, size: int) -> None:
        self._check()
        self.progress.current = path

    def advance(self, nbytes: int) -> None:
        self._check()
        if self.progress.first_byte_at is None:
            self.progress.first_byte_at = time.monotonic()
        self.progress.bytes_done += nbytes

    def file_done(self, path: str, status: str) -> None:
        self.progress.files_done += 1
        self.progress.current = None

    def check(self) -> None:
        self._check()

    def _check(self) -> None:
        if self._cancelled:
            raise DockInterrupted(self._cancelled)
        if self._stopping():
            raise DockInterrupted(STOPPING)

    def _talk_check(self) -> None:
        """While waiting on the command port: stop during the conversation, never during
        clearing (a CLR cut short would leave its outcome unwritten)."""
        if self.dock.state == "talking":
            self._check()

    # The work --------------------------------------------------------------

    def run(self) -> None:
        try:
            if self.info.model == UNKNOWN_MODEL and not self._looks_like_recorder():
                self.dock.state = "ignored"
                log.info("%s: not a recorder (no DCIM-style folder with recorder file names); "
                         "ignored", shown(self.info.label))
                return
            self.summary = self.dock.run()
            self.error = self.summary.error
        except CatalogError as exc:  # the session could not even be opened
            self.error = str(exc)
            self.dock.state = "failed"
            log.error("%s: the dock could not start, nothing was copied: %s",
                      shown(self.info.label), exc)
        finally:
            self.finished_at = time.monotonic()
            self._done.set()

    def _looks_like_recorder(self) -> bool:
        """For a volume of no configured model: do its files look like a recorder's?"""
        try:
            with self.dock.source.volume() as volume:
                entries, _ = volume.scan()
        except (EvidockError, OSError) as exc:
            log.warning("%s: cannot look at its files (%s); not docked", shown(self.info.label),
                        exc)
            return False
        if looks_like_recorder(entries, self.dock.st.options.patterns):
            self.dock.unknown_model = True
            return True
        return False

    def _wait_storage(self) -> RecorderInfo:
        deadline = time.monotonic() + self.settings.storage_wait_s
        while True:
            self._check()
            try:
                self.storage_face = self._storage.get(timeout=0.1)
                return self.storage_face
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise RecorderError(
                        f"no volume appeared within {self.settings.storage_wait_s:g} s after "
                        "the switch to mass storage") from None

    def status(self) -> dict[str, Any]:
        p, said = self.progress, self.dock.facts_said
        return {
            "usb_serial": self.info.usb_serial, "model": self.info.model, "state": self.state,
            "device": said.get("device_no"), "officer": said.get("officer_no"),
            "files_done": p.files_done, "files_total": p.files_total,
            "bytes_done": p.bytes_done, "bytes_total": p.bytes_total, "current": p.current,
            "seconds": round((self.finished_at or time.monotonic()) - self.docked_at, 3),
            "first_byte_s": round(p.first_byte_at - self.docked_at, 3)
            if p.first_byte_at else None,
            "session": self.dock.session_id, "error": self.error,
            **{k: v for k, v in said.items() if k in (
                "clock_drift_s", "clock_set", "battery_pct", "storage_free", "storage_total")},
        }
