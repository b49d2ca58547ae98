"""The catalog: engine factory, migrations, and the queries evidock needs.

Every write is one short transaction that also appends its event to the
hash-chained event log, so a row never exists without its trace.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, func
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, create_engine, select

from storage.canonical import canonical_json
from storage.errors import CatalogError, NotFound
from storage.models import (
    Device,
    DockSession,
    Event,
    Explanation,
    Officer,
    Recording,
    Station,
    now_utc,
)

GENESIS = "0" * 64
_MIGRATIONS = Path(__file__).with_name("migrations")


def event_hash(prev_hash: str, at: datetime, kind: str, subject: str, payload: str) -> str:
    body = canonical_json({"at": at, "kind": kind, "subject": subject, "payload": payload})
    return hashlib.sha256(prev_hash.encode("ascii") + body).hexdigest()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, synchronous=FULL and BEGIN IMMEDIATE."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url)
    except (SQLAlchemyError, ValueError) as exc:
        raise CatalogError(f"cannot use catalog URL {url!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # transactions are begun below
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Take the write lock up front so two writers never race on the chain head.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def migrate(engine: Engine) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except SQLAlchemyError as exc:
        raise CatalogError(f"cannot migrate the catalog: {exc}") from exc


@dataclass(frozen=True)
class LogFilter:
    device: str | None = None
    officer: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    late: bool | None = None
    state: str | None = None
    case: str | None = None


class Catalog:
    def __init__(self, engine: Engine):
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Catalog:
        engine = make_engine(url)
        migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # Writes ------------------------------------------------------------------

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    @contextmanager
    def _transaction(self, what: str) -> Iterator[Session]:
        """One write transaction; database errors become CatalogError naming ``what``."""
        try:
            with self._session() as db, db.begin():
                yield db
        except SQLAlchemyError as exc:
            raise CatalogError(f"catalog: cannot {what}: {exc}") from exc

    def _append_event(self, db: Session, kind: str, subject: str, payload: dict[str, Any]) -> None:
        last = db.exec(select(Event.hash).order_by(col(Event.id).desc()).limit(1)).first()
        prev = last or GENESIS
        at = now_utc()
        text = canonical_json(payload).decode("ascii")
        db.add(
            Event(at=at, kind=kind, subject=subject, payload=text, prev_hash=prev,
                  hash=event_hash(prev, at, kind, subject, text))
        )

    def ensure_station(self, station: Station) -> None:
        with self._session() as db:
            known = db.get(Station, station.station_id)
        if known is not None and (known.key_id, known.agency) == (station.key_id, station.agency):
            return
        if known is not None:
            station.first_seen = known.first_seen
        with self._transaction(f"register station {station.station_id}") as db:
            db.merge(station)
            self._append_event(db, "station", station.station_id,
                               {"agency": station.agency, "key_id": station.key_id})

    def start_session(self, dock: DockSession) -> None:
        with self._transaction(f"open dock session {dock.session_id}") as db:
            db.add(dock)
            self._append_event(db, "session-start", dock.session_id,
                               {"source": dock.source, "device": dock.device_no})

    def finish_session(self, dock: DockSession) -> None:
        with self._transaction(f"close dock session {dock.session_id}") as db:
            db.merge(dock)
            self._append_event(db, "session-end", dock.session_id,
                               {"summary": dock.summary_json, "signature": dock.signature})

    def add_recording(self, rec: Recording, device: Device, officer: Officer) -> Recording:
        """Insert a verified recording, its device and officer, and its event, atomically."""
        with self._transaction(f"record {rec.vault_path}") as db:
            known = db.get(Device, device.device_no)
            if known is None:
                db.add(device)
            else:  # keep what the registry says; only note that it was seen
                known.last_seen = device.last_seen
                known.model = known.model or device.model
                known.usb_serial = known.usb_serial or device.usb_serial
                db.add(known)
            if db.get(Officer, officer.officer_no) is None:
                db.add(officer)
            db.add(rec)
            db.flush()
            self._append_event(db, "recording", str(rec.id), {
                "sha256": rec.sha256, "signature": rec.signature, "vault_path": rec.vault_path,
            })
        return rec

    def log(self, kind: str, subject: str, payload: dict[str, Any]) -> None:
        """An event with no row of its own (a recorder cleared, say)."""
        with self._transaction(f"log {kind} {subject}") as db:
            self._append_event(db, kind, subject, payload)

    def add_explanation(self, exp: Explanation) -> Explanation:
        with self._transaction(f"record an explanation ({exp.kind})") as db:
            db.add(exp)
            db.flush()
            self._append_event(db, "explanation", str(exp.id), {
                "kind": exp.kind, "source_path": exp.source_path, "error": exp.error,
            })
        return exp

    def annotate(self, rec_id: int, *, by: str, **values: str | None) -> Recording:
        """Set case, party or category: catalog data only, the file is never touched."""
        changes = {k: v for k, v in values.items() if v is not None}
        with self._transaction(f"annotate recording {rec_id}") as db:
            rec = db.get(Recording, rec_id)
            if rec is None:
                raise NotFound(f"no recording with id {rec_id}")
            for key, value in changes.items():
                setattr(rec, key, value)
            self._append_event(db, "annotate", str(rec_id), {"by": by, **changes})
        return rec

    # Reads -------------------------------------------------------------------

    def held_sources(self, device_no: str | None = None) -> set[tuple[str, str, int, int]]:
        """(device, source path, size, mtime_ns) of every recording already stored."""
        query = select(Recording.device_no, Recording.source_path, Recording.source_size,
                       Recording.source_mtime_ns)
        if device_no is not None:
            query = query.where(Recording.device_no == device_no)
        with self._session() as db:
            return {tuple(row) for row in db.exec(query)}  # type: ignore[misc]

    def recording_for(self, device_no: str | None, source_path: str) -> Recording | None:
        """The newest recording of this file of this device."""
        query = select(Recording).where(Recording.source_path == source_path)
        if device_no is not None:
            query = query.where(Recording.device_no == device_no)
        with self._session() as db:
            return db.exec(query.order_by(col(Recording.id).desc()).limit(1)).first()

    def by_digest(self, sha256: str) -> Recording | None:
        with self._session() as db:
            return db.exec(select(Recording).where(Recording.sha256 == sha256).limit(1)).first()

    def recording(self, rec_id: int) -> Recording:
        with self._session() as db:
            rec = db.get(Recording, rec_id)
        if rec is None:
            raise NotFound(f"no recording with id {rec_id}")
        return rec

    def recordings(self, flt: LogFilter | None = None) -> Sequence[Recording]:
        flt = flt or LogFilter()
        query = select(Recording)
        for column, value in (
            (Recording.device_no, flt.device), (Recording.officer_no, flt.officer),
            (Recording.late, flt.late), (Recording.state, flt.state),
            (Recording.case_no, flt.case),
        ):
            if value is not None:
                query = query.where(column == value)
        if flt.since is not None:
            query = query.where(col(Recording.recording_start) >= flt.since)
        if flt.until is not None:
            query = query.where(col(Recording.recording_start) < flt.until)
        with self._session() as db:
            return db.exec(query.order_by(col(Recording.recording_start), col(Recording.id))).all()

    def explanations(self, *, recording_id: int | None = None,
                     session_id: str | None = None) -> Sequence[Explanation]:
        query = select(Explanation)
        if recording_id is not None:
            query = query.where(Explanation.recording_id == recording_id)
        if session_id is not None:
            query = query.where(Explanation.session_id == session_id)
        with self._session() as db:
            return db.exec(query.order_by(col(Explanation.id))).all()

    def sessions(self) -> Sequence[DockSession]:
        with self._session() as db:
            return db.exec(select(DockSession).order_by(col(DockSession.started_at))).all()

    def events(self) -> Iterator[Event]:
        with self._session() as db:
            yield from db.exec(select(Event).order_by(col(Event.id)))

    def count_recordings(self) -> int:
        with self._session() as db:
            return int(db.exec(select(func.count()).select_from(Recording)).one())


def payload_of(ev: Event) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ev.payload)
    return data
