"""Catalog tables (sqlmodel). Every time is timezone-aware UTC."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import BigInteger, Column, Index, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import DateTime, TypeDecorator
from sqlmodel import Field, SQLModel

from storage.terms import now_utc as now_utc  # re-exported (storage/terms.py says why)

M = TypeVar("M", bound=SQLModel)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, returns aware UTC datetimes, refuses naive ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog; use UTC-aware times")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_field(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class Station(SQLModel, table=True):
    __tablename__ = "station"
    station_id: str = Field(primary_key=True)
    agency: str
    key_id: str
    public_key_pem: str
    first_seen: datetime = utc_field()


class Officer(SQLModel, table=True):
    __tablename__ = "officer"
    officer_no: str = Field(primary_key=True)
    name: str | None = None
    unit_no: str | None = None
    unit_name: str | None = None
    # officer, custodian or supervisor once registered (`officer add`); None for an
    # officer known only from what recorders said, who cannot sign statements
    role: str | None = None
    login: str | None = Field(default=None, index=True)  # their OS account (R12 roles)


class AccessEntry(SQLModel, table=True):
    """R12: one access to recordings by a person (view, export, tag), with its approval."""

    __tablename__ = "access_entry"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = utc_field(index=True)
    login: str = Field(index=True)  # the OS account that asked
    roles: str  # their roles then, comma-separated
    action: str  # show, log, export, annotate
    recordings: str  # JSON list of the recording ids concerned (log: the ids listed)
    officers: str  # JSON list of the other officers whose recordings they are
    reason: str | None = None
    approved_by: str | None = None
    approval: str | None = None  # the approval's reference


class Device(SQLModel, table=True):
    __tablename__ = "device"
    device_no: str = Field(primary_key=True)
    model: str | None = None
    usb_serial: str | None = Field(default=None, index=True)
    officer_no: str | None = None  # assigned officer
    status: str = "active"  # active, out_of_service, retired
    checked_out_to: str | None = None  # the officer holding it now (check-out, R13)
    registered_at: datetime | None = utc_field(nullable=True)  # by a custodian
    retired_at: datetime | None = utc_field(nullable=True)
    first_seen: datetime = utc_field()
    last_seen: datetime = utc_field()


class DockSession(SQLModel, table=True):
    __tablename__ = "dock_session"
    session_id: str = Field(primary_key=True)
    station_id: str
    device_no: str | None = None
    officer_no: str | None = None
    source: str
    started_at: datetime = utc_field()
    finished_at: datetime | None = utc_field(nullable=True)
    files_seen: int = 0
    files_stored: int = 0
    files_already_held: int = 0
    files_failed: int = 0
    bytes_stored: int = Field(default=0, sa_type=BigInteger)
    summary_json: str | None = None
    signature: str | None = None
    key_id: str | None = None
    # What the recorder said about itself at this dock (None when it cannot say).
    usb_serial: str | None = None
    model: str | None = None
    clock_drift_s: float | None = None  # recorder clock minus station clock, before setting
    clock_set: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    battery_pct: int | None = None
    storage_free: int | None = Field(default=None, sa_type=BigInteger)
    storage_total: int | None = Field(default=None, sa_type=BigInteger)
    device_log: str | None = None  # the recorder's event log, JSON
    # asked again once the dock is done: JSON of ingest.readiness.Readiness
    ready_json: str | None = None
    firmware: str | None = None  # what VER answered
    interrupted: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    # The process that ran the dock (storage.vault.Vault.owner): recovery closes the
    # sessions of processes that died with them open.
    owner: str | None = Field(default=None, index=True)


class Recording(SQLModel, table=True):
    __tablename__ = "recording"
    __table_args__ = (
        Index("ix_recording_source", "device_no", "source_path", "source_size", "source_mtime_ns"),
        # `evidock log` filters: the most recent matches straight from the index
        *(Index(f"ix_recording_{c}_start", c, "recording_start")
          for c in ("device_no", "officer_no", "late", "state")),
    )
    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(index=True)
    station_id: str
    agency: str
    category: str | None = None
    case_no: str | None = Field(default=None, index=True)
    party: str | None = None
    device_no: str
    officer_no: str
    officer_name: str | None = None
    unit: str | None = None
    source_path: str
    source_size: int = Field(sa_type=BigInteger)
    source_mtime_ns: int = Field(sa_type=BigInteger)
    size: int = Field(sa_type=BigInteger)
    sha256: str = Field(index=True)
    signature: str
    key_id: str
    record_version: int = 2  # of the signed ingest record (ingest/record.py)
    recording_start: datetime = utc_field(index=True)
    recording_end: datetime = utc_field()
    start_from: str  # "filename", "metadata" or "mtime": where the start time came from
    duration_s: float | None = None
    media_json: str | None = None
    important: bool = False
    ingested_at: datetime = utc_field(index=True)
    deadline: datetime = utc_field()
    late: bool = False
    # Identical bytes under several names share one vault file: one row per name.
    vault_path: str = Field(index=True)
    state: str = "stored"  # "stored" or "quarantined"
    # A sidecar (GPS log, metadata, subtitles) is stored and signed like a recording and
    # attached to the recording of the same name in the same folder, when there is one.
    sidecar: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    attached_to: int | None = None
    # The recorder's clock minus the station's, in whole seconds, as measured at the dock
    # and taken off the recorder's times; None: unknown (the times are the recorder's).
    clock_offset_s: int | None = None
    # Purged by rule (R8): the file is gone, the row and its signed record stay (a tombstone)
    purged_at: datetime | None = utc_field(nullable=True, index=True)
    purged_by: str | None = None
    purge_approved_by: str | None = None
    purge_approval: str | None = None  # the approval's reference
    purge_why: str | None = None


class Hold(SQLModel, table=True):
    """A long-term hold (R9): the recording, or every recording of the case, is kept."""

    __tablename__ = "hold"
    id: int | None = Field(default=None, primary_key=True)
    recording_id: int | None = Field(default=None, index=True)
    case_no: str | None = Field(default=None, index=True)
    reason: str  # dispute, complaint, assault, emergency, evidence, other
    note: str
    placed_by: str
    placed_at: datetime = utc_field()
    released_at: datetime | None = utc_field(nullable=True)
    released_by: str | None = None
    release_note: str | None = None


class Explanation(SQLModel, table=True):
    """A written explanation (R3, R4, R2): open until officers complete it."""

    __tablename__ = "explanation"
    id: int | None = Field(default=None, primary_key=True)
    session_id: str | None = Field(default=None, index=True)
    recording_id: int | None = Field(default=None, index=True)
    # the other recording it is about (the clip before a gap), if any
    related_recording_id: int | None = None
    kind: str = Field(index=True)
    rule: str
    device_no: str | None = None
    source_path: str | None = None
    vault_path: str | None = None  # a quarantined copy this explanation accounts for
    occurred_at: datetime = utc_field()
    error: str
    action: str
    status: str = "open"
    text: str | None = None


class Statement(SQLModel, table=True):
    """What officers state about an explanation, and who signs it (R4, R2, R3).

    The first statement completes its explanation; a later one corrects the one it
    names (``corrects_id``): statements are never changed or removed.
    """

    __tablename__ = "statement"
    id: int | None = Field(default=None, primary_key=True)
    explanation_id: int = Field(index=True, foreign_key="explanation.id")
    corrects_id: int | None = Field(default=None, foreign_key="statement.id")
    reason: str  # device-fault, low-battery, storage-full, weather, obstruction, other
    text: str
    signers_json: str  # JSON list of the signing officers' numbers, in order
    made_at: datetime = utc_field()

    def signers(self) -> list[str]:
        found: list[str] = json.loads(self.signers_json)
        return found


class DeviceNote(SQLModel, table=True):
    """The custody and maintenance log of one recorder (R13): checks, repairs, faults,
    firmware, out of and back in service, check-out and check-in."""

    __tablename__ = "device_note"
    id: int | None = Field(default=None, primary_key=True)
    device_no: str = Field(index=True)
    kind: str
    note: str
    officer_no: str | None = None  # who took it (check-out) or gave it back (check-in)
    by: str
    at: datetime = utc_field()


class Case(SQLModel, table=True):
    """A case whose enforcement action has ended (R11): its recordings are due in the case
    file within 30 days of ``ended_at``."""

    __tablename__ = "case_file"
    case_no: str = Field(primary_key=True)
    ended_at: datetime = utc_field()
    closed_at: datetime = utc_field()
    closed_by: str
    filed_at: datetime | None = utc_field(nullable=True)
    filed_by: str | None = None
    filed_note: str | None = None


class Duty(SQLModel, table=True):
    """A declared remote or continuous duty (R2): recordings made during it are due
    within the storage window from the officer's return, not from their end."""

    __tablename__ = "duty"
    id: int | None = Field(default=None, primary_key=True)
    officer_no: str = Field(index=True)
    starts_at: datetime = utc_field()
    ends_at: datetime = utc_field()
    returned_at: datetime = utc_field()
    reason: str
    declared_at: datetime = utc_field()
    declared_by: str | None = None


