"""The conversation with a recorder's command port, one step at a time.

Only authentication and a refused mass-storage switch end a dock here; every
other step that fails or answers oddly is noted (the fact stays unknown) and
the conversation goes on. Each fact is handed to ``notes.facts`` as soon as it
is read, so the clock's drift is on record before the clock is set.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol, TypeVar

from devices.errors import LinkLost, RecorderError
from devices.protocol import AuthError, RecorderIdentity, RecorderRefused
from ingest.rules import LoggedEvent
from ingest.source import Commands

log = logging.getLogger(__name__)

T = TypeVar("T")


class Notes(Protocol):
    """Where the conversation records what it learns, at once."""

    def check(self) -> None: ...  # raises DockInterrupted once the dock must stop
    def facts(self, **facts: Any) -> None: ...
    def failed(self, step: str, error: str, consequence: str) -> None: ...


class ConversationFailed(RecorderError):
    """A step the dock cannot go on without failed (authentication, the mode switch, the link)."""


@dataclass
class Said:
    """What the recorder said; None where it did not say (or said something unusable)."""

    identity: RecorderIdentity | None = None
    events: tuple[LoggedEvent, ...] = ()
    switched: bool = False  # it acknowledged the switch to mass storage


def to_utc(moment: datetime, zone: tzinfo | None) -> datetime:
    """A recorder's naive local time as UTC (the station's zone, or the system's)."""
    return (moment.replace(tzinfo=zone) if zone else moment.astimezone()).astimezone(UTC)


def to_local(moment: datetime, zone: tzinfo | None) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None) if zone else (
        moment.astimezone().replace(tzinfo=None))


def converse(cmd: Commands, *, password: str, set_clock: bool, zone: tzinfo | None,
             clock: Callable[[], datetime], notes: Notes) -> Said:
    """Run the conversation up to and including the switch to mass storage."""
    said = Said()
    try:
        cmd.authenticate(password)
    except AuthError as exc:
        raise ConversationFailed(f"the recorder refused the password (ATH): {exc}") from exc
    except RecorderError as exc:
        raise ConversationFailed(f"authentication (ATH) failed: {exc}") from exc

    def step(name: str, call: Callable[[], T], consequence: str) -> T | None:
        notes.check()
        try:
            return call()
        except LinkLost as exc:
            raise ConversationFailed(f"the link to the recorder was lost at {name}: {exc}") \
                from exc
        except RecorderError as exc:
            notes.failed(name, str(exc), consequence)
            return None

    version = step("VER", cmd.version, "firmware version unknown")
    if version is not None:
        notes.facts(firmware=version)
    said.identity = step("GID", cmd.identity,
                         "the device and officer are taken from the file names or the registry")
    if said.identity is not None:
        i = said.identity
        notes.facts(device_no=i.device, officer_no=i.officer)
    drift = step("GTM", lambda: drift_of(cmd, clock, zone), "clock drift unknown")
    if drift is not None:
        notes.facts(clock_drift_s=drift)  # on record before the clock is changed
    if set_clock:
        def set_it() -> bool:
            cmd.set_clock(to_local(clock(), zone))
            return True
        notes.facts(clock_set=bool(step("STM", set_it, "the recorder's clock was not set")))
    battery = step("BAT", cmd.battery, "battery level unknown")
    if battery is not None:
        notes.facts(battery_pct=battery)
    storage = step("STO", cmd.storage, "storage use unknown")
    if storage is not None:
        notes.facts(storage_free=storage.free, storage_total=storage.total)
    device_log = step("LOG", cmd.events, "the recorder's own event log is unknown for this dock")
    if device_log is not None:
        said.events = tuple(LoggedEvent(to_utc(e.at, zone), e.kind, e.detail)
                            for e in device_log.events)
        for entry in device_log.rejected:
            notes.failed("LOG", f"unusable log entry {entry}", "that entry was not recorded")
        notes.facts(device_log=json.dumps(
            [{"at": e.at.isoformat(), "kind": e.kind, "detail": e.detail} for e in said.events],
            ensure_ascii=False))
    said.switched = _switch(cmd, notes)
    return said


def drift_of(cmd: Commands, clock: Callable[[], datetime], zone: tzinfo | None) -> float:
    """GTM: the recorder's clock minus the station's, in seconds (against the middle of
    the station's clock before and after the request)."""
    before = clock()
    device_clock = cmd.clock()
    after = clock()
    return (to_utc(device_clock, zone) - (before + (after - before) / 2)).total_seconds()


def _switch(cmd: Commands, notes: Notes) -> bool:
    """MSC: refused ends the dock; no reply or a lost link still waits for the volume."""
    try:
        cmd.mass_storage()
    except RecorderRefused as exc:
        raise ConversationFailed(f"the recorder refused to switch to mass storage: {exc}") \
            from exc
    except RecorderError as exc:  # some recorders switch without answering, or drop the port
        notes.failed("MSC", str(exc), "waiting for the volume all the same")
        return False
    return True
