"""Files into the vault: copy, read back, check, sign, note, place, record.

1. copy the source once into a temporary file while hashing it; seal (fsync,
   read-only); read it back from the disk and compare (a mismatch is copied
   again, up to MAX_COPY_ATTEMPTS); probe the copy. Meanwhile the next file is
   copied on a thread of its own (_Ahead): the recorder is read without pause;
2. small files wait in a group (up to GROUP_FILES files or GROUP_BYTES); a
   large file is a group of its own. For each group:
3. bytes the catalog already holds get a row of their own (their own name and
   times) pointing at the stored file: the vault keeps one copy;
4. what failed a check goes to the quarantine area; choose free names, sign the
   records, note the copies as pending in the catalog (one transaction), link
   them into the vault, sync each folder once, then insert the rows (one
   transaction, one ledger leaf a file), which removes the notes. A crash
   anywhere leaves either temporary files (the recorder still holds the files:
   it is never cleared of a file not recorded) or pending notes that recovery
   (ingest/recovery.py) finishes.

A catalog that cannot be written raises CatalogStopped: no further file is
copied, since it could not be recorded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import PurePosixPath
from typing import Generic, Protocol, TypeVar, cast

from devices.errors import SourceError
from ingest.dock import DockInterrupted, FileOutcome, IngestContext, Progress, Volume
from ingest.explain import KEPT_IN_QUARANTINE, NOT_CLEARED, WAITS_OFFLINE, vault_fault_kind
from ingest.mediatypes import is_sidecar
from ingest.plan import UNKNOWN, PlannedFile
from ingest.probe import MediaInfo, ProbeFailed, probe
from ingest.record import IngestRecord
from ingest.rules import corrected, timing
from storage.catalog import Stored
from storage.duties import Duties
from storage.errors import CatalogError, VaultError
from storage.hashing import hash_stream
from storage.models import Device, Duty, Officer, PendingCopy, Recording, row_json
from storage.vault import FILES, QUARANTINE, VaultWriter, is_taken, relative_path

log = logging.getLogger(__name__)

MAX_COPY_ATTEMPTS = 2
_PLACE_ATTEMPTS = 3

#: An officer's duties from the first to the last moment asked about (Filer._duty).
Window = tuple[datetime, datetime, Sequence[Duty]]

#: A file up to GROUP_FILE_BYTES waits for others to be recorded with them: one pending
#: note and one insert transaction, and one folder sync a folder, for up to GROUP_FILES
#: files or GROUP_BYTES. For many small files (photos) these round trips, not the bytes,
#: are the cost. A larger file is recorded on its own as soon as it is checked.
GROUP_FILE_BYTES = 4 << 20
GROUP_FILES = 64
GROUP_BYTES = 64 << 20


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
    """A file's bytes as read from the recorder, written to the vault (not yet sealed:
    the seal's sync runs while the next file is read)."""

    writer: VaultWriter
    sha256: str
    size: int
    changed: SourceError | None  # the source changed or vanished while it was read


@dataclass
class Ready:
    """A copy read back and checked, waiting to be recorded with its group."""

    p: PlannedFile
    target: PurePosixPath
    copy: Copy
    media: MediaInfo | None
    problem: tuple[str, str] | None  # (kind, error): it goes to quarantine
    rel: PurePosixPath | None = None
    row: Recording | None = None
    pending: PendingCopy | None = None  # noted in the catalog (recovery finishes it)

    @property
    def path(self) -> str:
        return self.p.entry.path


class _Cancelled(Exception):
    """A copy ahead is no longer wanted (the dock ends before it)."""


T = TypeVar("T")