class LedgerLeaf(SQLModel, table=True):
    """One leaf of the ledger: what one catalog transaction did (storage/ledger.py)."""

    __tablename__ = "ledger_leaf"
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = utc_field()
    kind: str = Field(index=True)
    subject: str = Field(index=True)
    body: str  # the canonical leaf, ASCII
    leaf_hash: str  # hex SHA-256(0x00 || body)


class LedgerHead(SQLModel, table=True):
    """The ledger's one row of state, and the serialization point of every append."""

    __tablename__ = "ledger_head"
    id: int = Field(primary_key=True)
    size: int = 0
    frontier: str = "[]"  # JSON: hex roots of the perfect subtrees, largest first
    root: str = ""


class Checkpoint(SQLModel, table=True):
    """A signed checkpoint (C2SP tlog-checkpoint) of the ledger."""

    __tablename__ = "checkpoint"
    size: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    station: str = Field(primary_key=True)  # the station that signed it (a site has many)
    root: str  # hex
    note: str  # the signed note, as written to the outbox
    made_at: datetime = utc_field()


class PendingCopy(SQLModel, table=True):
    """A verified copy about to be linked into the vault, and the row it will get.

    Written before the link and removed with the recording's insert, so a crash
    in between leaves enough to adopt the copy (or remove it) at the next start.
    """

    __tablename__ = "pending_copy"
    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(index=True)
    session_id: str
    tmp_path: str  # relative to the vault root
    vault_path: str
    row_json: str  # the signed Recording, ready to insert
    created_at: datetime = utc_field()


