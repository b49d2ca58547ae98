"""One dock session: every file of a volume into the vault, signed and recorded.

For each planned file, oldest first: copy once while hashing, commit durably,
read back and compare, probe, sign the ingest record, then write the catalog
row and its event together. A fault on one file becomes a written explanation
and the run goes on with the next.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import PurePosixPath

from devices.errors import SourceError
from ingest.dock import (
    DockFacts,
    DockInterrupted,
    FileOutcome,
    IngestContext,
    NoProgress,
    Progress,
    Summary,
    Volume,
)
from ingest.explain import KINDS, LEFT_ON_DEVICE, rule_of, vault_fault_kind
from ingest.plan import UNKNOWN, Identity, PlannedFile, make_plan
from ingest.probe import MediaInfo, ProbeFailed, probe
from ingest.record import IngestRecord
from ingest.rules import CLOCK_DRIFT_LIMIT_S, interruptions, timing
from storage.canonical import canonical_json
from storage.errors import CatalogError, VaultError
from storage.hashing import hash_stream
from storage.models import Device, DockSession, Explanation, Officer, Recording
from storage.vault import relative_path

log = logging.getLogger(__name__)

MAX_COPY_ATTEMPTS = 2


class DockRun:
    """Ingest one volume. Create, then call run() once."""

    def __init__(self, station: IngestContext, volume: Volume, identity: Identity | None = None,
                 progress: Progress | None = None, facts: DockFacts | None = None):
        self.st = station
        self.volume = volume
        self.identity = identity or Identity()
        self.progress = progress or NoProgress()
        self.facts = facts or DockFacts(registry="unknown")
        recorder = {k: v for k, v in self.facts.__dict__.items() if k != "events"}
        recorder["events"] = len(self.facts.events)
        self.summary = Summary(session_id=str(uuid.uuid4()), source=volume.label,
                               started_at=station.clock(), recorder=recorder)

    # Explanations --------------------------------------------------------

    def explain(self, kind: str, *, path: str | None, device: str | None, error: str,
                action: str, recording_id: int | None = None,
                vault_path: PurePosixPath | None = None) -> None:
        exp = Explanation(
            session_id=self.summary.session_id, recording_id=recording_id, kind=kind,
            rule=rule_of(kind), device_no=device, source_path=path,
            vault_path=str(vault_path) if vault_path else None,
            occurred_at=self.st.clock(), error=error, action=action,
        )
        log.warning("%s: %s (%s): %s; %s", path or self.volume.label, KINDS[kind][1], kind,
                    error, action)
        try:
            self.st.catalog.add_explanation(exp)
        except CatalogError as exc:
            log.error("the explanation for %s could not be recorded: %s", path, exc)
            self.summary.unrecorded.append(f"{kind} {path}: {error}; {action}")
        self.summary.explanations.append(exp)

    # The run ---------------------------------------------------------------

    def run(self) -> Summary:
        entries, skipped = self.volume.scan()
        opts = self.st.options
        plan = make_plan(entries, self.identity, opts.patterns, opts.zone,
                         self.st.catalog.held_sources())
        devices = {p.device for p in plan.to_copy + plan.already_held}
        f = self.facts
        dock = DockSession(
            session_id=self.summary.session_id, station_id=self.st.station_id,
            device_no=self.identity.device or (devices.pop() if len(devices) == 1 else None),
            officer_no=self.identity.officer, source=self.volume.label,
            started_at=self.summary.started_at, files_seen=len(entries),
            usb_serial=f.usb_serial, model=f.model, clock_drift_s=f.clock_drift_s,
            clock_set=f.clock_set, battery_pct=f.battery_pct, storage_free=f.storage_free,
            storage_total=f.storage_total, device_log=f.log_json() if f.events else None,
        )
        self.st.catalog.start_session(dock)
        self.summary.device = dock.device_no
        self.explain_dock(dock.device_no)
        log.info("dock session %s: %d files on %s, %d already held, %d bytes to copy",
                 dock.session_id, len(entries), self.volume.label, len(plan.already_held),
                 plan.total_bytes)
        for item in skipped:
            self.explain(item.kind, path=item.path, device=dock.device_no, error=item.detail,
                         action="not ingested")
            self.summary.outcomes.append(FileOutcome(item.path, "failed", detail=item.kind))
        for held in plan.already_held:
            self.summary.outcomes.append(FileOutcome(held.entry.path, "already_held"))
        self.progress.begin(len(plan.to_copy), plan.total_bytes)
        for n, planned in enumerate(plan.to_copy):
            self.progress.file_started(planned.entry.path, planned.entry.size)
            try:
                outcome = self.ingest_file(planned)
            except CatalogError as exc:  # the catalog failed outside a recorded step
                self.explain("catalog_error", path=planned.entry.path, device=planned.device,
                             error=str(exc), action=LEFT_ON_DEVICE)
                outcome = FileOutcome(planned.entry.path, "failed", detail="catalog_error")
            except DockInterrupted as exc:
                self.interrupted(dock, str(exc), plan.to_copy[n:])
                break
            self.summary.outcomes.append(outcome)
            self.progress.file_done(outcome.path, outcome.status)
        return self.finish(dock)

    def interrupted(self, dock: DockSession, why: str, left: list[PlannedFile]) -> None:
        dock.interrupted = True
        self.explain("dock_interrupted", path=left[0].entry.path, device=dock.device_no,
                     error=why, action=f"the partial copy was discarded; {len(left)} file(s) "
                     "not stored stay on the recorder and are copied at the next dock")
        self.summary.outcomes.extend(FileOutcome(p.entry.path, "failed", detail="interrupted")
                                     for p in left)

    def explain_dock(self, device: str | None) -> None:
        """Explanations about the recorder itself: registry, clock, its own log."""
        f = self.facts
        if f.registry in ("unregistered", "retired"):
            self.explain(f"{f.registry}_device", path=None, device=device,
                         error=f"USB serial {f.usb_serial}, model {f.model}",
                         action="ingested anyway (evidence never stays behind); "
                                "the custodian must register or check it")
        if f.clock_drift_s is not None and abs(f.clock_drift_s) > CLOCK_DRIFT_LIMIT_S:
            self.explain("clock_drift", path=None, device=device,
                         error=f"recorder clock {f.clock_drift_s:+.0f} s from the station",
                         action=("clock set; " if f.clock_set else "clock not set; ")
                         + "times in names and metadata recorded before this dock are off "
                         "by this much")
        for event in interruptions(f.events):
            self.explain("recording_interrupted", path=None, device=device,
                         error=f"{event.kind} at {event.at:%Y-%m-%d %H:%M:%S} UTC"
                               + (f" ({event.detail})" if event.detail else ""),
                         action="officers must state the reason; if recording could not "
                                "continue, two or more officers sign a written explanation")

    def finish(self, dock: DockSession) -> Summary:
        s = self.summary
        s.finished_at = self.st.clock()
        body = canonical_json(s.to_dict())
        dock.finished_at = s.finished_at
        dock.files_stored = s.count("stored") + s.count("quarantined")
        dock.files_already_held = s.count("already_held") + s.count("duplicate")
        dock.files_failed = s.count("failed")
        dock.bytes_stored = s.bytes_stored
        dock.summary_json = body.decode("ascii")
        dock.interrupted = dock.interrupted or any(o.detail == "interrupted" for o in s.outcomes)
        dock.signature = self.st.key.sign(body)
        dock.key_id = self.st.key.key_id
        self.st.catalog.finish_session(dock)
        return s

    # One file --------------------------------------------------------------

    def ingest_file(self, p: PlannedFile) -> FileOutcome:
        path = p.entry.path
        stored = self.store_copy(p)
        if isinstance(stored, FileOutcome):
            return stored
        rel, sha = stored
        media, problem = self.check_media(rel, p.entry.size)
        state, placed = "stored", f"stored as found and quarantined at {rel}"
        if problem is not None:
            kind, error = problem
            try:
                rel, state = self.st.vault.quarantine(rel), "quarantined"
                placed = f"stored as found and quarantined at {rel}"
            except VaultError as exc:
                placed = f"stored as found at {rel}; it could not be quarantined: {exc}"
        now = self.st.clock()
        start, start_from = p.start, p.start_from
        if start_from == "mtime" and media is not None and media.creation_time is not None:
            start, start_from = media.creation_time, "metadata"
        duration = media.duration_s if media else None
        times = timing(start, duration, now, self.st.options.window_hours)
        record = IngestRecord(
            station=self.st.station_id, agency=self.st.agency, session=self.summary.session_id,
            device=p.device, officer=p.officer, source_path=path, size=p.entry.size,
            sha256=sha, recording_start=times.start, recording_end=times.end,
            ingested_at=now, deadline=times.deadline, vault_path=str(rel),
        )
        row = Recording(
            session_id=record.session, station_id=record.station, agency=record.agency,
            device_no=p.device, officer_no=p.officer, source_path=path,
            officer_name=self.identity.officer_name, unit=self.identity.unit,
            source_size=p.entry.size, source_mtime_ns=p.entry.mtime_ns, size=p.entry.size,
            sha256=sha, signature=self.st.key.sign(record.canonical()), key_id=self.st.key.key_id,
            recording_start=times.start, recording_end=times.end, start_from=start_from,
            duration_s=duration,
            media_json=media.to_json() if media else None, important=p.important,
            ingested_at=now, deadline=times.deadline, late=times.late,
            vault_path=str(rel), state=state,
        )
        try:
            self.st.catalog.add_recording(
                row, Device(device_no=p.device, first_seen=now, last_seen=now),
                Officer(officer_no=p.officer),
            )
        except CatalogError as exc:
            self.explain("catalog_error", path=path, device=p.device, error=str(exc),
                         action=f"the copy is in the vault at {rel} but not catalogued; "
                                "the file stays on the recorder")
            return FileOutcome(path, "failed", vault_path=str(rel), detail="catalog_error")
        self.summary.bytes_stored += p.entry.size
        if problem is not None:
            self.explain(kind, path=path, device=p.device, error=error, recording_id=row.id,
                         action=f"{placed}; the original stays on the recorder")
        self.follow_rules(p, row)
        return FileOutcome(path, state, recording_id=row.id, vault_path=str(rel))

    def follow_rules(self, p: PlannedFile, row: Recording) -> None:
        if row.late:
            self.explain("late_ingest", path=p.entry.path, device=p.device, recording_id=row.id,
                         error=f"deadline {row.deadline:%Y-%m-%d %H:%M:%S} UTC, "
                               f"stored {row.ingested_at:%Y-%m-%d %H:%M:%S} UTC",
                         action="stored and flagged late; a written explanation is required")
        if UNKNOWN in (p.device, p.officer):
            self.explain("identity_unknown", path=p.entry.path, device=p.device,
                         recording_id=row.id,
                         error=f"device {p.device}, officer {p.officer}",
                         action="stored; the custodian must name the device and officer")
        if p.identity_conflict:
            self.explain("identity_conflict", path=p.entry.path, device=p.device,
                         recording_id=row.id,
                         error=f"file name says device {p.name_device}, dock says {p.device}",
                         action="stored under the dock's device number")

    def store_copy(self, p: PlannedFile) -> tuple[PurePosixPath, str] | FileOutcome:
        """Copy, commit and read back; up to MAX_COPY_ATTEMPTS when the read-back differs."""
        path, vault = p.entry.path, self.st.vault
        target = relative_path(agency=self.st.agency, device=p.device, officer=p.officer,
                               start=p.start, original_name=p.entry.name)
        for attempt in range(1, MAX_COPY_ATTEMPTS + 1):
            try:
                sha, rel = self.copy_once(p, target)
            except SourceError as exc:
                self.explain(exc.kind, path=path, device=p.device, error=str(exc),
                             action="partial copy discarded; " + LEFT_ON_DEVICE)
                return FileOutcome(path, "failed", detail=exc.kind)
            except VaultError as exc:
                kind = vault_fault_kind(exc.errno)
                self.explain(kind, path=path, device=p.device, error=str(exc),
                             action="partial copy discarded; " + LEFT_ON_DEVICE)
                return FileOutcome(path, "failed", detail=kind)
            if rel is None:
                twin = self.st.catalog.by_digest(sha)
                return FileOutcome(path, "duplicate", recording_id=twin.id if twin else None,
                                   detail=f"same content as recording {twin.id if twin else '?'}")
            if not self.st.options.verify_reread:
                return rel, sha
            try:
                again, size = vault.digest(rel)
            except VaultError as exc:
                again, size = f"unreadable ({exc})", -1
            if (again, size) == (sha, p.entry.size):
                return rel, sha
            try:
                bad, where = vault.quarantine(rel), "quarantined"
            except VaultError as exc:
                bad, where = rel, f"could not be quarantined ({exc})"
            retry = attempt < MAX_COPY_ATTEMPTS
            self.explain("digest_mismatch", path=path, device=p.device, vault_path=bad,
                         error=f"read {sha}, stored copy gives {again} ({size} bytes)",
                         action=f"bad copy at {bad} {where}; "
                                + ("copying again" if retry else LEFT_ON_DEVICE))
        return FileOutcome(path, "failed", detail="digest_mismatch")

    def copy_once(self, p: PlannedFile, target: PurePosixPath
                  ) -> tuple[str, PurePosixPath | None]:
        """(digest, final vault path), or (digest, None) when the catalog has these bytes."""
        opts = self.st.options
        with self.volume.open(p.entry) as source:
            writer = self.st.vault.writer(target)
            try:
                sha, _ = hash_stream(source, writer, block_size=opts.block_size,
                                     threaded=opts.hash_thread, on_bytes=self.progress.advance)
                source.finish()
            except BaseException:
                writer.discard()
                raise
        if p.entry.size > 0 and self.st.catalog.by_digest(sha) is not None:
            writer.discard()
            return sha, None
        return sha, writer.commit()

    def check_media(self, rel: PurePosixPath, size: int
                    ) -> tuple[MediaInfo | None, tuple[str, str] | None]:
        if size == 0:
            return None, ("empty_file", "the file has no bytes")
        try:
            media = probe(self.st.vault.path(rel))
        except ProbeFailed as exc:
            return None, ("media_unreadable", str(exc))
        if cut := media.truncated_streams:
            detail = ", ".join(f"{s.kind} {s.packets_read} of {s.frames_declared} packets"
                               for s in cut)
            return media, ("media_truncated", f"only {detail} could be read")
        return media, None
