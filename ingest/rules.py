"""The rules that turn times into obligations (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise


@dataclass(frozen=True)
class Timing:
    start: datetime
    end: datetime
    deadline: datetime
    late: bool


def timing(start: datetime, duration_s: float | None, ingested_at: datetime,
           window_hours: float, returned_at: datetime | None = None) -> Timing:
    """R2: a recording must be stored within ``window_hours`` of its end, or, when it was
    made during a declared remote or continuous duty, of the officer's return."""
    end = start + timedelta(seconds=max(duration_s or 0.0, 0.0))
    deadline = max(end, returned_at or end) + timedelta(hours=window_hours)
    return Timing(start=start, end=end, deadline=deadline, late=ingested_at > deadline)


def clock_offset(drift_s: float | None) -> int | None:
    """The offset taken off a recorder's times: its measured drift (its clock minus the
    station's) in whole seconds, to the nearest (halves to even), as its clock reads whole
    seconds; None when the drift is unknown."""
    return None if drift_s is None else round(drift_s)


def corrected(moment: datetime, offset_s: int | None) -> datetime:
    """A time by the recorder's clock, as the station's clock would have said it."""
    return moment if offset_s is None else moment - timedelta(seconds=offset_s)


#: R8: no retention class may be shorter than six months.
MIN_RETENTION_DAYS = 183

# Device-log events that stop or endanger a recording (R4).
INTERRUPTING = {"low_battery", "storage_full", "fault", "power_off"}
CLOCK_DRIFT_LIMIT_S = 30.0


@dataclass(frozen=True)
class LoggedEvent:
    at: datetime  # UTC
    kind: str
    detail: str = ""


def interruptions(events: Iterable[LoggedEvent]) -> list[LoggedEvent]:
    """R4: events from the recorder's log that happened while it was recording."""
    found: list[LoggedEvent] = []
    recording = False
    for event in sorted(events, key=lambda e: e.at):
        if event.kind == "record_start":
            recording = True
        elif event.kind == "record_stop":
            recording = False
        elif event.kind in INTERRUPTING and recording:
            found.append(event)
            if event.kind == "power_off":
                recording = False
    return found


@dataclass(frozen=True)
class Clip:
    """One video recording of a device, on the recorder's clock."""

    id: int
    start: datetime
    end: datetime
    important: bool  # the recorder's important-event flag (or a continuous category)
    new: bool  # stored by this dock


@dataclass(frozen=True)
class Gap:
    before: Clip
    after: Clip
    seconds: float

    @property
    def violation(self) -> bool:
        """R5: an important event's recording must not be interrupted."""
        return self.before.important or self.after.important


def gaps(clips: Iterable[Clip], tolerance_s: float, max_s: float) -> Iterator[Gap]:
    """R4: the pauses between consecutive clips, longer than ``tolerance_s`` (segment
    boundaries) and at most ``max_s`` (longer is a separate recording, not a cut), that
    touch a clip this dock stored (so no gap is found twice)."""
    ordered = sorted(clips, key=lambda c: (c.start, c.id))
    for before, after in pairwise(ordered):
        seconds = (after.start - before.end).total_seconds()
        if (before.new or after.new) and tolerance_s < seconds <= max_s:
            yield Gap(before, after, seconds)