class Clearing(SQLModel, table=True):
    """Clearing a recorder: the intent is committed before the command, the outcome after."""

    __tablename__ = "clearing"
    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(index=True)
    device_no: str | None = None
    intent_at: datetime = utc_field()
    files_json: str  # [{"path", "sha256", "recording"}] verified in the vault before asking
    outcome: str | None = None  # cleared, refused, unknown; None while the command runs
    outcome_at: datetime | None = utc_field(nullable=True)
    detail: str | None = None


class LoggedDeviceEvent(SQLModel, table=True):
    """An entry of a recorder's own event log, kept once however often it is read."""

    __tablename__ = "device_event"
    __table_args__ = (UniqueConstraint("device_no", "at", "kind", "detail",
                                       name="uq_device_event"),)
    id: int | None = Field(default=None, primary_key=True)
    device_no: str
    at: datetime = utc_field()
    kind: str
    detail: str
    session_id: str  # the dock that first read it
    explanation_id: int | None = None
    # ``at`` is the recorder's own time; this offset (as for a recording) corrects it
    clock_offset_s: int | None = None


def row_json(row: SQLModel, fault: dict[str, str] | None = None) -> str:
    """A row as JSON (times as ISO 8601), to be rebuilt by ``row_from_json``; ``fault``
    (a pending copy kept in quarantine): the explanation its recording is written with,
    under the key ``fault`` (``fault_of``)."""
    if fault is None:
        return row.model_dump_json()
    return json.dumps({**json.loads(row.model_dump_json()), "fault": fault})


def row_from_json(cls: type[M], text: str) -> M:
    """Rebuild a row written by ``row_json``: ISO times become aware datetimes again."""
    data: dict[str, Any] = json.loads(text)
    columns = cls.__table__.columns  # type: ignore[attr-defined]
    row: dict[str, Any] = {}
    for column in columns:
        if column.name not in data:
            continue
        value = data[column.name]
        if isinstance(column.type, UTCDateTime) and isinstance(value, str):
            value = datetime.fromisoformat(value)
        row[column.name] = value
    return cls(**row)


def fault_of(text: str) -> dict[str, str] | None:
    """The ``fault`` that ``row_json`` wrote beside the row, if any."""
    fault = json.loads(text).get("fault")
    return fault if isinstance(fault, dict) else None
