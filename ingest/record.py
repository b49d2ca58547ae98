"""The canonical ingest record: what is signed for every stored file.

Its encoding is storage.canonical.canonical_json over the fields below, and it
can be rebuilt from a catalog row, so an edited row fails its signature check.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from storage.canonical import canonical_json
from storage.models import Recording

RECORD_FORMAT = "evidock-ingest-record/1"


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
    recording_start: datetime
    recording_end: datetime
    ingested_at: datetime
    deadline: datetime
    vault_path: str

    def canonical(self) -> bytes:
        return canonical_json({"format": RECORD_FORMAT, **asdict(self)})

    @classmethod
    def from_row(cls, row: Recording) -> IngestRecord:
        return cls(
            station=row.station_id, agency=row.agency, session=row.session_id,
            device=row.device_no, officer=row.officer_no, source_path=row.source_path,
            size=row.size, sha256=row.sha256, recording_start=row.recording_start,
            recording_end=row.recording_end, ingested_at=row.ingested_at,
            deadline=row.deadline, vault_path=row.vault_path,
        )
