"""One file into the vault: copy, read back, check, sign, note, place, record.

1. copy the source once into a temporary file while hashing it; seal (fsync,
   read-only); read it back from the disk and compare (a mismatch is copied
   again, up to MAX_COPY_ATTEMPTS);
2. bytes the catalog already holds get a row of their own (their own name and
   times) pointing at the stored file: the vault keeps one copy;
3. probe the copy; what fails a check goes to the quarantine area;
4. choose a free name, sign the record, note the copy as pending in the
   catalog, link it into the vault, then insert the row (which removes the
   note in the same transaction). A crash anywhere leaves either a temporary
   file or a pending note that recovery (ingest/recovery.py) finishes.

A catalog that cannot be written raises CatalogStopped: no further file is
copied, since it could not be recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Protocol

from devices.errors import SourceError
from ingest.dock import DockInterrupted, FileOutcome, IngestContext, Progress, Volume
from ingest.explain import KEPT_IN_QUARANTINE, NOT_CLEARED, WAITS_OFFLINE, vault_fault_kind
from ingest.mediatypes import is_sidecar
from ingest.plan import UNKNOWN, PlannedFile
from ingest.probe import MediaInfo, ProbeFailed, probe
from ingest.record import IngestRecord
from ingest.rules import corrected, timing
from storage.duties import Duties
from storage.errors import CatalogError, VaultError
from storage.hashing import hash_stream
from storage.models import Device, Officer, PendingCopy, Recording, row_json
from storage.vault import FILES, QUARANTINE, VaultWriter, is_taken, relative_path

log = logging.getLogger(__name__)

MAX_COPY_ATTEMPTS = 2
_PLACE_ATTEMPTS = 3


class CatalogStopped(Exception):
    """The catalog cannot be written: copying must stop, nothing more could be recorded."""


class Explain(Protocol):
    def __call__(self, kind: str, *, path: str | None, device: str | None, error: str,
                 action: str, recording_id: int | None = None,
                 vault_path: PurePosixPath | str | None = None) -> None: ...


class Names(Protocol):
    def __call__(self, officer_no: str) -> tuple[str | None, str | None]: ...


@dataclass(frozen=True)
class Facts:
    """What the media check found that goes into the row."""

    duration_s: float | None = None
    creation_time: datetime | None = None
    media_json: str | None = None

    @classmethod
    def of(cls, media: MediaInfo | None) -> Facts:
        if media is None:
            return cls()
        return cls(media.duration_s, media.creation_time, media.to_json())


@dataclass
class Copy:
    writer: VaultWriter
    sha256: str
    size: int
    changed: SourceError | None  # the source changed or vanished while it was read


class Filer:
    """Files the planned files of one dock session."""

    def __init__(self, st: IngestContext, session_id: str, volume: Volume, explain: Explain,
                 progress: Progress, names: Names,
                 held_since: Mapping[str, datetime] | None = None):
        self.st = st
        # When this station first held a verified copy of a source path, if before now
        # (a replay of the offline store, ingest/replay.py): the time its record states.
        self.held_since = held_since or {}
        # what is true of a file not stored: the recorder's, or (a replay) the offline store's
        self.not_stored = WAITS_OFFLINE if held_since is not None else NOT_CLEARED
        self.session_id = session_id
        self.volume = volume
        self.explain = explain
        self.progress = progress
        self.names = names
        self.bytes_stored = 0

    def file(self, p: PlannedFile) -> FileOutcome:
        path = p.entry.path
        target = relative_path(agency=self.st.agency, device=p.device, officer=p.officer,
                               start=p.start, original_name=p.entry.name)
        for attempt in range(1, MAX_COPY_ATTEMPTS + 1):
            try:
                copy = self._copy(p, target)
            except SourceError as exc:
                self.explain(exc.kind, path=path, device=p.device, error=str(exc),
                             action=exc.action or "the partial copy was discarded; "
                             + self.not_stored)
                return FileOutcome(path, "failed", detail=exc.kind)
            except VaultError as exc:
                kind = vault_fault_kind(exc.errno)
                self.explain(kind, path=path, device=p.device, error=str(exc),
                             action="the partial copy was discarded; " + self.not_stored)
                return FileOutcome(path, "failed", detail=kind)
            mismatch = self._read_back(copy)
            if mismatch is None:
                return self._record(p, target, copy)
            copy.writer.discard()
            again = attempt < MAX_COPY_ATTEMPTS
            self.explain("digest_mismatch", path=path, device=p.device,
                         error=f"read {copy.sha256} ({copy.size} bytes) from the recorder, "
                               f"the stored copy gives {mismatch}",
                         action="the bad copy was discarded; " + (
                             "copying again" if again else self.not_stored))
        return FileOutcome(path, "failed", detail="digest_mismatch")

    # Copy and read back ---------------------------------------------------

    def _copy(self, p: PlannedFile, target: PurePosixPath) -> Copy:
        opts = self.st.options
        with self.volume.open(p.entry) as source:
            writer = self.st.vault.writer(target)
            try:
                # Threads pay off over many blocks; for a file of one block (a photo)
                # starting them costs more than the copy (about 2 ms a file, measured).
                sha, size = hash_stream(source, writer, block_size=opts.block_size,
                                        threaded=opts.hash_thread
                                        and p.entry.size > opts.block_size,
                                        on_bytes=self.progress.advance)
                changed: SourceError | None = None
                try:
                    source.finish()
                except SourceError as exc:
                    if size == 0 or not exc.keeps_copy:
                        raise
                    changed = exc  # keep what was read: it may exist nowhere else now
                writer.seal()
            except BaseException:
                writer.discard()
                raise
        return Copy(writer, sha, size, changed)

    def _read_back(self, copy: Copy) -> str | None:
        """None if the durable copy reads back identical, else what it gave."""
        if not self.st.options.verify_reread:
            return None
        try:
            again, size = copy.writer.readback()
        except VaultError as exc:
            return f"nothing readable ({exc})"
        return None if (again, size) == (copy.sha256, copy.size) else f"{again} ({size} bytes)"

    # Record -----------------------------------------------------------------

    def _record(self, p: PlannedFile, target: PurePosixPath, copy: Copy) -> FileOutcome:
        catalog = self.st.catalog
        try:
            twin = (catalog.by_digest(copy.sha256, state="stored")
                    if copy.size > 0 and copy.changed is None else None)
        except CatalogError as exc:
            copy.writer.discard()
            raise CatalogStopped(str(exc)) from exc
        if twin is not None:
            copy.writer.discard()
            return self._alias(p, copy, twin)
        try:
            media, problem = self._check(p, copy)
        except DockInterrupted:  # the check was stopped with the dock: no verdict, no copy
            copy.writer.discard()
            raise
        area = QUARANTINE if problem else FILES
        wanted = self.st.vault.in_area(area, target)
        for _ in range(_PLACE_ATTEMPTS):
            try:
                rel = self.st.vault.free_name(wanted, catalog.vault_path_taken)
            except CatalogError as exc:
                copy.writer.discard()
                raise CatalogStopped(str(exc)) from exc
            except VaultError as exc:
                copy.writer.discard()
                return self._vault_failed(p, exc)
            row = self._row(p, copy.sha256, copy.size, Facts.of(media), str(rel),
                            "quarantined" if problem else "stored")
            try:
                pending = catalog.add_pending(PendingCopy(
                    owner=self.st.vault.owner, session_id=self.session_id,
                    tmp_path=str(copy.writer.tmp), vault_path=str(rel), row_json=row_json(row),
                    created_at=self.st.clock()))
            except CatalogError as exc:
                copy.writer.discard()
                raise CatalogStopped(str(exc)) from exc
            try:
                copy.writer.place(rel)
                break
            except VaultError as exc:
                self._forget(pending)
                if is_taken(exc):
                    continue  # someone took the name since it was chosen: choose again
                copy.writer.discard()
                return self._vault_failed(p, exc)
        else:
            copy.writer.discard()
            return self._vault_failed(p, VaultError(f"vault: no free name for {wanted}"))
        try:
            catalog.add_recording(row, *self._who(p), pending_id=pending.id)
        except CatalogError as exc:
            raise CatalogStopped(
                f"{exc}; the verified copy of {p.entry.path} is in the vault at {rel} and "
                "noted as pending: the next start records it") from exc
        self.bytes_stored += copy.size
        if problem is not None:
            kind, error = problem
            self.explain(kind, path=p.entry.path, device=p.device, error=error,
                         recording_id=row.id, vault_path=rel,
                         action=f"the copy is kept in quarantine at {rel}; "
                                + KEPT_IN_QUARANTINE)
        self._follow_rules(p, row)
        return FileOutcome(p.entry.path, row.state, recording_id=row.id, vault_path=str(rel))

    def _alias(self, p: PlannedFile, copy: Copy, twin: Recording) -> FileOutcome:
        """Bytes already stored (and checked): a row of this name and times, sharing the file.

        Bytes held only in quarantine get a copy of their own, checked afresh."""
        said = IngestRecord.from_row(twin).recorder_start  # as its recorder's clock said
        facts = Facts(twin.duration_s, said if twin.start_from == "metadata" else None,
                      twin.media_json)
        row = self._row(p, copy.sha256, copy.size, facts, twin.vault_path, "stored")
        try:
            self.st.catalog.add_recording(row, *self._who(p))
        except CatalogError as exc:
            raise CatalogStopped(str(exc)) from exc
        self._follow_rules(p, row)
        return FileOutcome(p.entry.path, row.state, recording_id=row.id,
                           vault_path=twin.vault_path,
                           detail=f"same bytes as recording {twin.id}; one copy in the vault")

    def _forget(self, pending: PendingCopy) -> None:
        assert pending.id is not None
        try:
            self.st.catalog.drop_pending(pending.id)
        except CatalogError as exc:
            raise CatalogStopped(str(exc)) from exc

    def _vault_failed(self, p: PlannedFile, exc: VaultError) -> FileOutcome:
        kind = vault_fault_kind(exc.errno)
        self.explain(kind, path=p.entry.path, device=p.device, error=str(exc),
                     action="the verified copy was discarded; " + self.not_stored)
        return FileOutcome(p.entry.path, "failed", detail=kind)

    def _check(self, p: PlannedFile, copy: Copy
               ) -> tuple[MediaInfo | None, tuple[str, str] | None]:
        if copy.changed is not None:
            return None, (copy.changed.kind, f"{copy.changed}; the copy holds the {copy.size} "
                                             f"bytes read (SHA-256 {copy.sha256})")
        if copy.size == 0:
            return None, ("empty_file", "the file has no bytes")
        if is_sidecar(p.entry.name):
            return None, None  # not media: stored and signed as it is
        try:
            media = probe(copy.writer.tmp_file, name=p.entry.name)
        except ProbeFailed as exc:
            # A stop may have reached ffprobe too (Ctrl-C signals a terminal's whole
            # process group): then its failure says nothing of the file.
            self.progress.check()
            return None, (exc.kind, str(exc))
        if media.damage:
            return media, ("media_truncated", media.damage)
        return media, None

    def _row(self, p: PlannedFile, sha: str, size: int, media: Facts, vault_path: str,
             state: str) -> Recording:
        now = self.held_since.get(p.entry.path) or self.st.clock()
        start, start_from = p.start, p.start_from
        if start_from == "mtime" and media.creation_time is not None:  # by the recorder's clock
            start, start_from = corrected(media.creation_time, p.clock_offset_s), "metadata"
        duty = Duties(self.st.catalog).covering(p.officer, start)
        times = timing(start, media.duration_s, now, self.st.options.window_hours,
                       duty.returned_at if duty else None)
        record = IngestRecord(
            station=self.st.station_id, agency=self.st.agency, session=self.session_id,
            device=p.device, officer=p.officer, source_path=p.entry.path, size=size,
            sha256=sha, recording_start=times.start, recording_end=times.end,
            ingested_at=now, deadline=times.deadline, vault_path=vault_path,
            clock_offset_s=p.clock_offset_s,
        )
        officer_name, unit = self.names(p.officer)
        sidecar = is_sidecar(p.entry.name)
        main = self.st.catalog.recording_beside(p.device, p.entry.path) if sidecar else None
        return Recording(
            session_id=self.session_id, station_id=record.station, agency=record.agency,
            device_no=p.device, officer_no=p.officer, source_path=p.entry.path,
            officer_name=officer_name, unit=unit,
            source_size=p.entry.size, source_mtime_ns=p.entry.mtime_ns, size=size,
            sha256=sha, signature=self.st.key.sign(record.canonical()), key_id=self.st.key.key_id,
            record_version=record.version, clock_offset_s=record.clock_offset_s,
            recording_start=times.start, recording_end=times.end, start_from=start_from,
            duration_s=media.duration_s, media_json=media.media_json,
            important=p.important, ingested_at=now, deadline=times.deadline, late=times.late,
            vault_path=vault_path, state=state, sidecar=sidecar,
            attached_to=main.id if main is not None else None,
        )

    def _who(self, p: PlannedFile) -> tuple[Device, Officer]:
        now = self.st.clock()
        return Device(device_no=p.device, first_seen=now, last_seen=now), Officer(
            officer_no=p.officer)

    def _follow_rules(self, p: PlannedFile, row: Recording) -> None:
        path = p.entry.path
        if row.late and row.attached_to is None:  # an attachment is late with its recording
            self.explain("late_ingest", path=path, device=p.device, recording_id=row.id,
                         error=f"deadline {row.deadline:%Y-%m-%d %H:%M:%S} UTC, "
                               f"stored {row.ingested_at:%Y-%m-%d %H:%M:%S} UTC",
                         action="stored and flagged late; a written explanation is required")
        if UNKNOWN in (p.device, p.officer):
            self.explain("identity_unknown", path=path, device=p.device, recording_id=row.id,
                         error=f"device {p.device}, officer {p.officer}",
                         action="stored; the custodian must name the device and officer")
        opts = self.st.options
        ahead = row.recording_start - row.ingested_at
        if ahead > timedelta(hours=opts.future_hours) or (
                row.ingested_at - row.recording_start > timedelta(days=opts.past_days)):
            self.explain("implausible_time", path=path, device=p.device, recording_id=row.id,
                         error=f"recorded at {_utc(row.recording_start)} (from "
                               f"{row.start_from}), stored at {_utc(row.ingested_at)}",
                         action="stored with the time as found; the deadline it gives cannot "
                                "be trusted; the custodian must check the recorder's clock")


def _utc(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"
