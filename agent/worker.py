"""One docked recorder: talk to it, get its volume, run the dock, report progress."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.settings import RecorderModel, Settings
from devices.errors import RecorderError, SourceError
from devices.events import RecorderInfo
from devices.mount import Mounter, mounted
from devices.protocol import RecorderClient, RecorderIdentity
from devices.serial_link import SerialLink
from devices.volume import FolderVolume
from ingest.dock import DockFacts, DockInterrupted, IngestContext, Summary
from ingest.explain import rule_of
from ingest.naming import compile_patterns
from ingest.plan import Identity
from ingest.rules import LoggedEvent
from ingest.session import DockRun
from storage.errors import CatalogError, EvidockError
from storage.models import Explanation
from storage.registry import Registry

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Live progress of one dock, read by the status writer."""

    files_total: int = 0
    files_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    current: str | None = None
    first_byte_at: float | None = None  # monotonic


@dataclass
class Talk:
    """What the command port said."""

    identity: RecorderIdentity | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    events: tuple[LoggedEvent, ...] = ()


class RecorderWorker:
    """Runs in the daemon's pool; cancel() from any thread stops it at the next block."""

    def __init__(self, settings: Settings, station: IngestContext, info: RecorderInfo,
                 mounter: Mounter | None):
        self.settings = settings
        self.station = station
        self.info = info
        self.mounter = mounter
        self.model: RecorderModel | None = settings.model_named(info.model)
        self.state = "queued"
        self.error: str | None = None
        self.progress = Progress()
        self.talk = Talk()
        self.summary: Summary | None = None
        self.docked_at = time.monotonic()
        self.finished_at: float | None = None
        self.storage_face: RecorderInfo | None = info if info.has_storage else None
        self._storage: queue.Queue[RecorderInfo] = queue.Queue(maxsize=1)
        self._cancelled: str | None = None
        self._done = threading.Event()

    # Called from the daemon's thread -------------------------------------

    def offer_storage(self, face: RecorderInfo) -> None:
        if self.storage_face is None and self._storage.empty():
            self._storage.put(face)

    def cancel(self, why: str) -> None:
        self._cancelled = why

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    # ingest.session.Progress ---------------------------------------------

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

    def _check(self) -> None:
        if self._cancelled:
            raise DockInterrupted(self._cancelled)

    # The work --------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except DockInterrupted as exc:
            self.state, self.error = "interrupted", str(exc)
            self._explain("dock_interrupted", f"{exc} (before any file was copied)")
        except EvidockError as exc:
            self.state, self.error = "failed", str(exc)
            self._explain("dock_failed", str(exc))
        except OSError as exc:  # the volume or port failed underneath
            self.state, self.error = "failed", f"{exc.strerror or exc} ({exc.filename or ''})"
            self._explain("dock_failed", self.error)
        finally:
            self.finished_at = time.monotonic()
            self._done.set()

    def _explain(self, kind: str, error: str) -> None:
        """A dock that never reached its files still leaves a written explanation."""
        said = self.talk.identity
        exp = Explanation(kind=kind, rule=rule_of(kind), device_no=said.device if said else None,
                          source_path=None, occurred_at=self.station.clock(),
                          error=f"{self.info.label}: {error}",
                          action="nothing was copied; every file stays on the recorder")
        log.error("%s: %s; %s", self.info.label, error, exp.action)
        try:
            self.station.catalog.add_explanation(exp)
        except CatalogError as exc:
            log.error("%s: the explanation could not be recorded: %s", self.info.label, exc)

    def _run(self) -> None:
        registry = Registry(self.station.catalog)
        known = registry.by_usb_serial(self.info.usb_serial)
        identity = Identity(device=known.device_no if known else None,
                            officer=known.officer_no if known else None)
        if self.info.tty and self.model is not None and self.model.transport == "serial":
            self.state = "talking"
            self.talk = self._converse(self.model, self.info.tty)
            said = self.talk.identity
            assert said is not None
            identity = Identity(device=said.device, officer=said.officer,
                                officer_name=said.officer_name or None,
                                unit=_unit(said.unit_no, said.unit_name))
            known = known or registry.get(said.device)
            self.state = "waiting for storage"
            face = self._wait_storage()
        else:
            face = self.info
        if identity.officer and identity.officer_name is None and (
                officer := registry.officer(identity.officer)):
            identity = Identity(identity.device, identity.officer, officer.name,
                                _unit(officer.unit_no, officer.unit_name))
        registered = ("unregistered" if known is None or known.registered_at is None
                      else "retired" if known.status == "retired" else "registered")
        facts = DockFacts(usb_serial=self.info.usb_serial, model=self.info.model,
                          events=self.talk.events, registry=registered, **self.talk.facts)
        self.state = "copying"
        station = self.station
        if self.model is not None and self.model.file_patterns:  # the model names its files
            patterns = tuple(compile_patterns(self.model.file_patterns))
            station = replace(station, options=replace(station.options, patterns=patterns))
        with self._volume(face) as root:
            run = DockRun(station, FolderVolume(root), identity, progress=self, facts=facts)
            self.summary = run.run()
        self.state = "interrupted" if self._cancelled else "done"
        if self.settings.clear_after_ingest and self.state == "done":
            self._clear()

    def _converse(self, model: RecorderModel, port: str) -> Talk:
        zone = self.settings.zone
        link = SerialLink(port, model.baudrate)
        try:
            client = RecorderClient(link)
            client.authenticate(model.password)
            identity = client.identity()
            before = self.station.clock()
            device_clock = client.clock()
            after = self.station.clock()
            station_then = before + (after - before) / 2
            drift = (_aware(device_clock, zone) - station_then).total_seconds()
            if model.set_clock:
                client.set_clock(_local(self.station.clock(), zone))
            battery, storage = client.battery(), client.storage()
            events = tuple(LoggedEvent(_aware(e.at, zone).astimezone(UTC), e.kind, e.detail)
                           for e in client.events())
            client.mass_storage()
        finally:
            link.close()
        log.info("%s: device %s, officer %s, clock %+.0f s, battery %d%%", self.info.label,
                 identity.device, identity.officer, drift, battery)
        return Talk(identity, dict(clock_drift_s=drift, clock_set=model.set_clock,
                                   battery_pct=battery, storage_free=storage.free,
                                   storage_total=storage.total), events)

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
                        "switching to mass storage; the files stay on the recorder") from None

    @contextmanager
    def _volume(self, face: RecorderInfo) -> Iterator[Path]:
        if face.volume_path is not None:
            yield Path(face.volume_path)
            return
        if self.mounter is None or face.block_device is None:
            raise RecorderError(f"{face.label}: no way to mount it here")
        target = self.settings.run_dir / "mnt" / _safe(face.usb_serial)
        with mounted(self.mounter, face.block_device, face.fs_type, target) as root:
            yield root

    def _clear(self) -> None:
        """Clear the recorder, only if every file on it is verified in the vault now."""
        summary = self.summary
        assert summary is not None and self.info.tty and self.model
        if any(o.status == "failed" for o in summary.outcomes):
            log.warning("%s: not clearing: not every file is stored", self.info.label)
            return
        vault, catalog = self.station.vault, self.station.catalog
        for outcome in summary.outcomes:
            row = (catalog.recording(outcome.recording_id) if outcome.recording_id
                   else catalog.recording_for(summary.device, outcome.path))
            if row is None or vault.digest(row.vault_path) != (row.sha256, row.size):
                log.error("%s: not clearing: %s is not verified in the vault",
                          self.info.label, outcome.path)
                return
        link = SerialLink(self.info.tty, self.model.baudrate)
        try:
            client = RecorderClient(link)
            client.authenticate(self.model.password)
            cleared = client.clear()
        except (RecorderError, SourceError) as exc:
            log.error("%s: clearing failed: %s", self.info.label, exc)
            return
        finally:
            link.close()
        catalog.log("device-cleared", summary.device or self.info.usb_serial,
                    {"session": summary.session_id, "files": cleared})
        log.info("%s: cleared %d files after verifying them in the vault", self.info.label,
                 cleared)

    def status(self) -> dict[str, Any]:
        p, s = self.progress, self.talk
        return {
            "usb_serial": self.info.usb_serial, "model": self.info.model, "state": self.state,
            "device": s.identity.device if s.identity else None,
            "officer": s.identity.officer if s.identity else None,
            "files_done": p.files_done, "files_total": p.files_total,
            "bytes_done": p.bytes_done, "bytes_total": p.bytes_total, "current": p.current,
            "seconds": round((self.finished_at or time.monotonic()) - self.docked_at, 3),
            "first_byte_s": round(p.first_byte_at - self.docked_at, 3)
            if p.first_byte_at else None,
            "session": self.summary.session_id if self.summary else None,
            "error": self.error, **s.facts,
        }


def _unit(number: str | None, name: str | None) -> str | None:
    """Unit number and name as one text, or None when neither is known."""
    return " ".join(part for part in (number, name) if part) or None


def _aware(moment: datetime, zone: Any) -> datetime:
    return moment.replace(tzinfo=zone) if zone else moment.astimezone()


def _local(moment: datetime, zone: Any) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None) if zone else (
        moment.astimezone().replace(tzinfo=None))


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text) or "recorder"
