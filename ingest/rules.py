"""The rules that turn times into obligations (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Timing:
    start: datetime
    end: datetime
    deadline: datetime
    late: bool


def timing(start: datetime, duration_s: float | None, ingested_at: datetime,
           window_hours: float) -> Timing:
    """R2: a recording must be stored within ``window_hours`` of its end."""
    end = start + timedelta(seconds=max(duration_s or 0.0, 0.0))
    deadline = end + timedelta(hours=window_hours)
    return Timing(start=start, end=end, deadline=deadline, late=ingested_at > deadline)


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
