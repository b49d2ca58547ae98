"""The catalog's plain terms, apart from its tables: its schema revision, the filter of
the ingest log, the clock rows are stamped with, the reasons for a hold (R9) and the
filing period of a closed case (R11).

storage/models.py and the modules built on it load SQLAlchemy and SQLModel, a third
of a second; the CLI needs these before it opens any catalog (for its commands'
options and --help), so they live here, with nothing heavy, and storage.models,
storage.retention and storage.cases re-export them (issue 11); storage/quickread.py
reads the catalog with them without the ORM.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

#: How long a reader or writer of the catalog waits for a writer to finish (SQLite's busy
#: timeout, and the turn of the process's own writers: Catalog._writing).
BUSY_TIMEOUT_S = 30

#: The newest migration in storage/migrations (a test keeps the two the same). A catalog
#: already at it is opened without loading alembic at all.
SCHEMA = "0008"


@dataclass(frozen=True)
class LogFilter:
    """Which recordings `evidock log` (and the reports built on it) lists."""

    device: str | None = None
    officer: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    late: bool | None = None
    state: str | None = None
    case: str | None = None
    session: str | None = None


def now_utc() -> datetime:
    return datetime.now(UTC)


class HoldReason(StrEnum):
    """R9: the reasons footage is kept long-term."""

    DISPUTE = "dispute"
    COMPLAINT = "complaint"
    ASSAULT = "assault"  # on an officer
    EMERGENCY = "emergency"
    EVIDENCE = "evidence"
    OTHER = "other"


#: R11: a closed case's records are filed within this many days of the action's end.
FILING_DAYS = 30
