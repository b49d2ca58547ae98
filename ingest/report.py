"""Statistics for supervisors (R14): recordings, hours, bytes, lateness, explanations,
interruptions and device faults, by officer, device, category or unit. Pure functions
of catalog rows; agent/report_cli.py reads the rows and writes table, JSON, CSV, HTML.

A recording belongs to the period by its start; an explanation by the recording it is
about (else by when it occurred); a device fault by when it was logged. An explanation
with no recording counts in the device grouping by its device and elsewhere only in
the totals; device faults count by device, and elsewhere only in the totals.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, tzinfo

from storage.models import Case, DeviceNote, Explanation, Recording

GROUPINGS = ("officer", "device", "category", "unit")
INTERRUPTION_KINDS = frozenset({"recording_interrupted", "recording_gap",
                                "continuity_violation"})
NONE = "(none)"


@dataclass
class Line:
    group: str
    recordings: int = 0
    hours: float = 0.0
    bytes: int = 0
    late: int = 0
    explanations_open: int = 0
    explanations_completed: int = 0
    interruptions: int = 0
    device_faults: int = 0

    @property
    def late_rate(self) -> float:
        return self.late / self.recordings if self.recordings else 0.0

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "hours": round(self.hours, 3),
                "late_rate": round(self.late_rate, 4)}


@dataclass
class Report:
    by: str
    since: datetime | None
    until: datetime | None
    lines: list[Line] = field(default_factory=list)
    total: Line = field(default_factory=lambda: Line("total"))


def _key(rec: Recording, by: str) -> str:
    value = {"officer": rec.officer_no, "device": rec.device_no, "category": rec.category,
             "unit": rec.unit}[by]
    return value or NONE


def build(by: str, recordings: Sequence[Recording], explanations: Sequence[Explanation],
          faults: Sequence[DeviceNote], since: datetime | None,
          until: datetime | None) -> Report:
    """``recordings`` started in the period; ``explanations`` and ``faults`` are all the
    catalog's (filtered here); ``since`` inclusive, ``until`` exclusive."""
    if by not in GROUPINGS:
        raise ValueError(f"group by one of {', '.join(GROUPINGS)}")
    report = Report(by, since, until)
    lines: dict[str, Line] = {}

    def line(key: str) -> Line:
        return lines.setdefault(key, Line(key))

    group_of: dict[int, str] = {}
    for rec in recordings:
        key = _key(rec, by)
        group_of[rec.id or 0] = key
        for target in (line(key), report.total):
            target.recordings += 1
            target.hours += (rec.duration_s or 0.0) / 3600
            target.bytes += rec.size
            target.late += int(rec.late)

    def in_period(moment: datetime) -> bool:
        return (since is None or moment >= since) and (until is None or moment < until)

    for exp in explanations:
        if exp.recording_id is not None:
            if exp.recording_id not in group_of:
                continue  # about a recording outside the period
            targets = [line(group_of[exp.recording_id]), report.total]
        elif in_period(exp.occurred_at):
            targets = [report.total] + ([line(exp.device_no or NONE)] if by == "device" else [])
        else:
            continue
        for target in targets:
            if exp.status == "completed":
                target.explanations_completed += 1
            else:
                target.explanations_open += 1
            target.interruptions += int(exp.kind in INTERRUPTION_KINDS)
    for note in faults:
        if note.kind == "fault" and in_period(note.at):
            report.total.device_faults += 1
            if by == "device":
                line(note.device_no).device_faults += 1
    report.lines = sorted(lines.values(), key=lambda x: x.group)
    return report


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = [report.by, *list(Line("x").to_dict())[1:]]
    writer.writerow(columns)
    for item in [*report.lines, report.total]:
        writer.writerow(item.to_dict().values())
    return out.getvalue()


@dataclass(frozen=True)
class YearCase:
    case_no: str
    recordings: int
    first: datetime
    last: datetime
    ended_at: datetime | None
    filed_at: datetime | None


def year_cases(recordings: Sequence[Recording], cases: Sequence[Case], year: int,
               zone: tzinfo | None) -> list[YearCase]:
    """R14: the yearly list of cases: every case with a recording that started in ``year``
    (in the station's zone)."""
    closed = {c.case_no: c for c in cases}
    found: dict[str, list[Recording]] = {}
    for rec in recordings:
        if rec.case_no and rec.recording_start.astimezone(zone).year == year:
            found.setdefault(rec.case_no, []).append(rec)
    return [YearCase(no, len(recs), min(r.recording_start for r in recs),
                     max(r.recording_start for r in recs),
                     closed[no].ended_at if no in closed else None,
                     closed[no].filed_at if no in closed else None)
            for no, recs in sorted(found.items())]
