"""The rules that turn times into obligations (pure)."""

from __future__ import annotations

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
