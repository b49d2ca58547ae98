"""Replaying an offline dock into the site catalog.

While the site catalog cannot be reached, a station docks into its offline store (a
store of its own: SQLite catalog, vault, the station's key; agent/offline.py). When the
catalog can be reached again, each offline dock session is docked once more, into the
site, from the offline vault instead of the recorder:

* each file is the recorder's file as that dock listed it (path, size, time) and as it
  planned it (device, officer, recording times), read from the offline vault; its bytes
  must give the digest, and its offline row the signature, that the offline dock
  recorded, else it is not stored in the site (``offline_copy_altered``); a file the
  offline dock quarantined for its content is probed again, one it quarantined for how
  it was read (changed, vanished, unreadable) is quarantined again for that reason;
* its record states when the station first held the verified copy (the offline dock's
  time), so the 24-hour rule is judged by the dock, not by the replay;
* what only the site knows is checked now: the registry, files the site already holds
  (those are not stored twice), pauses against the device's other recordings, the
  device log against the entries the site already explained;
* the offline dock's explanations that no such check makes again are recorded in the
  site (with their own times), once, however often a replay is cut short and re-run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devices.errors import SourceError
from devices.protocol import RecorderIdentity
from devices.volume import SkippedEntry, SourceEntry
from ingest.dock import DockInterrupted, IngestContext, NoProgress, Summary, Volume
from ingest.pipeline import Dock
from ingest.plan import Plan, PlannedFile, SourceKey, plan_of
from ingest.record import IngestRecord
from ingest.rules import LoggedEvent
from ingest.source import Commands
from ingest.talk import Said
from storage.errors import VaultError
from storage.models import DockSession, Explanation, Recording
from storage.terms import LogFilter

# What a recorder said at the offline dock, carried into the replay's session as it is.
_FACTS = ("firmware", "device_no", "officer_no", "clock_drift_s", "clock_set",
          "battery_pct", "storage_free", "storage_total", "device_log", "ready_json")
# The offline dock's explanations the replay makes afresh (with the site's knowledge),
# besides those about one stored file (made again as the file is filed).
_MADE_AGAIN = frozenset({"unregistered_device", "retired_device", "out_of_service_device",
                         "recording_gap", "continuity_violation", "recording_interrupted"})
# What a replay judges against the site: one an earlier replay of the same offline dock
# recorded (the same kind, file and words) is not recorded again.
CHECKED_AT_REPLAY = _MADE_AGAIN | {"identity_conflict", "identity_unknown"}
# Quarantined by the offline dock for what the file holds: the replay's probe judges again.
_PROBED_AGAIN = frozenset({"media_truncated", "media_unreadable", "media_mismatch",
                           "empty_file"})
# Failures of the site's side: the replay is tried again (the file waits offline).
SITE_FAULTS = frozenset({"vault_full", "vault_read_only", "vault_io_error", "vault_error",
                         "digest_mismatch", "catalog_error"})


_FROM_THE_RECORDER = ("the offline dock did not clear the recorder: if the file is still "
                      "on it, its next dock copies it")


class OfflineCopyUnreadable(SourceError):
    """The offline store's copy cannot be read: not stored in the site, not tried again."""

    action = "not stored in the site catalog; " + _FROM_THE_RECORDER


class OfflineCopyAltered(SourceError):
    """Not the bytes, or not the row, the offline dock recorded: nothing is stored in the
    site (it would stand for the recorder's file, which the next dock would then skip)."""

    kind = "offline_copy_altered"
    keeps_copy = False
    action = ("not stored in the site catalog (the bytes read were discarded); the altered "
              "copy stays in the station's offline store, which is kept; " + _FROM_THE_RECORDER)


