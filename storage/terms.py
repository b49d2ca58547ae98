"""The catalog's plain terms, apart from its tables: the clock rows are stamped with, the
reasons for a hold (R9) and the filing period of a closed case (R11).

storage/models.py and the modules built on it load SQLAlchemy and SQLModel, a third
of a second; the CLI needs these before it opens any catalog (for its commands'
options and --help), so they live here, with nothing heavy, and storage.models,
storage.retention and storage.cases re-export them (issue 11).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum


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