class _Background(Generic[T]):
    """``fn()`` run on a thread of its own (or, not ``threaded``, here and now)."""

    def __init__(self, fn: Callable[[], T], name: str, *, threaded: bool = True):
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._run, args=(fn,), name=name,
                                            daemon=True)
            self._thread.start()
        else:
            self._run(fn)

    def _run(self, fn: Callable[[], T]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # noqa: BLE001  (raised again by result())
            self._error = exc

    def result(self) -> T:
        """What ``fn`` returned, or what it raised, raised here."""
        self._join()
        if self._error is not None:
            raise self._error
        return cast(T, self._value)

    def wait(self) -> T | None:
        """Wait for ``fn`` to end, its outcome not wanted: what it returned (None if it
        raised)."""
        self._join()
        return self._value if self._error is None else None

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()


class _Ahead:
    """The next file's copy, made on a thread of its own while the file before it is read
    back, checked and recorded: the recorder is read without pause. Only one copy reads
    the recorder at a time."""

    def __init__(self, p: PlannedFile, copy: Callable[[Callable[[], None]], Copy]):
        self.p = p
        self._cancelled = False
        self._job = _Background(lambda: copy(self._go_on), "copy-ahead")

    def _go_on(self) -> None:
        if self._cancelled:
            raise _Cancelled

    def take(self) -> Copy:
        """The copy, or what its making raised (a SourceError, a VaultError, a stop...)."""
        return self._job.result()

    def wait(self) -> None:
        """Wait until the copy is made (or failed); take() then gives it."""
        self._job.wait()

    def discard(self) -> None:
        """Stop the copy (at its next block) and remove what it wrote."""
        self._cancelled = True
        made = self._job.wait()
        if made is not None:
            made.writer.discard()


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
        self._group: list[Ready] = []  # checked copies waiting to be recorded together
        self._duties: dict[str, Window] = {}  # of the officers of the group
        self._ahead: _Ahead | None = None  # the next file's copy, being made

    def file(self, p: PlannedFile, following: PlannedFile | None = None) -> list[FileOutcome]:
        """Copy and check one planned file; the outcomes of the files recorded or failed by
        now: this one's, or none (a small file waits for its group: flush()), and those of
        the group it closed. ``following``: the file the dock files next, copied meanwhile
        (file() takes that copy; drop_ahead() discards it if the dock ends first)."""
        done = self.flush() if self._group and not self._joins(p) else []
        got = self._verified(p, following)
        if isinstance(got, FileOutcome):
            return [*done, got]
        try:
            if any(r.copy.sha256 == got.copy.sha256 for r in self._group):
                done += self.flush()  # recorded first: this one then finds it stored
        except BaseException:
            got.copy.writer.discard()
            raise
        self._group.append(got)
        if (p.entry.size > GROUP_FILE_BYTES or len(self._group) >= GROUP_FILES
                or sum(r.copy.size for r in self._group) >= GROUP_BYTES):
            done += self.flush()
        return done

    def _joins(self, p: PlannedFile) -> bool:
        """Whether ``p`` may wait with the group (a sidecar is recorded after the files it
        belongs to, so never with them)."""
        return (p.entry.size <= GROUP_FILE_BYTES
                and is_sidecar(p.entry.name) == is_sidecar(self._group[0].p.entry.name))

    def flush(self) -> list[FileOutcome]:
        """Record the copies waiting in the group; their outcomes."""
        group, self._group = self._group, []
        try:
            return self._record(group) if group else []
        finally:
            for r in group:
                if r.pending is None:  # never noted, or the note was dropped: nothing keeps it
                    r.copy.writer.discard()

    def drop_group(self) -> None:
        """Discard the copies waiting in the group (the catalog cannot record them)."""
        group, self._group = self._group, []
        for r in group:
            r.copy.writer.discard()

    def drop_ahead(self) -> None:
        """Discard the next file's copy if one is being made (the dock ends before it)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.discard()

    # Copy, read back, check -------------------------------------------------

    def _verified(self, p: PlannedFile, following: PlannedFile | None) -> Ready | FileOutcome:
        path = p.entry.path
        target = self._target(p)
        for attempt in range(1, MAX_COPY_ATTEMPTS + 1):
            try:
                copy = self._copy_of(p, target)
            except SourceError as exc:
                self.explain(exc.kind, path=path, device=p.device, error=str(exc),
                             action=exc.action or "the partial copy was discarded; "
                             + self.not_stored)
                return FileOutcome(path, "failed", detail=exc.kind)
            except VaultError as exc:
                return self._vault_failed(p, exc, discarded="the partial copy")
            if following is not None and self._ahead is None:
                self._ahead = self._copy_ahead(following)
            # The check (ffprobe: a process's start, 0.1 s) reads the copy while it is made
            # durable and read back, and the next file is read from the recorder; its
            # verdict counts only for a copy that reads back identical.
            # (A file of one block, a photo, is checked here: a thread would cost more.)
            checked = _Background(partial(self._check, p, copy), "check",
                                  threaded=copy.size > self.st.options.block_size)
            try:
                copy.writer.seal()
            except VaultError as exc:
                checked.wait()
                copy.writer.discard()
                return self._vault_failed(
                    p, exc, discarded="the copy, which could not be made durable,")
            mismatch = self._read_back(copy)
            if mismatch is None:
                try:
                    media, problem = checked.result()
                except DockInterrupted:  # stopped with the dock: no verdict, no copy
                    copy.writer.discard()
                    raise
                return Ready(p, target, copy, media, problem)
            checked.wait()
            copy.writer.discard()
            again = attempt < MAX_COPY_ATTEMPTS
            self.explain("digest_mismatch", path=path, device=p.device,
                         error=f"read {copy.sha256} ({copy.size} bytes) from the recorder, "
                               f"the stored copy gives {mismatch}",
                         action="the bad copy was discarded; " + (
                             "copying again" if again else self.not_stored))
        return FileOutcome(path, "failed", detail="digest_mismatch")

    def _target(self, p: PlannedFile) -> PurePosixPath:
        return relative_path(agency=self.st.agency, device=p.device, officer=p.officer,
                             start=p.start, original_name=p.entry.name)

    def _copy_ahead(self, p: PlannedFile) -> _Ahead:
        target = self._target(p)

        def copy(go_on: Callable[[], None]) -> Copy:
            return self._copy(p, target, go_on)
        return _Ahead(p, copy)

    def _copy_of(self, p: PlannedFile, target: PurePosixPath) -> Copy:
        """``p``'s copy: the one made ahead, else one made now (once no copy ahead is
        reading the recorder: one read of it at a time)."""
        ahead = self._ahead
        if ahead is not None and ahead.p is p:
            self._ahead = None
            return ahead.take()
        if ahead is not None:  # p is copied again (a mismatch): the copy ahead is kept
            ahead.wait()
        return self._copy(p, target)

    def _copy(self, p: PlannedFile, target: PurePosixPath,
              go_on: Callable[[], None] | None = None) -> Copy:
        """Read ``p`` from the recorder into a new vault file (unsealed)."""
        opts = self.st.options

        def advance(nbytes: int) -> None:
            if go_on is not None:
                go_on()
            self.progress.advance(nbytes)

        with self.volume.open(p.entry) as source:
            writer = self.st.vault.writer(target, read_back=opts.verify_reread)
            try:
                # Threads pay off over many blocks; for a file of one block (a photo)
                # starting them costs more than the copy (about 2 ms a file, measured).
                sha, size = hash_stream(source, writer, block_size=opts.block_size,
                                        threaded=opts.hash_thread
                                        and p.entry.size > opts.block_size,
                                        on_bytes=advance)
                changed: SourceError | None = None
                try:
                    source.finish()
                except SourceError as exc:
                    if size == 0 or not exc.keeps_copy:
                        raise
                    changed = exc  # keep what was read: it may exist nowhere else now
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

    def _record(self, group: list[Ready]) -> list[FileOutcome]:
        catalog = self.st.catalog
        try:
            twins = catalog.stored_digests(r.copy.sha256 for r in group if _may_share(r.copy))
        except CatalogError as exc:
            raise CatalogStopped(str(exc)) from exc
        self._duties = self._duties_of(group)
        done: list[FileOutcome] = []
        todo: list[Ready] = []
        for r in group:
            twin = twins.get(r.copy.sha256) if _may_share(r.copy) else None
            if twin is None:
                todo.append(r)
            else:
                r.copy.writer.discard()
                done.append(self._alias(r.p, r.copy, twin))
        placed: list[Ready] = []
        for _ in range(_PLACE_ATTEMPTS):
            if not todo:
                break
            todo = self._place(todo, placed, done)
        for r in todo:
            done.append(self._vault_failed(r.p, VaultError(
                f"vault: no free name for {self._wanted(r)}")))
        if not placed:
            return done
        try:
            catalog.add_recordings([Stored(r.row, *self._who(r.p), r.pending.id)
                                    for r in placed if r.row and r.pending])
        except CatalogError as exc:
            where = (f"the verified copy of {placed[0].path} is in the vault at "
                     f"{placed[0].rel}" if len(placed) == 1 else
                     f"the verified copies of {len(placed)} files (the first "
                     f"{placed[0].path}) are in the vault")
            raise CatalogStopped(f"{exc}; {where} and noted as pending: the next start "
                                 "records them") from exc
        for r in placed:
            done.append(self._recorded(r))
        return done

    def _wanted(self, r: Ready) -> PurePosixPath:
        return self.st.vault.in_area(QUARANTINE if r.problem else FILES, r.target)

    def _place(self, todo: list[Ready], placed: list[Ready],
               done: list[FileOutcome]) -> list[Ready]:
        """Name, note and link the copies; those whose name was taken meanwhile (by another
        station of a site) are returned, to be named again."""
        catalog, vault = self.st.catalog, self.st.vault
        named: list[Ready] = []
        try:
            wanted = {str(self._wanted(r)) for r in todo}
            taken = catalog.vault_paths_taken(wanted)
            for r in todo:
                try:
                    r.rel = vault.free_name(self._wanted(r), lambda name: name in taken or (
                        name not in wanted and catalog.vault_path_taken(name)))
                except VaultError as exc:
                    r.copy.writer.discard()
                    done.append(self._vault_failed(r.p, exc))
                    continue
                taken.add(str(r.rel))  # not for another file of the group
                r.row = self._row(r.p, r.copy.sha256, r.copy.size, Facts.of(r.media),
                                  str(r.rel), "quarantined" if r.problem else "stored")
                named.append(r)
            # a copy kept in quarantine carries its fault in the note: a crash before its
            # row is recorded does not lose the explanation (ingest/recovery.py writes it)
            notes = [PendingCopy(owner=vault.owner, session_id=self.session_id,
                                 tmp_path=str(r.copy.writer.tmp), vault_path=str(r.rel),
                                 row_json=row_json(r.row, self._fault(r)),
                                 created_at=self.st.clock())
                     for r in named if r.row is not None]
            if notes:
                catalog.add_pendings(notes)
        except CatalogError as exc:
            raise CatalogStopped(str(exc)) from exc
        again: list[Ready] = []
        linked: list[Ready] = []
        for r, note in zip(named, notes, strict=True):
            r.pending = note
            assert r.rel is not None
            try:
                r.copy.writer.place(r.rel, sync=False)
            except VaultError as exc:
                self._forget(r)
                if is_taken(exc):
                    again.append(r)  # someone took the name since it was chosen
                    continue
                done.append(self._vault_failed(r.p, exc))
                continue
            linked.append(r)
        # A failure here stops the dock (the vault's folders cannot be synced); the notes
        # stay, and the next start records the copies.
        vault.sync_folders(r.rel for r in linked if r.rel is not None)
        for r in linked:
            r.copy.writer.done()
        placed.extend(linked)
        return again

    @staticmethod
    def _fault(r: Ready) -> dict[str, str] | None:
        """The explanation a copy kept in quarantine is recorded with."""
        if r.problem is None:
            return None
        kind, error = r.problem
        return {"kind": kind, "error": error,
                "action": f"the copy is kept in quarantine at {r.rel}; " + KEPT_IN_QUARANTINE}

    def _recorded(self, r: Ready) -> FileOutcome:
        assert r.row is not None and r.rel is not None
        self.bytes_stored += r.copy.size
        fault = self._fault(r)
        if fault is not None:
            self.explain(fault["kind"], path=r.path, device=r.p.device, error=fault["error"],
                         recording_id=r.row.id, vault_path=r.rel, action=fault["action"])
        self._follow_rules(r.p, r.row)
        return FileOutcome(r.path, r.row.state, recording_id=r.row.id, vault_path=str(r.rel))

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

    def _forget(self, r: Ready) -> None:
        assert r.pending is not None and r.pending.id is not None
        try:
            self.st.catalog.drop_pending(r.pending.id)
        except CatalogError as exc:
            raise CatalogStopped(str(exc)) from exc
        r.pending = None

    def _vault_failed(self, p: PlannedFile, exc: VaultError, *,
                      discarded: str = "the verified copy") -> FileOutcome:
        """The explanation of a vault fault that ends ``p``'s filing, naming what was
        discarded."""
        kind = vault_fault_kind(exc.errno)
        self.explain(kind, path=p.entry.path, device=p.device, error=str(exc),
                     action=f"{discarded} was discarded; " + self.not_stored)
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

    def _duties_of(self, group: Sequence[Ready]) -> dict[str, Window]:
        """The duties of the group's officers around its files' times (one query each)."""
        starts: dict[str, list[datetime]] = {}
        for r in group:
            starts.setdefault(r.p.officer, []).append(_start(r.p, Facts.of(r.media))[0])
        duties = Duties(self.st.catalog)
        try:
            return {officer: (min(at), max(at), duties.during(officer, min(at), max(at)))
                    for officer, at in starts.items()}
        except CatalogError as exc:
            raise CatalogStopped(str(exc)) from exc

    def _duty(self, officer: str, start: datetime) -> Duty | None:
        """The officer's duty during which ``start`` falls, if any."""
        window = self._duties.get(officer)
        if window is None or not window[0] <= start <= window[1]:
            return Duties(self.st.catalog).covering(officer, start)
        return next((d for d in window[2] if d.starts_at <= start <= d.ends_at), None)

    def _row(self, p: PlannedFile, sha: str, size: int, media: Facts, vault_path: str,
             state: str) -> Recording:
        now = self.held_since.get(p.entry.path) or self.st.clock()
        start, start_from = _start(p, media)
        duty = self._duty(p.officer, start)
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


def _start(p: PlannedFile, media: Facts) -> tuple[datetime, str]:
    """When the recording began, and what says so."""
    if p.start_from == "mtime" and media.creation_time is not None:  # by the recorder's clock
        return corrected(media.creation_time, p.clock_offset_s), "metadata"
    return p.start, p.start_from


def _may_share(copy: Copy) -> bool:
    """Whether a copy may share a stored file of the same bytes (not empty, not changed)."""
    return copy.size > 0 and copy.changed is None


def _utc(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"