class OfflineQuarantined(SourceError):
    """The offline dock quarantined this file: the replay quarantines it again."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Replayed:
    """What a replay dock is told of the offline dock it replays (see pipeline.Dock)."""

    said: Said
    rows: dict[int, Recording]  # the offline rows, by id (OfflineVolume's entry.inode)
    facts: dict[str, Any]
    held_since: dict[str, datetime]  # source path -> when the offline dock stored it
    names: dict[str, tuple[str | None, str | None]]  # officer -> name, unit as recorded
    carried: list[Explanation]  # the offline dock's explanations to record in the site
    made: frozenset[tuple[str, str | None, str]]  # (kind, path, error) earlier replays made
    origin: dict[str, Any]  # the summary's "replayed_from"

    def plan(self, entries: Iterable[SourceEntry], held: Container[SourceKey]) -> Plan:
        """The plan the offline dock made (its device, officer, times: whatever file-name
        patterns its recorder's model had), less what the site holds."""
        return plan_of((self._planned(e) for e in entries), held)

    def _planned(self, entry: SourceEntry) -> PlannedFile:
        row = self.rows[entry.inode]
        return PlannedFile(entry=entry, device=row.device_no, officer=row.officer_no,
                           start=row.recording_start, start_from=row.start_from,
                           important=row.important, name_device=None, name_officer=None,
                           clock_offset_s=row.clock_offset_s)


def replay_label(offline: DockSession) -> str:
    """The source of the replay's session: names the offline session (one per replay)."""
    return f"replay of offline dock {offline.session_id} ({offline.source})"


class _VaultCopy:
    """An offline vault file read as a recorder file, checked against its record."""

    def __init__(self, handle: Any, row: Recording, problem: SourceError | None):
        self.handle = handle
        self.row = row
        self.problem = problem
        self.hash = hashlib.sha256()
        self.read_bytes = 0

    def read(self, size: int) -> bytes:
        try:
            data: bytes = self.handle.read(size)
        except OSError as exc:
            raise OfflineCopyUnreadable(f"read error in the offline store's copy of "
                                        f"{self.row.source_path}: {exc.strerror or exc}"
                                        ) from exc
        self.hash.update(data)
        self.read_bytes += len(data)
        return data

    def finish(self) -> None:
        row = self.row
        got = self.hash.hexdigest()
        if (got, self.read_bytes) != (row.sha256, row.size):
            raise OfflineCopyAltered(
                f"the offline store's copy of {row.source_path} ({row.vault_path}) gives "
                f"SHA-256 {got} ({self.read_bytes} bytes); its signed record says "
                f"{row.sha256} ({row.size} bytes)")
        if self.problem is not None:
            raise self.problem

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> _VaultCopy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OfflineVolume:
    """The files one offline dock stored, as the recorder volume they came from."""

    def __init__(self, store: IngestContext, rows: Sequence[Recording], label: str):
        self.store = store
        self.label = label
        self._rows = {row.id: row for row in rows}
        # the explanation of each file the offline dock put in quarantine
        self._quarantined = {e.recording_id: e for e in store.catalog.explanations(
            session_id=rows[0].session_id) if e.recording_id is not None
            and e.vault_path is not None} if rows else {}

    def scan(self) -> tuple[list[SourceEntry], list[SkippedEntry]]:
        entries = [SourceEntry(row.source_path.encode(), row.source_path, "utf-8",
                               row.source_size, row.source_mtime_ns, row_id)
                   for row_id, row in self._rows.items() if row_id is not None]
        entries.sort(key=lambda e: e.raw_path)
        return entries, []

    def open(self, entry: SourceEntry) -> _VaultCopy:
        row = self._rows[entry.inode]
        try:
            handle = self.store.vault.path(row.vault_path).open("rb")
        except (OSError, VaultError) as exc:
            raise OfflineCopyUnreadable(f"the offline store's copy of {row.source_path} "
                                        f"({row.vault_path}) cannot be read: {exc}") from exc
        return _VaultCopy(handle, row, self._problem(row))

    def _problem(self, row: Recording) -> SourceError | None:
        key = self.store.key
        if row.key_id != key.key_id or not key.public.verify(
                row.signature, IngestRecord.from_row(row).canonical()):
            return OfflineCopyAltered(
                f"the offline store's record of {row.source_path} fails its signature check "
                f"with the station's key {key.key_id} (signed with {row.key_id})")
        why = self._quarantined.get(row.id or 0)
        if row.state != "quarantined" or (why is not None and why.kind in _PROBED_AGAIN):
            return None
        return OfflineQuarantined(
            "quarantined by the offline dock: " + (
                f"{why.error}" if why else "its explanation is not in the offline store"),
            why.kind if why else "unreadable_source")


class OfflineSource:
    """An offline dock session as a recorder source: no command port, no clearing."""

    def __init__(self, store: IngestContext, offline: DockSession):
        self.store = store
        self.offline = offline
        self.rows = store.catalog.recordings(LogFilter(session=offline.session_id))
        self.label = replay_label(offline)
        self.usb_serial = offline.usb_serial
        self.model = offline.model
        self.password = ""
        self.sets_clock = False
        self.can_clear = False

    def commands(self) -> AbstractContextManager[Commands | None]:
        return nullcontext(None)

    @contextmanager
    def volume(self) -> Iterator[Volume]:
        yield OfflineVolume(self.store, self.rows, self.label)


class _Stop(NoProgress):
    def __init__(self, stopping: Callable[[], bool]):
        self.stopping = stopping

    def check(self) -> None:
        if self.stopping():
            raise DockInterrupted("the station is stopping")

    def file_started(self, path: str, size: int) -> None:
        self.check()

    def advance(self, nbytes: int) -> None:
        self.check()


def replay_session(site: IngestContext, store: IngestContext, offline: DockSession,
                   stopping: Callable[[], bool] = lambda: False) -> Summary:
    """Dock one (closed) offline session into the site; its summary. ``stopping`` true
    interrupts it at its next file (what was stored stays; the rest is replayed later)."""
    source = OfflineSource(store, offline)
    return Dock(site, source, replayed=_replayed(site, store, offline, source.rows),
                progress=_Stop(stopping)).run()


def complete(summary: Summary) -> bool:
    """Whether the site now holds every file of the offline dock (or explains why it
    never can): nothing is left to try again."""
    return (summary.error is None and not summary.unrecorded and not any(
        o.status == "failed" and o.detail in SITE_FAULTS for o in summary.outcomes))


def _replayed(site: IngestContext, store: IngestContext, offline: DockSession,
              rows: Sequence[Recording]) -> Replayed:
    facts = {name: getattr(offline, name) for name in _FACTS
             if getattr(offline, name) is not None}
    identity = (RecorderIdentity(offline.device_no, offline.officer_no, "", "", "")
                if offline.device_no and offline.officer_no else None)
    said = Said(identity=identity, events=_events(offline.device_log))
    earlier = [e for session in site.catalog.sessions_from(replay_label(offline))
               for e in site.catalog.explanations(session_id=session.session_id)]
    already = {(e.kind, e.source_path, e.occurred_at, e.error) for e in earlier}
    carried = [_carried(e, offline) for e in store.catalog.explanations(
        session_id=offline.session_id) if e.recording_id is None
        and e.kind not in _MADE_AGAIN
        and (e.kind, e.source_path, e.occurred_at, e.error) not in already]
    summary = offline.summary_json
    return Replayed(
        said=said, rows={row.id: row for row in rows if row.id is not None}, facts=facts,
        held_since={row.source_path: row.ingested_at for row in rows},
        names={row.officer_no: (row.officer_name, row.unit) for row in rows
               if row.officer_name is not None},
        carried=carried,
        made=frozenset((e.kind, e.source_path, e.error) for e in earlier
                       if e.kind in CHECKED_AT_REPLAY),
        origin={"session": offline.session_id, "source": offline.source,
                "started_at": offline.started_at, "finished_at": offline.finished_at,
                "summary_sha256": hashlib.sha256(summary.encode("ascii")).hexdigest()
                if summary else None, "key_id": offline.key_id})


def _events(device_log: str | None) -> tuple[LoggedEvent, ...]:
    if not device_log:
        return ()
    return tuple(LoggedEvent(datetime.fromisoformat(e["at"]), e["kind"], e["detail"])
                 for e in json.loads(device_log))


def _carried(exp: Explanation, offline: DockSession) -> Explanation:
    return Explanation(  # (the device, if the offline dock learnt it only later)
        kind=exp.kind, rule=exp.rule, device_no=exp.device_no or offline.device_no,
        source_path=exp.source_path,
        occurred_at=exp.occurred_at, error=exp.error,
        action=f"{exp.action} (recorded in the station's offline store by dock session "
               f"{offline.session_id}; carried into the site catalog by its replay)")
