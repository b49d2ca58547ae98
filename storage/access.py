"""The access register (R12): who saw, exported or tagged whose recordings, and on whose
approval. Each entry is a ledger row, so the register is as tamper-evident as the rest."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select

from storage.catalog import Catalog
from storage.models import AccessEntry


@dataclass(frozen=True)
class AccessFilter:
    login: str | None = None
    recording: int | None = None
    since: datetime | None = None


class AccessLog:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    def register(self, entry: AccessEntry) -> AccessEntry:
        with self.catalog.transaction(f"register {entry.action} by {entry.login}") as db:
            db.add(entry)
            db.flush()
            self.catalog.append_event(db, "access", str(entry.id), {
                "login": entry.login, "action": entry.action,
                "recordings": json.loads(entry.recordings), "approval": entry.approval})
        return entry

    def entries(self, flt: AccessFilter) -> Sequence[AccessEntry]:
        query = select(AccessEntry)
        if flt.login is not None:
            query = query.where(AccessEntry.login == flt.login)
        if flt.since is not None:
            query = query.where(col(AccessEntry.at) >= flt.since)
        with self.catalog.reading() as db:
            rows = db.exec(query.order_by(col(AccessEntry.id))).all()
        if flt.recording is not None:
            rows = [r for r in rows if flt.recording in json.loads(r.recordings)]
        return rows
