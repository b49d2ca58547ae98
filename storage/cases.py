"""Cases and their filing clock (R11): closing a case starts 30 days to file its records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import col, select

from storage.catalog import Catalog
from storage.errors import NotFound, UsageError
from storage.models import Case, Recording
from storage.terms import FILING_DAYS as FILING_DAYS  # re-exported (storage/terms.py says why)


@dataclass(frozen=True)
class CaseState:
    case_no: str
    recordings: int
    case: Case | None  # None: annotated, not closed

    @property
    def due(self) -> datetime | None:
        return self.case.ended_at + timedelta(days=FILING_DAYS) if self.case else None

    def overdue(self, now: datetime) -> bool:
        return (self.case is not None and self.case.filed_at is None
                and self.due is not None and now > self.due)

    def status(self, now: datetime) -> str:
        if self.case is None:
            return "open"
        if self.case.filed_at is not None:
            return "filed"
        return "overdue" if self.overdue(now) else "closed"


def _t(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


class Cases:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    def close(self, case_no: str, *, ended_at: datetime, by: str, now: datetime) -> Case:
        if not by.strip():
            raise UsageError("--by is empty")
        if ended_at > now:
            raise UsageError(f"--ended-at {_t(ended_at)} is in the future (now {_t(now)})")
        with self.catalog.transaction(f"close case {case_no}") as db:
            held = db.exec(select(func.count()).select_from(Recording)
                           .where(Recording.case_no == case_no)).one()
            if not held:
                raise NotFound(f"no recording is annotated with case {case_no} "
                               "(`evidock annotate ID --case NO`)")
            known = db.get(Case, case_no)
            if known is not None:
                raise UsageError(f"case {case_no} was closed at {_t(known.closed_at)} (ended "
                                 f"{_t(known.ended_at)}); it is not closed again")
            case = Case(case_no=case_no, ended_at=ended_at, closed_at=now, closed_by=by)
            db.add(case)
            self.catalog.append_event(db, "case-close", case_no, {"by": by})
        return case

    def file(self, case_no: str, *, by: str, note: str, now: datetime) -> Case:
        if not by.strip():
            raise UsageError("--by is empty")
        with self.catalog.transaction(f"file case {case_no}") as db:
            case = db.get(Case, case_no)
            if case is None:
                raise UsageError(f"case {case_no} is not closed; close it first "
                                 "(`evidock case close`)")
            if case.filed_at is not None:
                raise UsageError(f"case {case_no} was filed at {_t(case.filed_at)}")
            case.filed_at, case.filed_by, case.filed_note = now, by, note.strip() or None
            db.add(case)
            self.catalog.append_event(db, "case-file", case_no, {"by": by})
        return case

    def states(self) -> Sequence[CaseState]:
        """Every case: those with annotated recordings, and those closed."""
        with self.catalog.reading() as db:
            counts = dict(db.exec(select(Recording.case_no, func.count())
                                  .where(col(Recording.case_no).is_not(None))
                                  .group_by(col(Recording.case_no))).all())
            closed = {c.case_no: c for c in db.exec(select(Case))}
        numbers = sorted(set(counts) | set(closed), key=str)
        return [CaseState(str(no), int(counts.get(no, 0)), closed.get(str(no)))
                for no in numbers]
