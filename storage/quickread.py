"""The reads of `evidock log`, `show` and `status` from a SQLite catalog, without the ORM.

Importing SQLAlchemy and SQLModel takes 0.4 s, more than these commands may take in all
(0.3 s, issue 11), and their reads are few and plain: so they are made here with the
standard library's sqlite3, on a connection that cannot write, all in one snapshot. The
rows come back as :class:`RecordingRow` and :class:`ExplanationRow`: the attributes,
types and values the catalog's models give for the same rows (tests/integration/
test_quickread.py holds the two paths to each other on the same catalogs).

A catalog out of the ordinary (not SQLite, not at this release's schema, one that cannot
be opened) raises :class:`Unsuitable` when opened: the command then reads it through
storage.catalog, which says what is wrong in its own words. A read that fails once it
is open (a damaged page, a writer holding the catalog past the busy timeout) is a
CatalogError, as it is through storage.catalog.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from storage.errors import CatalogError, NotFound
from storage.terms import BUSY_TIMEOUT_S, SCHEMA, LogFilter

if TYPE_CHECKING:
    from storage.models import Explanation, Recording


class Unsuitable(Exception):
    """This catalog is not read here (the message says why): read it with the ORM."""


@dataclass(frozen=True)
class RecordingRow:
    """A `recording` row as storage.models.Recording has it (same names, same values)."""

    id: int
    session_id: str
    station_id: str
    agency: str
    category: str | None
    case_no: str | None
    party: str | None
    device_no: str
    officer_no: str
    officer_name: str | None
    unit: str | None
    source_path: str
    source_size: int
    source_mtime_ns: int
    size: int
    sha256: str
    signature: str
    key_id: str
    record_version: int
    recording_start: datetime
    recording_end: datetime
    start_from: str
    duration_s: float | None
    media_json: str | None
    important: bool
    ingested_at: datetime
    deadline: datetime
    late: bool
    vault_path: str
    state: str
    sidecar: bool
    attached_to: int | None
    clock_offset_s: int | None
    purged_at: datetime | None
    purged_by: str | None
    purge_approved_by: str | None
    purge_approval: str | None
    purge_why: str | None


@dataclass(frozen=True)
class ExplanationRow:
    """An `explanation` row as storage.models.Explanation has it."""

    id: int
    session_id: str | None
    recording_id: int | None
    related_recording_id: int | None
    kind: str
    rule: str
    device_no: str | None
    source_path: str | None
    vault_path: str | None
    occurred_at: datetime
    error: str
    action: str
    status: str
    text: str | None


Row = TypeVar("Row", RecordingRow, ExplanationRow)


class CatalogReads(Protocol):
    """The reads `log`, `show` and `status` make (with R12's checks, agent/access.py):
    storage.catalog.Catalog has them, and :class:`QuickCatalog` has them for SQLite
    without the ORM."""

    def recordings(self, flt: LogFilter | None = None, *,
                   limit: int | None = None) -> Sequence[Recording | RecordingRow]: ...

    def count_recordings(self, session_id: str | None = None,
                         flt: LogFilter | None = None) -> int: ...

    def recording(self, rec_id: int) -> Recording | RecordingRow: ...

    def officers_of(self, login: str) -> set[str]: ...

    def explanations(self, *, recording_id: int | None = None, session_id: str | None = None,
                     open_only: bool = False) -> Sequence[Explanation | ExplanationRow]: ...


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A connection that cannot write ``path`` (``mode=ro`` and ``query_only``), in
    autocommit mode (a caller's BEGIN starts a snapshot).

    On a read-only file system (a copy on a disc, a read-only mount) a WAL database whose
    -wal and -shm files are gone cannot be opened with ``mode=ro``; nobody can write it
    there, so it is opened ``immutable``.
    """
    frozen = bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    uri = "file:" + urllib.parse.quote(str(path)) + ("?immutable=1" if frozen else "?mode=ro")
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    conn.isolation_level = None
    conn.execute("PRAGMA query_only=ON")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
    return conn


def stored_time(moment: datetime) -> str:
    """How the catalog stores a time on SQLite (as SQLAlchemy writes it): naive UTC text
    with microseconds, which sorts and compares as the times do."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}"


class QuickCatalog:
    """A SQLite catalog at this release's schema, read in one snapshot; close when done."""

    def __init__(self, path: Path):
        try:
            self._conn = connect_readonly(path)
        except (OSError, sqlite3.Error) as exc:
            raise Unsuitable(f"{path}: {exc}") from exc
        self._path = path
        self._conn.row_factory = sqlite3.Row
        try:
            self._conn.execute("BEGIN")
            found = [tuple(row) for row in self._conn.execute(
                "SELECT version_num FROM alembic_version")]
        except sqlite3.Error as exc:
            self.close()
            raise Unsuitable(f"{path}: {exc}") from exc
        if found != [(SCHEMA,)]:
            self.close()
            raise Unsuitable(f"{path} is at schema {found}, not {SCHEMA}")

    @classmethod
    def of_url(cls, url: str) -> QuickCatalog:
        if not url.startswith("sqlite:///"):
            raise Unsuitable("not a SQLite catalog")
        return cls(Path(url.removeprefix("sqlite:///")))

    def close(self) -> None:
        self._conn.close()

    # The SQL below is put together from this module's own column names only; every
    # value is a bound parameter.

    def recordings(self, flt: LogFilter | None = None, *,
                   limit: int | None = None) -> Sequence[RecordingRow]:
        """As Catalog.recordings: oldest first; with ``limit``, the most recent ``limit``."""
        where, params = _log_where(flt or LogFilter())
        if limit is None:
            order = "recording_start, id"
        else:
            order, params["limit"] = "recording_start DESC, id DESC LIMIT :limit", limit
        found = self._rows(RecordingRow, f"SELECT * FROM recording{where} ORDER BY {order}",  # noqa: S608
                           params)
        return found if limit is None else found[::-1]

    def count_recordings(self, session_id: str | None = None,
                         flt: LogFilter | None = None) -> int:
        where, params = _log_where(flt or LogFilter(session=session_id))
        sql = f"SELECT count(*) FROM recording{where}"  # noqa: S608
        return int(self._query(sql, params)[0][0])

    def officers_of(self, login: str) -> set[str]:
        """As Catalog.officers_of: the officer numbers whose OS account is ``login``."""
        return {row[0] for row in self._query(
            "SELECT officer_no FROM officer WHERE login = :login", {"login": login})}

    def recording(self, rec_id: int) -> RecordingRow:
        found = self._rows(RecordingRow, "SELECT * FROM recording WHERE id = :id",
                           {"id": rec_id})
        if not found:
            raise NotFound(f"no recording with id {rec_id}")
        return found[0]

    def explanations(self, *, recording_id: int | None = None, session_id: str | None = None,
                     open_only: bool = False) -> Sequence[ExplanationRow]:
        """As Catalog.explanations: oldest first."""
        wanted = {"recording_id": recording_id, "session_id": session_id,
                  "status": "open" if open_only else None}
        params = {name: value for name, value in wanted.items() if value is not None}
        where = "".join(f" AND {name} = :{name}" for name in params)
        sql = f"SELECT * FROM explanation WHERE 1 = 1{where} ORDER BY id"  # noqa: S608
        return self._rows(ExplanationRow, sql, params)

    def _query(self, sql: str, params: dict[str, Any]) -> list[sqlite3.Row]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise CatalogError(f"catalog: cannot read {self._path}: {exc}") from exc

    def _rows(self, cls: type[Row], sql: str, params: dict[str, Any]) -> list[Row]:
        times, flags = _KINDS[cls]
        made = []
        for found in self._query(sql, params):
            values = dict(zip(found.keys(), found, strict=True))
            for name in times:
                if values[name] is not None:
                    values[name] = datetime.fromisoformat(values[name]).replace(tzinfo=UTC)
            for name in flags:
                values[name] = bool(values[name])
            made.append(cls(**values))
        return made


def _log_where(flt: LogFilter) -> tuple[str, dict[str, Any]]:
    """The WHERE clause and its parameters for ``flt``, as Catalog's _log_conditions."""
    params: dict[str, Any] = {column: value for column, value in (
        ("device_no", flt.device), ("officer_no", flt.officer),
        ("late", None if flt.late is None else int(flt.late)), ("state", flt.state),
        ("case_no", flt.case), ("session_id", flt.session)) if value is not None}
    terms = [f"{column} = :{column}" for column in params]
    if flt.since is not None:
        terms.append("recording_start >= :since")
        params["since"] = stored_time(flt.since)
    if flt.until is not None:
        terms.append("recording_start < :until")
        params["until"] = stored_time(flt.until)
    return (" WHERE " + " AND ".join(terms) if terms else ""), params


def _kinds(cls: type[Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The fields of ``cls`` stored as time text, and those stored as 0 or 1."""
    types = {f.name: str(f.type) for f in fields(cls)}
    return (tuple(n for n, t in types.items() if t.startswith("datetime")),
            tuple(n for n, t in types.items() if t == "bool"))


_KINDS = {cls: _kinds(cls) for cls in (RecordingRow, ExplanationRow)}
