"""Catalog tables (sqlmodel). Every time is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index
from sqlalchemy.engine import Dialect
from sqlalchemy.types import DateTime, TypeDecorator
from sqlmodel import Field, SQLModel


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


def now_utc() -> datetime:
    return datetime.now(UTC)


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


class Device(SQLModel, table=True):
    __tablename__ = "device"
    device_no: str = Field(primary_key=True)
    model: str | None = None
    usb_serial: str | None = Field(default=None, index=True)
    officer_no: str | None = None  # assigned officer
    status: str = "active"  # active, retired
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
    interrupted: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})


class Recording(SQLModel, table=True):
    __tablename__ = "recording"
    __table_args__ = (
        Index("ix_recording_source", "device_no", "source_path", "source_size", "source_mtime_ns"),
    )
    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(index=True)
    station_id: str
    agency: str
    category: str | None = None
    case_no: str | None = Field(default=None, index=True)
    party: str | None = None
    device_no: str = Field(index=True)
    officer_no: str = Field(index=True)
    officer_name: str | None = None
    unit: str | None = None
    source_path: str
    source_size: int = Field(sa_type=BigInteger)
    source_mtime_ns: int = Field(sa_type=BigInteger)
    size: int = Field(sa_type=BigInteger)
    sha256: str = Field(index=True)
    signature: str
    key_id: str
    record_version: int = 1
    recording_start: datetime = utc_field(index=True)
    recording_end: datetime = utc_field()
    start_from: str  # "filename", "metadata" or "mtime": where the start time came from
    duration_s: float | None = None
    media_json: str | None = None
    important: bool = False
    ingested_at: datetime = utc_field(index=True)
    deadline: datetime = utc_field()
    late: bool = False
    vault_path: str = Field(unique=True)
    state: str = "stored"  # "stored" or "quarantined"


class Explanation(SQLModel, table=True):
    """A written explanation (R3, R4, R2): open until officers complete it."""

    __tablename__ = "explanation"
    id: int | None = Field(default=None, primary_key=True)
    session_id: str | None = Field(default=None, index=True)
    recording_id: int | None = Field(default=None, index=True)
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


class Event(SQLModel, table=True):
    """Append-only, hash-chained log of everything that happened."""

    __tablename__ = "event"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = utc_field()
    kind: str
    subject: str
    payload: str
    prev_hash: str
    hash: str = Field(unique=True)
