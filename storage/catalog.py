"""The catalog: engine factory, migrations, and the queries evidock needs.

Every write is one short transaction sealed by its ledger leaf (storage/ledger.py),
so a row never changes without its trace; a group of small files is recorded in one
transaction with one leaf a file. Readers open the catalog read-only
(:meth:`Catalog.open_readonly`): they migrate nothing and can write nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event, exists, func, or_, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session, col, create_engine, select

from storage import ledger
from storage.errors import (
    CatalogError,
    CatalogRefused,
    CatalogUnreachable,
    NotFound,
    StationKeyError,
    UsageError,
)
from storage.models import (
    Checkpoint,
    Clearing,
    Device,
    DockSession,
    Explanation,
    LedgerHead,
    LedgerLeaf,
    LoggedDeviceEvent,
    M,
    Officer,
    PendingCopy,
    Recording,
    Station,
)
from storage.quickread import connect_readonly
from storage.terms import BUSY_TIMEOUT_S, SCHEMA, LogFilter

_MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(url: str, *, write: bool = True, password: str | None = None) -> Engine:
    """An engine for ``url``: SQLite (WAL, synchronous=FULL) or PostgreSQL (psycopg 3).

    On SQLite a write engine begins every transaction with BEGIN IMMEDIATE (the write
    lock up front, so two writers never race on the chain head); a read engine uses
    plain deferred transactions, which WAL lets run beside a writer without blocking it.
    On PostgreSQL a write engine's transactions begin with one advisory lock (the same
    serialization across the stations of a site), a read engine's are read-only (the
    server refuses any write); ``password`` goes to the server, never into the URL.
    """
    if url.startswith("sqlite:///") and write:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if is_postgres(url):
        return _postgres_engine(url, write=write, password=password)
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
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


_POSTGRES = ("postgresql://", "postgres://", "postgresql+psycopg://")

#: The advisory lock every write transaction on a PostgreSQL catalog takes first, as
#: BEGIN IMMEDIATE does on SQLite: the stations of a site write one transaction at a
#: time, each seeing every one committed before it, so the ledger never forks and no
#: row is changed from a stale read ("evidock" + 1).
WRITE_LOCK = 0x65766964_01


def is_postgres(url: str) -> bool:
    return url.startswith(_POSTGRES)


def _postgres_engine(url: str, *, write: bool, password: str | None) -> Engine:
    """A PostgreSQL engine through psycopg 3 (the extra ``evidock[postgres]``)."""
    try:
        import psycopg  # noqa: F401  (named here so a missing driver is said plainly)
    except ModuleNotFoundError as exc:
        raise CatalogError("the catalog is on PostgreSQL but its driver is not installed: "
                           "pip install 'evidock[postgres]' (psycopg 3)") from exc
    url = "postgresql+psycopg://" + url.partition("://")[2]
    args: dict[str, Any] = {"connect_timeout": 10, "application_name": "evidock"}
    if password is not None:
        args["password"] = password
    if not write:
        args["options"] = "-c default_transaction_read_only=on"
    try:  # each read on its own (no BEGIN and ROLLBACK round trips); snapshot() makes one
        engine = create_engine(url, connect_args=args, pool_pre_ping=True,
                               **({} if write else {"isolation_level": "AUTOCOMMIT"}))
    except (SQLAlchemyError, ValueError) as exc:
        raise CatalogError(f"cannot use catalog URL {url!r}: {exc}") from exc
    if write:

        @event.listens_for(engine, "begin")
        def _serialize(conn: Any) -> None:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")

    return engine


#: What a server says when it refuses the settings rather than being out of reach.
_REFUSALS = ("password authentication failed", "no password supplied", "does not exist",
             "pg_hba.conf", "permission denied")


def unreachable(where: str, exc: OperationalError) -> CatalogError:
    """A connection that failed: the server refused the settings (exit 2, nothing to
    wait for) or could not be reached (an outage: the station's spool waits for it)."""
    said = " ".join(str(exc.orig or exc).split())
    if any(refusal in said for refusal in _REFUSALS):
        return CatalogRefused(f"the server of {where} refused evidock: {said}; check "
                              "database_url and the password (database_password_file)")
    return CatalogUnreachable(f"cannot reach {where}: {said}")


def _read_only_engine(path: Path) -> Engine:
    """A SQLite engine that cannot write ``path`` (quickread.connect_readonly says how)."""
    if not path.is_file():
        raise CatalogError(f"no catalog at {path}")
    engine = create_engine("sqlite://", creator=lambda: connect_readonly(path))

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def schema_of(engine: Engine) -> str | None:
    """The catalog's migration revision; None for a database with no evidock schema."""
    with engine.connect() as conn:
        return _schema(conn)


def _schema(conn: Connection) -> str | None:
    if not conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'"
                                if conn.dialect.name == "sqlite" else
                                "SELECT 1 FROM information_schema.tables "
                                "WHERE table_name = 'alembic_version' "
                                "AND table_schema = current_schema()").first():
        return None
    return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def _has_no_tables(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT 1 FROM sqlite_master").first() is None


def _require_current(engine: Engine, where: str) -> None:
    """Refuse a catalog this evidock has not migrated: a reader cannot upgrade it."""
    try:
        found = schema_of(engine)
    except OperationalError as exc:
        if engine.dialect.name == "postgresql":
            raise unreachable(where, exc) from exc
        raise CatalogError(f"{where} cannot be read: it is not an evidock catalog, or is "
                           f"damaged: {getattr(exc, 'orig', exc)}") from exc
    except SQLAlchemyError as exc:
        raise CatalogError(f"{where} cannot be read: it is not an evidock catalog, or is "
                           f"damaged: {getattr(exc, 'orig', exc)}") from exc
    if found is None and engine.dialect.name == "postgresql":
        raise UsageError(f"nothing has been stored in {where} yet (it has no evidock "
                         "schema): check database_url")
    if found is None and _has_no_tables(engine):
        raise UsageError(f"nothing has been stored in {where} yet: it holds no tables (as a "
                         "store's first start stopped before making them leaves it); the "
                         "next writing command (e.g. `evidock ingest`, or the daemon's "
                         "start) makes them")
    if found is None:
        raise CatalogError(f"{where} is not an evidock catalog (it has no schema version)")
    if found != SCHEMA:
        raise CatalogError(
            f"{where} is at schema {found}, this evidock reads schema {SCHEMA}: run one "
            "writing command of this release (e.g. `evidock checkpoint`) to upgrade it; "
            "read-only commands never change the catalog")


#: The PostgreSQL advisory lock key stations take to migrate one at a time ("evidock").
MIGRATE_LOCK = 0x65766964


def migrate(engine: Engine) -> None:
    """Bring the catalog to :data:`SCHEMA` (alembic is loaded only when there is work).

    Stations starting together on one PostgreSQL catalog migrate one after the other
    (a transaction-scoped advisory lock; SQLite's BEGIN IMMEDIATE does the same), and
    each looks again once it holds the lock.
    """
    try:
        if schema_of(engine) == SCHEMA:
            return
        from alembic import command  # (0.3 s of imports, rarely needed)
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with engine.begin() as conn:  # the upgrade and its leaf: one transaction
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATE_LOCK})")
            found = _schema(conn)
            if found == SCHEMA:
                return
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            if found is not None:  # rows that were there take the new columns
                with Session(bind=conn) as db:
                    ledger.record_upgrade(db, found, SCHEMA)
    except OperationalError as exc:
        if engine.dialect.name != "postgresql":
            raise CatalogError(f"cannot migrate the catalog: {exc}") from exc
        raise unreachable(_shown_url(engine), exc) from exc
    except SQLAlchemyError as exc:
        raise CatalogError(f"cannot migrate the catalog: {exc}") from exc


