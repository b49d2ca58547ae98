"""Explanations as a workflow: officers complete them with a signed statement (R4, R2, R3).

evidock writes the facts (the Explanation row); officers add the why (a Statement).
The first statement completes an explanation; a correction is a new statement linked
to the one it corrects. Nothing is ever changed or removed, and each statement is one
transaction with its ledger leaf, like every catalog write.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_
from sqlmodel import col, select

from storage.catalog import Catalog
from storage.errors import NotFound, UsageError
from storage.models import DockSession, Explanation, Officer, Recording, Statement

#: Checks the signing officers (in signing order) for an explanation's rule; raises
#: UsageError naming what is missing. The rules live in ingest/explain.py.
SignerCheck = Callable[[Explanation, Sequence[Officer]], None]


@dataclass(frozen=True)
class ExplanationFilter:
    open_only: bool = False
    officer: str | None = None
    device: str | None = None
    rule: str | None = None
    kind: str | None = None
    session: str | None = None
    since: datetime | None = None


class Explanations:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    def get(self, explanation_id: int) -> Explanation:
        with self.catalog.reading() as db:
            found = db.get(Explanation, explanation_id)
        if found is None:
            raise NotFound(f"no explanation {explanation_id}")
        return found

    def statements(self, explanation_id: int) -> Sequence[Statement]:
        """Every statement on one explanation, oldest first."""
        query = select(Statement).where(Statement.explanation_id == explanation_id)
        with self.catalog.reading() as db:
            return db.exec(query.order_by(col(Statement.id))).all()

    def officers(self, numbers: Sequence[str]) -> dict[str, Officer]:
        with self.catalog.reading() as db:
            return {o.officer_no: o for o in db.exec(
                select(Officer).where(col(Officer.officer_no).in_(numbers)))}

    def list(self, flt: ExplanationFilter) -> Sequence[Explanation]:
        query = select(Explanation)
        for column, value in ((Explanation.device_no, flt.device), (Explanation.rule, flt.rule),
                              (Explanation.kind, flt.kind),
                              (Explanation.session_id, flt.session)):
            if value is not None:
                query = query.where(column == value)
        if flt.open_only:
            query = query.where(Explanation.status == "open")
        if flt.since is not None:
            query = query.where(col(Explanation.occurred_at) >= flt.since)
        if flt.officer is not None:  # the officer of its recording, or of its dock
            of_recording = select(Recording.id).where(Recording.officer_no == flt.officer)
            of_session = select(DockSession.session_id).where(
                DockSession.officer_no == flt.officer)
            query = query.where(or_(col(Explanation.recording_id).in_(of_recording),
                                    col(Explanation.session_id).in_(of_session)))
        with self.catalog.reading() as db:
            return db.exec(query.order_by(col(Explanation.id))).all()

    def complete(self, explanation_id: int, *, reason: str, text: str,
                 signers: Sequence[str], check: SignerCheck, at: datetime,
                 corrects: bool = False) -> Statement:
        """Record a statement: the first completes the explanation, a later one (with
        ``corrects``) corrects the latest. Every refusal changes nothing."""
        if not text.strip():
            raise UsageError("the statement is empty: write what happened and why")
        doubled = sorted({no for no in signers if signers.count(no) > 1})
        if doubled:
            raise UsageError(f"officer {', '.join(doubled)} signs more than once; each "
                             "signer signs once")
        what = "correct" if corrects else "complete"
        with self.catalog.transaction(f"{what} explanation {explanation_id}") as db:
            exp = db.get(Explanation, explanation_id)
            if exp is None:
                raise NotFound(f"no explanation {explanation_id}")
            latest = db.exec(select(Statement).where(Statement.explanation_id == exp.id)
                             .order_by(col(Statement.id).desc())).first()
            if latest is not None and not corrects:
                raise UsageError(
                    f"explanation {exp.id} was completed at {latest.made_at:%Y-%m-%d %H:%M:%S} "
                    f"UTC (statement {latest.id}); a completed explanation is not completed "
                    f"again: to correct it, `evidock explain correct {exp.id} ...`")
            if latest is None and corrects:
                raise UsageError(f"explanation {exp.id} has no statement yet to correct: "
                                 f"`evidock explain complete {exp.id} ...`")
            if at < exp.occurred_at:
                raise UsageError(f"the station's clock ({at:%Y-%m-%d %H:%M:%S} UTC) is before "
                                 f"the explanation's event ({exp.occurred_at:%Y-%m-%d %H:%M:%S}"
                                 " UTC); set the clock right first")
            found = {o.officer_no: o for o in db.exec(
                select(Officer).where(col(Officer.officer_no).in_(signers)))}
            unknown = [no for no in signers if no not in found or found[no].role is None]
            if unknown:
                raise UsageError(
                    f"officer {', '.join(unknown)} is not registered (`evidock officer add`); "
                    "only registered officers sign")
            check(exp, [found[no] for no in signers])
            statement = Statement(explanation_id=explanation_id, reason=reason, text=text.strip(),
                                  signers_json=json.dumps(list(signers)), made_at=at,
                                  corrects_id=latest.id if latest is not None else None)
            db.add(statement)
            exp.status = "completed"
            db.add(exp)
            db.flush()
            self.catalog.append_event(db, "statement", str(statement.id), {
                "explanation": exp.id, "reason": reason, "signers": list(signers),
                "corrects": statement.corrects_id})
        return statement
