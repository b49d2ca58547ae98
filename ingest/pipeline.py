"""One dock, the same for the daemon, ``evidock ingest`` and drop folders.

Open a session (so a crash at any later point is found and closed by
recovery), talk to the recorder if it has a command port (ingest/talk.py),
wait for its volume, file every new file (ingest/filing.py), explain its own
log and any disagreement about who recorded what, clear it if asked and every
file is verified, and always finish: the session is closed and signed with an
account taken from the catalog, whatever raised.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from ingest import continuity, custody, readiness
from ingest.account import dock_account
from ingest.clearing import clear_recorder
from ingest.dock import DockInterrupted, FileOutcome, IngestContext, NoProgress, Progress, Summary
from ingest.explain import KINDS, dock_not_started, needs_notice, rule_of, vault_fault_kind
from ingest.filing import CatalogStopped, Filer
from ingest.mediatypes import is_sidecar
from ingest.plan import UNKNOWN, HeldByDevice, Identity, PlannedFile, make_plan
from ingest.rules import CLOCK_DRIFT_LIMIT_S, LoggedEvent, clock_offset, corrected, interruptions
from ingest.source import RecorderSource
from ingest.talk import Said, converse
from storage.canonical import canonical_json
from storage.errors import CatalogError, CatalogUnreachable, EvidockError, VaultError
from storage.models import DockSession, Explanation, LoggedDeviceEvent
from storage.registry import Registry
from storage.text import shown

if TYPE_CHECKING:
    from ingest.replay import Replayed

log = logging.getLogger(__name__)

OFFLINE_ACTION = (
    "docked into the station's offline store; evidock did not clear the recorder; the "
    "site's registry, the device's other recordings and its log are checked when the "
    "store is replayed into the site catalog, once it can be reached (by the daemon as it "
    "starts and every minute, before the next `evidock ingest`, or by `evidock replay`)")


class Dock:
    """One dock of one source. Create, then call run() once (from one thread)."""

    def __init__(self, station: IngestContext, source: RecorderSource, *,
                 given: Identity | None = None, given_by: str = "the operator",
                 progress: Progress | None = None, clear: bool = False,
                 offline: Callable[[str], IngestContext] | None = None,
                 replayed: Replayed | None = None):
        self.st = station
        # Opens the station's offline store, if the site catalog cannot be reached when
        # the dock begins (agent/offline.py); the dock then goes there.
        self.offline = offline
        self.replayed = replayed  # this dock replays an offline dock (ingest/replay.py)
        self._opened: IngestContext | None = None  # the offline store, if this dock opened it
        self.source = source
        self.given = given or Identity()
        self.given_by = given_by
        self.progress = progress or NoProgress()
        self.clear = clear
        self.unknown_model = False  # docked by its layout, of no configured model
        self.session_id = str(uuid.uuid4())
        self.state = "queued"
        self.facts_said: dict[str, Any] = {}  # what the recorder said, as recorded
        self.said = Said()
        self.summary = Summary(session_id=self.session_id, source=source.label,
                               started_at=station.clock(), recorder=self.facts_said)
        self.registry = Registry(station.catalog)
        self._names: dict[str, tuple[str | None, str | None]] = {}
        self._filer: Filer | None = None
        self._current: str | None = None  # the file being filed now

    # The run ---------------------------------------------------------------

    def run(self) -> Summary:
        """Dock; the session is closed whatever happens after it opened."""
        self.st.replay_spool()  # first what an earlier outage left to record
        try:
            unwritable = self._start()
        except CatalogError as exc:  # no session opened: the explanation names none
            log.error("%s: the dock could not start: %s", shown(self.source.label), exc)
            self._spooled(dock_not_started(self.source.label, exc, self.st.clock()))
            raise
        try:
            if unwritable is not None:
                raise unwritable
            if self.st.offline_because is not None:
                self.explain("docked_offline", path=None, device=None,
                             error=self.st.offline_because, action=OFFLINE_ACTION)
            self._dock()
        except VaultError as exc:
            self._stopped(vault_fault_kind(exc.errno), f"the vault cannot be written: {exc}")
        except DockInterrupted as exc:
            self.summary.interrupted = True
            self._stopped("dock_interrupted", str(exc))
        except CatalogStopped as exc:
            self._stopped("catalog_error", f"the catalog cannot be written: {exc}")
        except (EvidockError, OSError) as exc:
            self._stopped("dock_failed", _reason(exc))
        finally:
            self._finish()
            if self._opened is not None:
                self._opened.close()
        return self.summary

    def _start(self) -> VaultError | None:
        """Open the session (in the offline store if the site catalog cannot be reached and
        the dock may go there); what keeps the vault from taking anything, if anything."""
        try:
            return self._open_session()
        except CatalogUnreachable as exc:
            if self.offline is None:
                raise
            log.warning("%s: %s; docking into the station's offline store",
                        shown(self.source.label), exc)
            try:
                self.st = self._opened = self.offline(str(exc))
            except (EvidockError, OSError) as offline_exc:
                raise CatalogUnreachable(f"{exc} (and the station's offline store cannot be "
                                         f"opened: {_reason(offline_exc)})") from offline_exc
            self.registry = Registry(self.st.catalog)
            return self._open_session()

    def _open_session(self) -> VaultError | None:
        st = self.st
        try:
            owner, unwritable = st.vault.owner, None
        except VaultError as exc:  # the vault takes nothing: the dock is recorded as failed
            owner, unwritable = None, exc
        st.catalog.start_session(DockSession(
            session_id=self.session_id, station_id=st.station_id,
            source=self.source.label, started_at=self.summary.started_at,
            usb_serial=self.source.usb_serial, model=self.source.model, owner=owner))
        return unwritable

    def _dock(self) -> None:
        if self.replayed is not None:
            self.said = self.replayed.said
            self.summary.replayed_from = self.replayed.origin
            self._names.update(self.replayed.names)
            self.facts(**self.replayed.facts)
            self._carry(self.replayed.carried)
        else:
            with self.source.commands() as cmd:
                if cmd is not None:
                    self.state = "talking"
                    self.said = converse(cmd, password=self.source.password,
                                         set_clock=self.source.sets_clock,
                                         zone=self.st.options.zone, clock=self.st.clock,
                                         notes=self)
        offline = self.st.offline_because is not None
        identity = self._identity()
        if self.unknown_model:
            self.explain("unknown_model", path=None, device=None, error=self.source.label,
                         action="docked as a recorder of unknown model, since its files are "
                                "laid out as a recorder's; the custodian must add its model "
                                "and register it (docs/operations.md)")
        self.state = "waiting for storage"
        with self.source.volume() as volume:
            self.state = "copying"
            entries, skipped = volume.scan()
            opts = self.st.options
            held = HeldByDevice(lambda device: self._catalog(
                lambda: self.st.catalog.held_sources(device)))
            plan = (self.replayed.plan(entries, held) if self.replayed is not None else
                    make_plan(entries, identity, opts.patterns, opts.zone, held,
                              self.clock_offset_s))
            devices = {p.device for p in plan.to_copy + plan.already_held} - {UNKNOWN}
            device = identity.device or (next(iter(devices)) if len(devices) == 1 else None)
            self.summary.device = device
            self.facts(files_seen=len(entries), files_already_held=len(plan.already_held),
                       **({"device_no": device} if device else {}))
            if not offline:  # the site's registry is not in the offline store
                self._check_registry(devices | ({identity.device} if identity.device
                                                else set()))
            if self.replayed is None:  # (a replay carries the offline dock's account)
                self._check_clock(device)
            log.info("dock session %s: %d files on %s, %d already held, %d bytes to copy",
                     self.session_id, len(entries), shown(volume.label), len(plan.already_held),
                     plan.total_bytes)
            for item in skipped:
                self.explain(item.kind, path=item.path, device=device, error=item.detail,
                             action="not ingested")
                self.summary.outcomes.append(FileOutcome(item.path, "failed", detail=item.kind))
            self.summary.outcomes.extend(FileOutcome(h.entry.path, "already_held")
                                         for h in plan.already_held)
            self._conflicts(identity, plan.to_copy + plan.already_held)
            self._file_all(volume, plan.to_copy)
        if not offline:  # the device's other recordings are in the site catalog
            self._gaps()
        self._device_log(device, self.said.events)
        if offline:
            self.summary.cleared = ("not cleared: docked offline, the site catalog does not "
                                    "hold these files yet")
        elif self.clear:
            self.check()  # a dock told to stop does not begin clearing
            self.state = "clearing"
            clear_recorder(self, device, entries, skipped)
        self.check()
        self.state = "checking readiness"
        readiness.check(self, device)

    def _file_all(self, volume: Any, files: Sequence[PlannedFile]) -> None:
        filer = self._filer = Filer(self.st, self.session_id, volume, self.explain,
                                    self.progress, self.names,
                                    self.replayed.held_since if self.replayed else None)
        self.progress.begin(len(files), sum(p.entry.size for p in files))
        # sidecars last, so the recording each belongs to is in the catalog first
        ordered = sorted(files, key=lambda f: is_sidecar(f.entry.name))
        try:
            for n, p in enumerate(ordered):
                self.progress.file_started(p.entry.path, p.entry.size)
                self._current = p.entry.path
                done = filer.file(p, ordered[n + 1] if n + 1 < len(ordered) else None)
                self._current = None
                self._done(filer, done)
        except CatalogStopped:
            filer.drop_ahead()
            filer.drop_group()
            raise
        except BaseException:
            filer.drop_ahead()
            self._done(filer, filer.flush())  # what was verified is recorded, then the stop
            raise
        filer.drop_ahead()  # (none: the last file has no next one)
        self._done(filer, filer.flush())

    def _done(self, filer: Filer, outcomes: Sequence[FileOutcome]) -> None:
        for outcome in outcomes:
            self.summary.outcomes.append(outcome)
            self.progress.file_done(outcome.path, outcome.status)
        self.summary.bytes_stored = filer.bytes_stored

    def _catalog(self, read: Any) -> Any:
        try:
            return read()
        except CatalogError as exc:
            raise CatalogStopped(str(exc)) from exc

    # ingest.talk.Notes --------------------------------------------------------

    def check(self) -> None:
        self.progress.check()

    def facts(self, **facts: Any) -> None:
        """Record what the recorder said (or what the dock found) at once."""
        self.facts_said.update(facts)
        self._catalog(lambda: self.st.catalog.session_facts(self.session_id, **facts))

    def failed(self, step: str, error: str, consequence: str) -> None:
        self.explain("recorder_step_failed", path=None, device=self._said_device(),
                     error=f"{step}: {error}", action=f"{consequence}; the dock went on")

    def _said_device(self) -> str | None:
        return self.said.identity.device if self.said.identity else None

    # Who and what ---------------------------------------------------------------

    def _identity(self) -> Identity:
        gid = self.said.identity
        known = None
        if self.source.usb_serial:
            known = self._catalog(lambda: self.registry.by_usb_serial(self.source.usb_serial))
        if known is None and gid is not None:
            known = self._catalog(lambda: self.registry.get(gid.device))
        given_device = self.given.given_device or (known.device_no if known else None)
        given_officer = self.given.given_officer or (known.officer_no if known else None)
        if known is not None and not (self.given.given_device or self.given.given_officer):
            self.given_by = "the registry"
        if gid is None:
            return Identity(given_device=given_device, given_officer=given_officer)
        name = gid.officer_name or None
        unit = " ".join(part for part in (gid.unit_no, gid.unit_name) if part) or None
        if name is not None:
            self._names[gid.officer] = (name, unit)
        return Identity(device=gid.device, officer=gid.officer, officer_name=name, unit=unit,
                        given_device=given_device, given_officer=given_officer)

    def names(self, officer_no: str) -> tuple[str | None, str | None]:
        """The officer's name and unit, as the recorder or the registry gives them."""
        if officer_no not in self._names:
            found = self._catalog(lambda: self.registry.officer(officer_no))
            self._names[officer_no] = (found.name, " ".join(
                part for part in (found.unit_no, found.unit_name) if part) or None
            ) if found else (None, None)
        return self._names[officer_no]

    def _conflicts(self, identity: Identity, files: Sequence[PlannedFile]) -> None:
        """One identity_conflict per disagreement, naming both sides and the files."""
        found: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
        for p in files:
            path = p.entry.path
            if p.name_device and identity.device and p.name_device != identity.device:
                found[("device", p.device, "its file name", p.name_device)].append(path)
            if p.name_officer and identity.officer and p.name_officer != identity.officer:
                found[("officer", p.officer, "the recorder", identity.officer)].append(path)
            if identity.given_device and p.device not in (identity.given_device, UNKNOWN):
                found[("device", p.device, self.given_by, identity.given_device)].append(path)
            if identity.given_officer and p.officer not in (identity.given_officer, UNKNOWN):
                found[("officer", p.officer, self.given_by, identity.given_officer)].append(path)
        for (what, stored, who, other), paths in sorted(found.items()):
            listed = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5
                                              else "")
            self.explain("identity_conflict", path=paths[0] if len(paths) == 1 else None,
                         device=stored if what == "device" else self.summary.device,
                         error=f"{what} {stored} as the recorder states it, but {who} says "
                               f"{other}: {len(paths)} file(s) ({listed})",
                         action=f"recorded under {what} {stored}; the custodian must confirm "
                                f"who recorded them")

    def _check_registry(self, devices: set[str]) -> None:
        """R13: every device docked is registered and in service."""
        for device_no in sorted(devices):
            known = self._catalog(lambda d=device_no: self.registry.get(d))
            if known is not None and known.registered_at is not None and (
                    known.status == "active"):
                continue
            kind = {"retired": "retired_device", "out_of_service": "out_of_service_device"}.get(
                known.status if known is not None else "", "unregistered_device")
            self.explain(kind, path=None, device=device_no,
                         error=f"device {device_no} (USB serial "
                               f"{self.source.usb_serial or 'unknown'}, model "
                               f"{self.source.model or 'unknown'})",
                         action="ingested anyway (evidence never stays behind); the custodian "
                                "must register or check it")

    @property
    def clock_offset_s(self) -> int | None:
        """What is taken off the times the recorder's clock gave (None: not measured)."""
        return clock_offset(self.facts_said.get("clock_drift_s"))

    def _check_clock(self, device: str | None) -> None:
        drift = self.facts_said.get("clock_drift_s")
        if drift is None or abs(drift) <= CLOCK_DRIFT_LIMIT_S:
            return
        was_set = self.facts_said.get("clock_set", False)
        self.explain("clock_drift", path=None, device=device,
                     error=f"recorder clock {drift:+.0f} s from the station",
                     action=("clock set; " if was_set else "clock not set; ")
                     + f"the times of this dock's files and log entries are stored corrected "
                     f"by {self.clock_offset_s:+d} s, with the recorder's own times beside them "
                     "(right if its clock was not changed since they were recorded)")

    def _device_log(self, device: str | None, events: Sequence[LoggedEvent]) -> None:
        """R4: each interruption in the recorder's log explained once, across docks."""
        if device is None or not events:
            return
        catalog = self.st.catalog
        known = self._catalog(lambda: catalog.known_device_events(device))
        fresh = sorted({e for e in events if (e.at, e.kind, e.detail) not in known},
                       key=lambda e: (e.at, e.kind, e.detail))
        if not fresh:
            return
        cut = set(interruptions(events))
        quiet = []
        offset = self.clock_offset_s
        for event in fresh:
            logged = LoggedDeviceEvent(device_no=device, at=event.at, kind=event.kind,
                                       detail=event.detail, session_id=self.session_id,
                                       clock_offset_s=offset)
            # offline, the site's log of the device is unknown: the replay explains
            if event not in cut or self.st.offline_because is not None:
                quiet.append(logged)
                continue
            at = corrected(event.at, offset)
            rec = self._catalog(lambda m=at: catalog.recording_covering(device, m))
            self.explain(
                "recording_interrupted", path=rec.source_path if rec else None, device=device,
                recording_id=rec.id if rec else None, device_events=[logged],
                error=f"{event.kind} at {at:%Y-%m-%d %H:%M:%S} UTC"
                      + (f" (the recorder's clock said {event.at:%Y-%m-%d %H:%M:%S})" if offset else
                         "" if offset == 0 else " by the recorder's clock, its offset unknown")
                      + (f" ({event.detail})" if event.detail else "")
                      + (f", during recording {rec.id}" if rec else
                         ", in no recording the catalog holds"),
                action="officers must state the reason; if recording could not continue, two "
                       "or more officers sign a written explanation")
        self._catalog(lambda: catalog.remember_device_events(quiet))

    def _gaps(self) -> None:
        """R4, R5: each pause between this dock's clips and the device's clips around them."""
        for found in self._catalog(lambda: continuity.gaps_of_session(
                self.st.catalog, self.session_id, self.st.options)):
            self.explain(found.kind, path=found.path, device=found.device,
                         recording_id=found.recording_id,
                         related_recording_id=found.related_recording_id,
                         error=found.error, action=found.action)

    # Explanations and the end ---------------------------------------------------------

    def explain(self, kind: str, *, path: str | None, device: str | None, error: str,
                action: str, recording_id: int | None = None,
                vault_path: PurePosixPath | str | None = None,
                device_events: Sequence[LoggedDeviceEvent] = (),
                related_recording_id: int | None = None) -> None:
        if self.replayed is not None and (kind, path, error) in self.replayed.made:
            return  # an earlier replay of this offline dock recorded it (ingest/replay.py)
        exp = Explanation(
            session_id=self.session_id, recording_id=recording_id, kind=kind,
            related_recording_id=related_recording_id,
            rule=rule_of(kind), device_no=device, source_path=path,
            vault_path=str(vault_path) if vault_path else None,
            occurred_at=self.st.clock(), error=error, action=action,
        )
        log.log(logging.ERROR if needs_notice(exp) else logging.WARNING, "%s: %s (%s): %s; %s",
                shown(path or self.source.label), KINDS[kind][1], kind, shown(error, 1000),
                shown(action, 1000))
        try:
            self.st.record_explanation(exp, device_events)
        except CatalogError as exc:
            log.error("the explanation for %s could not be recorded: %s", shown(path), exc)
            self.summary.unrecorded.append(f"{kind} {path}: {error}; {action}"
                                           + self._spooled(exp))
        self.summary.explanations.append(exp)

    def _carry(self, carried: Sequence[Explanation]) -> None:
        """Record the explanations of the offline dock this dock replays."""
        for exp in carried:
            exp.session_id = self.session_id
            try:
                self.st.record_explanation(exp)
            except CatalogError as exc:
                raise CatalogStopped(str(exc)) from exc
            self.summary.explanations.append(exp)

    def _spooled(self, exp: Explanation) -> str:
        """Keep an explanation the catalog refused in the station's spool; what to add."""
        if self.st.spool is None:
            return ""
        try:
            kept = self.st.spool.keep(exp)
        except OSError as exc:
            log.error("the explanation could not be kept in the spool either: %s", exc)
            return f" (not kept in the spool either: {exc.strerror or exc})"
        log.warning("explanation kept in the spool (%s) until the catalog can be reached",
                    kept)
        return " (kept in the station's spool: it is recorded when the catalog can be reached)"

    def _stopped(self, kind: str, why: str) -> None:
        """The dock ended early: say so, with what the catalog shows was done."""
        self.state = "interrupted" if kind == "dock_interrupted" else "failed"
        self.summary.error = why
        dock = self._session_now()
        account = dock_account(self.st.catalog, dock) if dock else (
            "what this dock stored is unknown: the catalog cannot be read")
        if self._current is not None and kind == "dock_interrupted":
            account = (f"the unfinished copy of {self._current} was discarded (it is not "
                       f"recorded as stored); {account}")
        self.explain(kind, path=self._current, device=self.summary.device,
                     error=f"{self.source.label}: {why}", action=account)

    def _session_now(self) -> DockSession | None:
        try:
            return self.st.catalog.session(self.session_id)
        except CatalogError as exc:
            log.error("dock session %s cannot be read: %s", self.session_id, exc)
            return None

    def _finish(self) -> None:
        """Close and sign the session with counts from the catalog; never raises CatalogError."""
        s = self.summary
        s.finished_at = self.st.clock()
        dock = self._session_now()
        if dock is None:
            return  # recovery closes it at the next start
        try:
            stored = self.st.catalog.count_recordings(self.session_id)
        except CatalogError as exc:
            log.error("dock session %s: stored files cannot be counted: %s", self.session_id, exc)
            return
        s.files_stored = stored
        body = canonical_json(s.to_dict())
        dock.finished_at = s.finished_at
        dock.files_stored = stored
        dock.files_already_held = s.count("already_held")
        dock.files_failed = s.count("failed")
        dock.bytes_stored = s.bytes_stored
        dock.interrupted = s.interrupted
        dock.summary_json = body.decode("ascii")
        dock.signature = self.st.key.sign(body)
        dock.key_id = self.st.key.key_id
        try:
            self.st.catalog.finish_session(dock)
        except CatalogError as exc:
            log.error("dock session %s could not be closed (the next start closes it): %s",
                      self.session_id, exc)
        else:
            self._checkpoint()
        if self.state not in ("interrupted", "failed"):
            self.state = "done"

    def _checkpoint(self) -> None:
        """Sign a checkpoint of the ledger after the dock; a failure is logged, not fatal."""
        try:
            custody.make(self.st.catalog, self.st.key, self.st.station_id,
                         self.st.options.checkpoint_outbox)
        except (EvidockError, OSError) as exc:
            log.error("dock session %s: checkpoint after it: %s", self.session_id,
                      _reason(exc))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, EvidockError):
        return f"{exc.strerror or exc} ({exc.filename or ''})"
    return str(exc)
