"""The canonical ingest record: what is signed for every stored file.

Its encoding is storage.canonical.canonical_json over the fields below, and it
can be rebuilt from a catalog row, so an edited row fails its signature check.
Version 2 (every record made since recorder clocks are corrected) adds the
recorder's own times and the clock offset taken off them; rows signed as version
1 are rebuilt as version 1.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from storage.canonical import canonical_json

if TYPE_CHECKING:
    from storage.models import Recording
    from storage.quickread import RecordingRow

RECORD_FORMAT = "evidock-ingest-record/2"
RECORD_FORMAT_V1 = "evidock-ingest-record/1"
#: record_version -> format text
FORMATS = {1: RECORD_FORMAT_V1, 2: RECORD_FORMAT}
#: The fields a version 2 record has that a version 1 record has not.
V2_FIELDS = ("recorder_start", "recorder_end", "clock_offset_s")


@dataclass(frozen=True)
class IngestRecord:
    station: str
    agency: str
    session: str
    device: str
    officer: str
    source_path: str
    size: int
    sha256: str
    recording_start: datetime  # corrected by clock_offset_s
    recording_end: datetime
    ingested_at: datetime
    deadline: datetime
    vault_path: str
    clock_offset_s: int | None = None  # None: unknown, the times are the recorder's
    version: int = 2

    @property
    def recorder_start(self) -> datetime:
        """The start as the recorder's clock said it."""
        return self.recording_start + timedelta(seconds=self.clock_offset_s or 0)

    @property
    def recorder_end(self) -> datetime:
        return self.recording_end + timedelta(seconds=self.clock_offset_s or 0)

    def fields(self) -> dict[str, Any]:
        body = {f.name: getattr(self, f.name) for f in fields(self)}  # values are immutable
        del body["version"]
        if self.version == 1:
            del body["clock_offset_s"]
        else:
            body.update(recorder_start=self.recorder_start, recorder_end=self.recorder_end)
        return {"format": FORMATS[self.version], **body}

    def canonical(self) -> bytes:
        return canonical_json(self.fields())

    @classmethod
    def from_row(cls, row: Recording | RecordingRow) -> IngestRecord:
        return cls(
            station=row.station_id, agency=row.agency, session=row.session_id,
            device=row.device_no, officer=row.officer_no, source_path=row.source_path,
            size=row.size, sha256=row.sha256, recording_start=row.recording_start,
            recording_end=row.recording_end, ingested_at=row.ingested_at,
            deadline=row.deadline, vault_path=row.vault_path,
            clock_offset_s=row.clock_offset_s, version=row.record_version,
        )
