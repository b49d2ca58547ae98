"""R2: what is overdue: late recordings nobody has explained, and recorders that have not
been docked within the storage window.

A recording is overdue when it was stored after its deadline, no statement completes its
late-storage explanation, and no declared duty (declared after it was stored) moves its
deadline past the time it was stored. A recorder is overdue when it is assigned to an
officer, not retired, and has not been docked for longer than the window. evidock keeps
no duty roster: when a recorder was last used is not known to it, only when it was last
docked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ingest.rules import timing
from storage.catalog import Catalog
from storage.duties import Duties
from storage.models import Device, Explanation, Recording
from storage.registry import Registry
from storage.terms import LogFilter


@dataclass(frozen=True)
class LateRecording:
    recording: Recording
    explanation: Explanation | None  # its open late_ingest explanation, if recorded


@dataclass(frozen=True)
class UndockedDevice:
    device: Device
    hours: float  # since it was last docked


def late_unexplained(catalog: Catalog, window_hours: float) -> list[LateRecording]:
    duties = Duties(catalog)
    found = []
    for rec in catalog.recordings(LogFilter(late=True)):
        duty = duties.covering(rec.officer_no, rec.recording_start)
        if duty is not None and not timing(
                rec.recording_start, rec.duration_s, rec.ingested_at, window_hours,
                duty.returned_at).late:
            continue  # stored in time after all: the duty was declared later
        late = [e for e in catalog.explanations(recording_id=rec.id) if e.kind == "late_ingest"]
        if any(e.status == "completed" for e in late):
            continue
        found.append(LateRecording(rec, late[0] if late else None))
    return found


def undocked(catalog: Catalog, now: datetime, window_hours: float) -> Sequence[UndockedDevice]:
    limit = now - timedelta(hours=window_hours)
    return [UndockedDevice(d, (now - d.last_seen).total_seconds() / 3600)
            for d in Registry(catalog).devices()
            if d.status != "retired" and d.officer_no and d.last_seen < limit]
