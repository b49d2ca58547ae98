"""The ledger: every catalog transaction is a leaf of an append-only Merkle tree (a
group of small files, recorded in one transaction, is one leaf a file: seal_parts).

A leaf is the canonical encoding (docs/formats.md) of what the transaction did:
the event it stands for (kind, subject, payload) and the full new values of every
row it inserted or changed (or ``null`` for a row it deleted). Leaves are hashed
as in RFC 6962 (``storage.merkle``), so any catalog row can be rebuilt from the
ledger and checked against it, and a signed checkpoint of the tree's size and
root pins everything before it.

Write transactions are serialized before they read anything (SQLite: BEGIN IMMEDIATE;
PostgreSQL: a transaction-scoped advisory lock, storage/catalog.py), so the stations
of a site append to one ledger in one order. The ``ledger_head`` row keeps the tree's
size and compact range (read ``FOR UPDATE``, a second guard), so an append costs
O(log n) hashes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, SQLModel, col, select

from storage.canonical import canonical_json, utc_text
from storage.merkle import leaf_hash, node_hash
from storage.models import (
    AccessEntry,
    Case,
    Clearing,
    Device,
    DeviceNote,
    DockSession,
    Duty,
    Explanation,
    Hold,
    LedgerHead,
    LedgerLeaf,
    LoggedDeviceEvent,
    Officer,
    PendingCopy,
    Recording,
    Statement,
    Station,
    now_utc,
)

LEAF_FORMAT = "evidock-ledger-leaf/1"

#: Every table whose rows the ledger holds, by table name.
TABLES: dict[str, type[SQLModel]] = {
    str(cls.__tablename__): cls
    for cls in (Station, Officer, Device, DockSession, Recording, Explanation, PendingCopy,
                Clearing, LoggedDeviceEvent, Statement, Duty, DeviceNote, Case, Hold,
                AccessEntry)
}

#: The columns added to ledger tables since the ledger began (schema 0004), with the value
#: an upgrade gives the rows already there. An upgrade of a catalog records them in a
#: ``schema-upgrade`` leaf, so the rows the ledger holds take the new columns too.
COLUMNS_ADDED: dict[str, dict[str, Any]] = {
    "officer": {"role": None, "login": None},
    "device": {"checked_out_to": None},
    "explanation": {"related_recording_id": None},
    "recording": {"sidecar": False, "attached_to": None, "clock_offset_s": None,
                  "purged_at": None, "purged_by": None, "purge_approved_by": None,
                  "purge_approval": None, "purge_why": None},
    "device_event": {"clock_offset_s": None},
    "dock_session": {"ready_json": None},
}
UPGRADE_KIND = "schema-upgrade"

_CHANGES = "evidock.ledger.changes"
_EVENT = "evidock.ledger.event"


def encode_value(value: Any) -> Any:
    """A column value as it appears in a leaf: times as canonical UTC text, floats as text."""
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return value


def image(row: SQLModel) -> dict[str, Any]:
    """The row's columns as the ledger records them."""
    table = row.__table__  # type: ignore[attr-defined]
    return {c.name: encode_value(getattr(row, c.name)) for c in table.columns}


def row_key(row: SQLModel) -> str:
    """The primary key as text (composite keys joined by '/')."""
    identity = inspect(row).mapper.primary_key_from_instance(row)
    if any(part is None for part in identity):
        raise ValueError(f"a {type(row).__name__} row has no primary key yet")
    return "/".join(str(part) for part in identity)


# Collecting a transaction's changes -------------------------------------------------

def _collect(db: OrmSession, _context: Any) -> None:
    """after_flush: note the new values of every ledgered row this flush wrote."""
    changes: dict[tuple[str, str], dict[str, Any] | None] = db.info[_CHANGES]
    for obj in list(db.new) + [o for o in db.dirty if db.is_modified(o)]:
        name = getattr(obj, "__tablename__", None)
        if name in TABLES:
            changes[(name, row_key(obj))] = image(obj)
    for obj in db.deleted:
        name = getattr(obj, "__tablename__", None)
        if name in TABLES:
            changes[(name, row_key(obj))] = None


def watch(db: Session) -> None:
    """Start collecting ``db``'s changes for the leaf ``seal`` writes."""
    db.info[_CHANGES] = {}
    event.listen(db, "after_flush", _collect)


def note_event(db: Session, kind: str, subject: str, payload: dict[str, Any]) -> None:
    """Name what this transaction (or its current leaf) does; one event a leaf."""
    if _EVENT in db.info:
        raise RuntimeError(f"one ledger event a leaf ({db.info[_EVENT][0]} already)")
    db.info[_EVENT] = (kind, subject, payload)


# The compact range: the roots of the perfect subtrees, largest first ---------------

