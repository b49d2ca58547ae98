"""Declared remote and continuous duties (R2): each declaration one ledgered transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import col, select

from storage.catalog import Catalog
from storage.errors import UsageError
from storage.models import Duty, Officer


def _t(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


class Duties:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    def declare(self, duty: Duty) -> Duty:
        """Record a duty; refuses (changing nothing) times in the future or out of order,
        an officer not registered, and an overlap with another duty of the officer."""
        if not duty.reason.strip():
            raise UsageError("--reason is empty: say what the duty was")
        if not duty.starts_at < duty.ends_at <= duty.returned_at:
            raise UsageError(f"the duty must start before it ends, and end no later than the "
                             f"return: from {_t(duty.starts_at)}, until {_t(duty.ends_at)}, "
                             f"returned at {_t(duty.returned_at)}")
        if duty.returned_at > duty.declared_at:
            raise UsageError(f"--returned-at {_t(duty.returned_at)} is in the future (now "
                             f"{_t(duty.declared_at)}); declare a duty once the officer is back")
        with self.catalog.transaction(f"declare a duty of officer {duty.officer_no}") as db:
            officer = db.get(Officer, duty.officer_no)
            if officer is None or officer.role is None:
                raise UsageError(f"officer {duty.officer_no} is not registered "
                                 "(`evidock officer add`)")
            clash = db.exec(select(Duty).where(
                Duty.officer_no == duty.officer_no, col(Duty.starts_at) < duty.ends_at,
                col(Duty.ends_at) > duty.starts_at)).first()
            if clash is not None:
                raise UsageError(f"officer {duty.officer_no} already has duty {clash.id} from "
                                 f"{_t(clash.starts_at)} until {_t(clash.ends_at)}, which "
                                 "overlaps this one")
            db.add(duty)
            db.flush()
            self.catalog.append_event(db, "duty", str(duty.id), {
                "officer": duty.officer_no, "by": duty.declared_by})
        return duty

    def covering(self, officer_no: str, moment: datetime) -> Duty | None:
        """The officer's duty during which ``moment`` falls, if any."""
        with self.catalog.reading() as db:
            return db.exec(select(Duty).where(
                Duty.officer_no == officer_no, col(Duty.starts_at) <= moment,
                col(Duty.ends_at) >= moment)).first()

    def during(self, officer_no: str, first: datetime, last: datetime) -> Sequence[Duty]:
        """The officer's duties with any moment from ``first`` to ``last`` (one query for
        a group of files; duties of an officer never overlap)."""
        with self.catalog.reading() as db:
            return db.exec(select(Duty).where(
                Duty.officer_no == officer_no, col(Duty.starts_at) <= last,
                col(Duty.ends_at) >= first).order_by(col(Duty.starts_at))).all()

    def list(self, officer_no: str | None = None) -> Sequence[Duty]:
        query = select(Duty)
        if officer_no is not None:
            query = query.where(Duty.officer_no == officer_no)
        with self.catalog.reading() as db:
            return db.exec(query.order_by(col(Duty.starts_at))).all()