def _shown_url(engine: Engine) -> str:
    """'the catalog <url>' as a message names it (no password: a URL never holds one)."""
    shown = engine.url.set(drivername=engine.url.get_backend_name())
    return f"the catalog {shown.render_as_string(hide_password=True)}"


def _load(db: Session, cls: type[M], key: Any, values: set[Any]) -> Sequence[M]:
    """The rows of ``cls`` whose ``key`` is one of ``values`` (several: one query)."""
    if len(values) < 2:
        return []
    return db.exec(select(cls).where(col(key).in_(sorted(values)))).all()


def _number(db: Session, cls: type[M], rows: Sequence[M]) -> None:
    """On PostgreSQL, give new rows their ids from the table's sequence, in one query: they
    are then inserted by one short statement sent for all (a multi-row INSERT ... RETURNING
    is long text that the driver parses anew each time: most of 0.23 s of client time for
    500 photos, measured under a profiler)."""
    if len(rows) < 2 or db.get_bind().dialect.name != "postgresql":
        return
    ids = db.execute(text(
        "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
        {"table": cls.__tablename__, "n": len(rows)}).scalars().all()
    for row, new_id in zip(rows, sorted(ids), strict=True):
        row.id = new_id


def _saw(db: Session, device: Device) -> None:
    """Add a device docked, or note that a known one was seen (what the registry says is
    kept)."""
    known = db.get(Device, device.device_no)
    if known is None:
        db.add(device)
        return
    known.last_seen = max(known.last_seen, device.last_seen)
    known.model = known.model or device.model
    known.usb_serial = known.usb_serial or device.usb_serial
    db.add(known)


@dataclass(frozen=True)
class Stored:
    """A verified recording to insert, with its device and officer; ``pending_id``: the
    PendingCopy it completes (storage.catalog.Catalog.add_recordings)."""

    rec: Recording
    device: Device
    officer: Officer
    pending_id: int | None = None


def _log_conditions(flt: LogFilter) -> list[Any]:
    found: list[Any] = [column == value for column, value in (
        (Recording.device_no, flt.device), (Recording.officer_no, flt.officer),
        (Recording.late, flt.late), (Recording.state, flt.state),
        (Recording.case_no, flt.case), (Recording.session_id, flt.session),
    ) if value is not None]
    if flt.since is not None:
        found.append(col(Recording.recording_start) >= flt.since)
    if flt.until is not None:
        found.append(col(Recording.recording_start) < flt.until)
    return found


class Catalog:
    """Queries and writes; ``engine`` reads (never blocking a dock), ``writer`` writes."""

    def __init__(self, engine: Engine, writer: Engine | None = None):
        self.engine = engine
        self.writer = writer  # None: opened read-only
        self._turn = threading.RLock()  # one write transaction of this process at a time
        self.station_id: str | None = None  # named in each ledger leaf this catalog writes
        self._snapshot = threading.local()  # .session: the reads of this thread share it

    @classmethod
    def open(cls, url: str, password: str | None = None) -> Catalog:
        writer = make_engine(url, password=password)
        migrate(writer)
        return cls(make_engine(url, write=False, password=password), writer)

    @classmethod
    def open_readonly(cls, url: str, password: str | None = None) -> Catalog:
        """Open for reading only: nothing is created, migrated or written."""
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            engine = _read_only_engine(path)
            where = f"the catalog {path}"
        else:
            engine = make_engine(url, write=False, password=password)
            where = f"the catalog {url}"
        _require_current(engine, where)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()
        if self.writer is not None:
            self.writer.dispose()

    # Transactions ------------------------------------------------------------

    def _failed(self, what: str, exc: SQLAlchemyError) -> CatalogError:
        """The error for a failed read or write: on PostgreSQL what the server (or the way
        to it) said, a lost connection as CatalogUnreachable; on SQLite the whole story."""
        if self.engine.dialect.name != "postgresql":
            return CatalogError(f"catalog: cannot {what}: {exc}")
        if isinstance(exc, OperationalError):
            return unreachable(_shown_url(self.engine), exc)
        said = " ".join(str(getattr(exc, "orig", None) or exc).split())
        return CatalogError(f"catalog: cannot {what}: {said}")

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session (this thread's snapshot, if it took one); database errors
        become CatalogError."""
        try:
            pinned: Session | None = getattr(self._snapshot, "session", None)
            if pinned is not None:
                yield pinned
                return
            with Session(self.engine, expire_on_commit=False) as db:
                yield db
        except SQLAlchemyError as exc:
            raise self._failed("read", exc) from exc

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read of this thread inside the block sees one state of the catalog, while
        other stations of a site go on writing (PostgreSQL: one REPEATABLE READ
        transaction; SQLite: one read transaction, which WAL keeps as of its first read)."""
        if getattr(self._snapshot, "session", None) is not None:
            yield
            return
        try:
            with Session(self.engine, expire_on_commit=False) as db:
                if self.engine.dialect.name == "postgresql":
                    db.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                self._snapshot.session = db
                try:
                    yield
                finally:
                    self._snapshot.session = None
        except SQLAlchemyError as exc:
            raise self._failed("read", exc) from exc

    @contextmanager
    def _writing(self, what: str) -> Iterator[Session]:
        """A write transaction, begun once it is this thread's turn among the process's
        writers. Its threads (a daemon's docks) queue for the turn here, served as it is
        released, rather than in SQLite's busy handler, which retries a waiting writer
        after ever longer sleeps (up to 100 ms) while newcomers go first: eight docks at
        once kept a starting dock from writing its session for up to a second."""
        if self.writer is None:
            raise CatalogError(f"catalog: cannot {what}: it was opened read-only")
        if not self._turn.acquire(timeout=BUSY_TIMEOUT_S):  # as long as SQLite would wait
            raise CatalogError(f"catalog: cannot {what}: another write of this process held "
                               f"the catalog's turn for {BUSY_TIMEOUT_S} s")
        try:
            with Session(self.writer, expire_on_commit=False) as db, db.begin():
                yield db
        finally:
            self._turn.release()

    @contextmanager
    def transaction(self, what: str) -> Iterator[Session]:
        """One write transaction, sealed by its ledger leaf; errors become CatalogError."""
        try:
            with self._writing(what) as db:
                ledger.watch(db)
                yield db
                ledger.seal(db, self.station_id)
        except SQLAlchemyError as exc:
            raise self._failed(what, exc) from exc

    def append_event(self, db: Session, kind: str, subject: str,
                     payload: dict[str, Any]) -> None:
        """Name what the caller's write transaction does, for its ledger leaf."""
        ledger.note_event(db, kind, subject, payload)

    # Writes ------------------------------------------------------------------

    def ensure_station(self, station: Station, *, write: bool = True) -> None:
        """Check the station's key against the pinned one; record the station if new.

        The first key a station signs with is pinned (in the catalog and its ledger);
        any other key is refused: a key changes only by ``evidock keys rotate``.
        """
        with self.reading() as db:
            known = db.get(Station, station.station_id)
        if known is not None and known.key_id != station.key_id:
            raise StationKeyError(
                f"the station key ({station.key_id}) is not the key station "
                f"{station.station_id} signs with ({known.key_id}): restore the station's "
                "key from its backup; a new key is taken only through `evidock keys rotate`")
        if not write or (known is not None and known.agency == station.agency):
            return
        if known is not None:
            station.first_seen = known.first_seen
        with self.transaction(f"register station {station.station_id}") as db:
            db.merge(station)
            self.append_event(db, "station", station.station_id,
                              {"agency": station.agency, "key_id": station.key_id})

    def rotate_key(self, station_id: str, key_id: str, public_key_pem: str,
                   proof: dict[str, str]) -> None:
        """Change the station's pinned key; ``proof`` is the statement signed by both keys."""
        with self.transaction(f"rotate the key of station {station_id}") as db:
            known = db.get(Station, station_id)
            if known is None:
                raise NotFound(f"no station {station_id} in the catalog")
            known.key_id, known.public_key_pem = key_id, public_key_pem
            db.add(known)
            self.append_event(db, "key-rotate", station_id, proof)

    def start_session(self, dock: DockSession) -> None:
        with self.transaction(f"open dock session {dock.session_id}") as db:
            db.add(dock)
            self.append_event(db, "session-start", dock.session_id,
                              {"source": dock.source, "usb_serial": dock.usb_serial,
                               "model": dock.model, "owner": dock.owner})

    def session_facts(self, session_id: str, **facts: Any) -> None:
        """Record what a recorder said, as soon as it said it."""
        with self.transaction(f"record facts of dock session {session_id}") as db:
            dock = db.get(DockSession, session_id)
            if dock is None:
                raise NotFound(f"no dock session {session_id}")
            for key, value in facts.items():
                setattr(dock, key, value)
            db.add(dock)
            self.append_event(db, "session-facts", session_id, facts)

    def finish_session(self, dock: DockSession) -> None:
        with self.transaction(f"close dock session {dock.session_id}") as db:
            db.merge(dock)
            self.append_event(db, "session-end", dock.session_id,
                              {"summary": dock.summary_json, "signature": dock.signature})

    def add_pending(self, pending: PendingCopy) -> PendingCopy:
        """Note a verified copy about to be linked into the vault (see PendingCopy)."""
        self.add_pendings([pending])
        return pending

    def add_pendings(self, pendings: Sequence[PendingCopy]) -> None:
        """Note verified copies about to be linked into the vault, in one transaction."""
        what = (f"note the copy for {pendings[0].vault_path}" if len(pendings) == 1
                else f"note {len(pendings)} copies")
        with self.transaction(what) as db:
            _number(db, PendingCopy, pendings)
            db.add_all(pendings)

    def drop_pending(self, pending_id: int) -> None:
        with self.transaction("forget an unfinished copy") as db:
            found = db.get(PendingCopy, pending_id)
            if found is not None:
                db.delete(found)

    def add_recording(self, rec: Recording, device: Device, officer: Officer,
                      pending_id: int | None = None) -> Recording:
        """Insert a verified recording, its device and officer, and its event, atomically.

        ``pending_id`` names the PendingCopy this row completes; it goes in the same
        transaction, so the copy is either pending or recorded, never both or neither.
        """
        self.add_recordings([Stored(rec, device, officer, pending_id)])
        return rec

    def add_recordings(self, items: Sequence[Stored]) -> None:
        """Insert verified recordings as add_recording() does, all in one transaction (a
        group of small files: a few statements for all), each with a ledger leaf of its own
        (its row and the pending note it completes; the first also the devices and
        officers the group added)."""
        what = (f"record {items[0].rec.vault_path}" if len(items) == 1
                else f"record {len(items)} files")
        with self.transaction(what) as db:
            # the rows the items read, in one query each (kept here: the session holds them
            # weakly, and finds them by primary key while they are)
            loaded = [*_load(db, PendingCopy, PendingCopy.id,
                             {i.pending_id for i in items} - {None}),
                      *_load(db, Device, Device.device_no, {i.device.device_no for i in items}),
                      *_load(db, Officer, Officer.officer_no,
                             {i.officer.officer_no for i in items})]
            for device in {i.device.device_no: i.device for i in items}.values():
                _saw(db, device)
            for officer in {i.officer.officer_no: i.officer for i in items}.values():
                if db.get(Officer, officer.officer_no) is None:
                    db.add(officer)
            _number(db, Recording, [i.rec for i in items])
            notes: list[set[tuple[str, str]]] = []  # the ledger key of the note each drops
            for item in items:
                found = db.get(PendingCopy, item.pending_id) if item.pending_id else None
                if found is not None:
                    db.delete(found)
                notes.append({("pending_copy", str(found.id))} if found else set())
                db.add(item.rec)
            db.flush()  # all the rows at once; each recording has its id now
            ledger.seal_parts(db, self.station_id, [(("recording", str(item.rec.id), {
                "sha256": item.rec.sha256, "signature": item.rec.signature,
                "vault_path": item.rec.vault_path, "source_path": item.rec.source_path,
                "session": item.rec.session_id,
            }), {("recording", str(item.rec.id)), *note}) for item, note in zip(
                items, notes, strict=True)])
            del loaded

    def log(self, kind: str, subject: str, payload: dict[str, Any]) -> None:
        """An event with no row of its own."""
        with self.transaction(f"log {kind} {subject}") as db:
            self.append_event(db, kind, subject, payload)

    def add_explanation(self, exp: Explanation,
                        device_events: Sequence[LoggedDeviceEvent] = (), *,
                        spooled: str | None = None) -> Explanation:
        """Record an explanation, and the device-log entries it accounts for (once each);
        ``spooled``: the id it had in the station's spool (storage/spool.py)."""
        with self.transaction(f"record an explanation ({exp.kind})") as db:
            db.add(exp)
            db.flush()
            for logged in device_events:
                logged.explanation_id = exp.id
                db.add(logged)
            self.append_event(db, "explanation", str(exp.id), {
                "kind": exp.kind, "source_path": exp.source_path, "error": exp.error,
                "action": exp.action, "session": exp.session_id,
                **({"spooled": spooled} if spooled else {}),
            })
        return exp

    def spooled_recorded(self, ref: str) -> bool:
        """Whether an explanation from the spool with this id is already recorded."""
        query = select(LedgerLeaf.seq).where(
            LedgerLeaf.kind == "explanation",
            col(LedgerLeaf.body).contains(f'"spooled":"{ref}"'))
        with self.reading() as db:
            return db.exec(query.limit(1)).first() is not None

    def remember_device_events(self, events: Sequence[LoggedDeviceEvent]) -> None:
        """Keep device-log entries that need no explanation, so later docks know them."""
        with self.transaction("record device-log entries") as db:
            for logged in events:
                db.add(logged)

    def clearing_intent(self, clearing: Clearing) -> Clearing:
        with self.transaction(f"record the intent to clear ({clearing.session_id})") as db:
            db.add(clearing)
            db.flush()
            self.append_event(db, "clear-intent", str(clearing.id), {
                "session": clearing.session_id, "device": clearing.device_no,
                "files": clearing.files_json})
        return clearing

    def clearing_outcome(self, clearing_id: int, outcome: str, detail: str,
                         at: datetime) -> None:
        with self.transaction(f"record the outcome of clearing {clearing_id}") as db:
            found = db.get(Clearing, clearing_id)
            if found is None:
                raise NotFound(f"no clearing {clearing_id}")
            found.outcome, found.detail, found.outcome_at = outcome, detail, at
            db.add(found)
            self.append_event(db, "clear-outcome", str(clearing_id),
                              {"outcome": outcome, "detail": detail})

    def annotate(self, rec_id: int, *, by: str, **values: str | None) -> Recording:
        """Set case, party or category: catalog data only, the file is never touched."""
        changes = {k: v for k, v in values.items() if v is not None}
        with self.transaction(f"annotate recording {rec_id}") as db:
            rec = db.get(Recording, rec_id)
            if rec is None:
                raise NotFound(f"no recording with id {rec_id}")
            for key, value in changes.items():
                setattr(rec, key, value)
            self.append_event(db, "annotate", str(rec_id), {"by": by, **changes})
        return rec

    # Reads -------------------------------------------------------------------

    def held_sources(self, device_no: str | None = None) -> set[tuple[str, str, int, int]]:
        """(device, source path, size, mtime_ns) of every recording already stored."""
        query = select(Recording.device_no, Recording.source_path, Recording.source_size,
                       Recording.source_mtime_ns)
        if device_no is not None:
            query = query.where(Recording.device_no == device_no)
        with self.reading() as db:
            return {tuple(row) for row in db.exec(query)}  # type: ignore[misc]

    def recording_for(self, device_no: str | None, source_path: str) -> Recording | None:
        """The newest recording of this file of this device."""
        query = select(Recording).where(Recording.source_path == source_path)
        if device_no is not None:
            query = query.where(Recording.device_no == device_no)
        with self.reading() as db:
            return db.exec(query.order_by(col(Recording.id).desc()).limit(1)).first()

    def by_digest(self, sha256: str, state: str | None = None) -> Recording | None:
        """The first recording of these bytes (in ``state``, if given)."""
        query = select(Recording).where(Recording.sha256 == sha256)
        if state is not None:
            query = query.where(Recording.state == state)
        with self.reading() as db:
            return db.exec(query.order_by(col(Recording.id)).limit(1)).first()

    def officers_of(self, login: str) -> set[str]:
        """The officer numbers whose OS account is ``login`` (R12: whose recordings are
        theirs)."""
        with self.reading() as db:
            return set(db.exec(select(Officer.officer_no).where(Officer.login == login)))

    def recording(self, rec_id: int) -> Recording:
        with self.reading() as db:
            rec = db.get(Recording, rec_id)
        if rec is None:
            raise NotFound(f"no recording with id {rec_id}")
        return rec

    def recordings(self, flt: LogFilter | None = None, *,
                   limit: int | None = None) -> Sequence[Recording]:
        """The recordings ``flt`` matches, oldest first; with ``limit``, only the most
        recent ``limit`` of them (read from the log indexes, so fast at millions)."""
        order = (col(Recording.recording_start), col(Recording.id))
        query = select(Recording).where(*_log_conditions(flt or LogFilter()))
        with self.reading() as db:
            if limit is None:
                return db.exec(query.order_by(*order)).all()
            newest = db.exec(query.order_by(*(c.desc() for c in order)).limit(limit)).all()
        return newest[::-1]

    def recording_beside(self, device_no: str, source_path: str) -> Recording | None:
        """The recording (not a sidecar) of this device named like ``source_path`` but for
        its extension, in the same folder: what a sidecar file belongs to."""
        stem = source_path.rsplit(".", 1)[0] + "."
        query = select(Recording).where(
            Recording.device_no == device_no, col(Recording.sidecar).is_(False),
            col(Recording.source_path).startswith(stem, autoescape=True))
        with self.reading() as db:
            found = db.exec(query.order_by(col(Recording.id))).all()
        return next((r for r in found if "/" not in r.source_path[len(stem):]), None)

    def recording_covering(self, device_no: str, moment: datetime) -> Recording | None:
        """The recording of this device whose span holds ``moment``, if any."""
        query = select(Recording).where(
            Recording.device_no == device_no, col(Recording.recording_start) <= moment,
            col(Recording.recording_end) >= moment)
        with self.reading() as db:
            return db.exec(query.order_by(col(Recording.recording_start).desc())
                           .limit(1)).first()

    def stored_digests(self, digests: Iterable[str]) -> dict[str, Recording]:
        """The first stored recording of each of these digests the catalog holds."""
        wanted = sorted(set(digests))
        if not wanted:
            return {}
        query = select(Recording).where(col(Recording.sha256).in_(wanted),
                                        Recording.state == "stored")
        found: dict[str, Recording] = {}
        with self.reading() as db:
            for rec in db.exec(query.order_by(col(Recording.id))):
                found.setdefault(rec.sha256, rec)
        return found

    def vault_paths_taken(self, vault_paths: Iterable[str]) -> set[str]:
        """Those of ``vault_paths`` a recording, an explanation or a pending copy names."""
        wanted = sorted(set(vault_paths))
        if not wanted:
            return set()
        taken: set[str] = set()
        with self.reading() as db:
            for column in (Recording.vault_path, PendingCopy.vault_path,
                           Explanation.vault_path):
                taken.update(p for p in db.exec(select(column).where(col(column).in_(wanted)))
                             if p is not None)
        return taken

    def vault_path_taken(self, vault_path: str) -> bool:
        """Whether a recording, an explanation or a pending copy names this vault path."""
        taken = or_(*(exists().where(col(column) == vault_path)
                      for column in (Recording.vault_path, PendingCopy.vault_path,
                                     Explanation.vault_path)))
        with self.reading() as db:  # one statement: this runs for every file stored
            return bool(db.exec(select(taken)).one())

    def known_device_events(self, device_no: str) -> set[tuple[datetime, str, str]]:
        query = select(LoggedDeviceEvent.at, LoggedDeviceEvent.kind, LoggedDeviceEvent.detail
                       ).where(LoggedDeviceEvent.device_no == device_no)
        with self.reading() as db:
            return {(at, kind, detail) for at, kind, detail in db.exec(query)}

    def pending(self, owner: str | None = None) -> Sequence[PendingCopy]:
        query = select(PendingCopy)
        if owner is not None:
            query = query.where(PendingCopy.owner == owner)
        with self.reading() as db:
            return db.exec(query.order_by(col(PendingCopy.id))).all()

    def open_sessions(self, station_id: str | None = None) -> Sequence[DockSession]:
        """Sessions not closed yet (of one station, if named: a site's others are theirs)."""
        query = select(DockSession).where(col(DockSession.finished_at).is_(None))
        if station_id is not None:
            query = query.where(col(DockSession.station_id) == station_id)
        with self.reading() as db:
            return db.exec(query.order_by(col(DockSession.started_at))).all()

    def clearings(self, session_id: str | None = None) -> Sequence[Clearing]:
        query = select(Clearing)
        if session_id is not None:
            query = query.where(Clearing.session_id == session_id)
        with self.reading() as db:
            return db.exec(query.order_by(col(Clearing.id))).all()

    def explanations(self, *, recording_id: int | None = None, session_id: str | None = None,
                     open_only: bool = False) -> Sequence[Explanation]:
        query = select(Explanation)
        if recording_id is not None:
            query = query.where(Explanation.recording_id == recording_id)
        if session_id is not None:
            query = query.where(Explanation.session_id == session_id)
        if open_only:
            query = query.where(Explanation.status == "open")
        with self.reading() as db:
            return db.exec(query.order_by(col(Explanation.id))).all()

    def sessions(self) -> Sequence[DockSession]:
        with self.reading() as db:
            return db.exec(select(DockSession).order_by(col(DockSession.started_at))).all()

    def sessions_from(self, source: str) -> Sequence[DockSession]:
        """The dock sessions of one source (by its label), oldest first."""
        query = select(DockSession).where(DockSession.source == source)
        with self.reading() as db:
            return db.exec(query.order_by(col(DockSession.started_at))).all()

    def sessions_of(self, device_no: str, limit: int) -> Sequence[DockSession]:
        """A recorder's most recent dock sessions, newest first."""
        query = select(DockSession).where(DockSession.device_no == device_no)
        with self.reading() as db:
            return db.exec(query.order_by(col(DockSession.started_at).desc())
                           .limit(limit)).all()

    def session(self, session_id: str) -> DockSession | None:
        with self.reading() as db:
            return db.get(DockSession, session_id)

    def leaves(self, start: int = 0, stop: int | None = None) -> Iterator[LedgerLeaf]:
        """Ledger leaves ``start`` <= seq < ``stop``, in order."""
        query = select(LedgerLeaf).where(col(LedgerLeaf.seq) >= start)
        if stop is not None:
            query = query.where(col(LedgerLeaf.seq) < stop)
        with self.reading() as db:
            yield from db.exec(query.order_by(col(LedgerLeaf.seq)))

    def leaf_hashes(self) -> bytes:
        """Every stored leaf hash, in order, 32 bytes each (what proofs are made from)."""
        query = select(LedgerLeaf.leaf_hash).order_by(col(LedgerLeaf.seq))
        with self.reading() as db:
            return bytes.fromhex("".join(db.exec(query)))

    def station(self, station_id: str) -> Station | None:
        with self.reading() as db:
            return db.get(Station, station_id)

    def leaves_about(self, kind: str, subject: str) -> Iterator[LedgerLeaf]:
        query = select(LedgerLeaf).where(LedgerLeaf.kind == kind, LedgerLeaf.subject == subject)
        with self.reading() as db:
            yield from db.exec(query.order_by(col(LedgerLeaf.seq)))

    def head(self) -> LedgerHead:
        with self.reading() as db:
            found = db.get(LedgerHead, 1)
        if found is None:
            raise CatalogError("catalog: the ledger has no head row (a damaged catalog)")
        return found

    def checkpoints(self) -> Sequence[Checkpoint]:
        with self.reading() as db:
            return db.exec(select(Checkpoint).order_by(col(Checkpoint.size),
                                                       col(Checkpoint.station))).all()

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Keep a signed checkpoint (not a ledger change: it is about the ledger)."""
        what = f"keep checkpoint {checkpoint.size}"
        try:
            with self._writing(what) as db:
                db.merge(checkpoint)
        except SQLAlchemyError as exc:
            raise self._failed(what, exc) from exc

    def rows(self, cls: type[M]) -> Sequence[M]:
        """Every row of one table (for verify)."""
        with self.reading() as db:
            return db.exec(select(cls)).all()

    def integrity(self) -> list[str]:
        """SQLite's own check of its pages and indexes ([] when sound, or not SQLite)."""
        if self.engine.dialect.name != "sqlite":
            return []
        with self.reading() as db:
            found = [str(row[0]) for row in db.execute(text("PRAGMA integrity_check"))]
        return [] if found == ["ok"] else found

    def count_recordings(self, session_id: str | None = None,
                         flt: LogFilter | None = None) -> int:
        """How many recordings one dock session stored, or ``flt`` matches (or all)."""
        flt = flt or LogFilter(session=session_id)
        query = select(func.count()).select_from(Recording).where(*_log_conditions(flt))
        with self.reading() as db:
            return int(db.exec(query).one())