def frontier_append(frontier: list[bytes], size: int, leaf: bytes) -> list[bytes]:
    """The compact range of a tree of ``size`` leaves after appending ``leaf``."""
    out, node, n = list(frontier), leaf, size
    while n & 1:  # the rightmost subtree has the new node's height: merge them
        node = node_hash(out.pop(), node)
        n >>= 1
    out.append(node)
    return out


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """RFC 6962 root of the tree whose compact range this is (SHA-256 of '' when empty)."""
    if not frontier:
        return hashlib.sha256(b"").digest()
    node = frontier[-1]
    for left in reversed(frontier[:-1]):
        node = node_hash(left, node)
    return node


def leaf_body(seq: int, at: datetime, station: str | None,
              ev: tuple[str, str, dict[str, Any]] | None,
              changes: Mapping[tuple[str, str], dict[str, Any] | None]) -> bytes:
    kind, subject, payload = ev if ev is not None else ("change", "", {})
    return canonical_json({
        "format": LEAF_FORMAT, "seq": seq, "at": at, "station": station,
        "kind": kind, "subject": subject, "payload": payload,
        "changes": [{"table": t, "key": k, "row": row}
                    for (t, k), row in sorted(changes.items(), key=lambda i: i[0])],
    })


#: One leaf of a transaction of several: its event, and the (table, key) of the rows it
#: changed.
Part = tuple[tuple[str, str, dict[str, Any]], set[tuple[str, str]]]


def seal(db: Session, station: str | None) -> None:
    """Append this transaction's leaf (after its last flush), if it changed anything."""
    db.flush()
    event.remove(db, "after_flush", _collect)
    changes = db.info.pop(_CHANGES)
    ev = db.info.pop(_EVENT, None)
    if changes or ev is not None:
        _append(db, station, [(ev, changes)])


def seal_parts(db: Session, station: str | None, parts: Sequence[Part]) -> None:
    """Append what the transaction did so far as one leaf a part, in order (a group of
    recordings: one leaf each); a change no part names goes in the first leaf. Then
    collect for the transaction's own leaf again."""
    db.flush()
    if _EVENT in db.info:
        raise RuntimeError("an event for the whole transaction, and parts with their own")
    rest = dict(db.info[_CHANGES])
    leaves = [(ev, {key: rest.pop(key) for key in keys if key in rest}) for ev, keys in parts]
    if leaves:
        leaves[0][1].update(rest)
        _append(db, station, leaves)
    db.info[_CHANGES] = {}


def _append(db: Session, station: str | None,
            leaves: Sequence[tuple[tuple[str, str, dict[str, Any]] | None,
                                   Mapping[tuple[str, str], dict[str, Any] | None]]]) -> None:
    # The transaction already holds the catalog's write lock (storage/catalog.py); the
    # head row is read locked too (FOR UPDATE on PostgreSQL), a second guard.
    head = db.exec(select(LedgerHead).where(col(LedgerHead.id) == 1).with_for_update()
                   .execution_options(populate_existing=True)).one()
    frontier = [bytes.fromhex(h) for h in json.loads(head.frontier)]
    for ev, changes in leaves:
        seq, at = head.size, now_utc()
        body = leaf_body(seq, at, station, ev, changes)
        digest = leaf_hash(body)
        frontier = frontier_append(frontier, seq, digest)
        head.size = seq + 1
        db.add(LedgerLeaf(seq=seq, at=at, kind=ev[0] if ev else "change",
                          subject=ev[1] if ev else "", body=body.decode("ascii"),
                          leaf_hash=digest.hex()))
    head.frontier = json.dumps([h.hex() for h in frontier])
    head.root = frontier_root(frontier).hex()
    db.add(head)


# Reading it back ------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    table: str
    key: str
    row: dict[str, Any] | None  # None: the row was deleted


def changes_of(body: dict[str, Any]) -> Iterator[Change]:
    for item in body.get("changes", []):
        yield Change(item["table"], item["key"], item["row"])


def replay(bodies: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The rows the ledger says exist now, by (table, key)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for body in bodies:
        if body.get("kind") == UPGRADE_KIND:
            _upgrade(rows, body.get("payload", {}).get("columns", {}))
        for change in changes_of(body):
            if change.row is None:
                rows.pop((change.table, change.key), None)
            else:
                rows[(change.table, change.key)] = change.row
    return rows


def _upgrade(rows: dict[tuple[str, str], dict[str, Any]],
             columns: Mapping[str, Mapping[str, Any]]) -> None:
    """A schema upgrade: every row so far without a named column takes its value."""
    for (table, _key), row in rows.items():
        for name, value in columns.get(table, {}).items():
            row.setdefault(name, value)


def record_upgrade(db: Session, found: str, to: str) -> None:
    """Seal a leaf saying the catalog went from schema ``found`` to ``to`` (in ``db``'s
    transaction, with the migration), naming the columns the rows already there took."""
    watch(db)
    note_event(db, UPGRADE_KIND, to, {"from": found, "to": to, "columns": {
        table: {name: encode_value(value) for name, value in added.items()}
        for table, added in COLUMNS_ADDED.items()}})
    seal(db, None)
    db.flush()
