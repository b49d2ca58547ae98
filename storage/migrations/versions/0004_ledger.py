"""the ledger (Merkle tree of every catalog change) and checkpoints replace the event chain

A store made before this revision gets its ledger built here: one leaf per event
of its old hash chain (kind ``legacy-event``, the event's fields as its payload,
in order), then one ``ledger-start`` leaf holding every row as found at the
upgrade. Rows from before the upgrade are therefore checked from then on, and the
ledger says in its own leaf that they were taken as found.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 23:50:00
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import storage.models
from storage.ledger import TABLES, encode_value, frontier_append, frontier_root, leaf_body
from storage.merkle import leaf_hash

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def _aware(value: object) -> object:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _snapshot(bind: sa.engine.Connection) -> dict[tuple[str, str], dict[str, object]]:
    """Every row as the ledger records rows, from the columns this schema has (the models
    may have more: later revisions add them)."""
    existing = sa.inspect(bind)
    found: dict[tuple[str, str], dict[str, object]] = {}
    for name, cls in TABLES.items():
        if not existing.has_table(name):
            continue
        have = {c["name"] for c in existing.get_columns(name)}
        table = cls.__table__  # type: ignore[attr-defined]
        columns = [c for c in table.columns if c.name in have]
        keys = [c.name for c in table.primary_key.columns]
        for row in bind.execute(sa.select(*columns)).mappings():
            found[(name, "/".join(str(row[k]) for k in keys))] = {
                c.name: encode_value(row[c.name]) for c in columns}
    return found


def upgrade() -> None:
    op.create_table('ledger_leaf',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('subject', sa.String(), nullable=False),
    sa.Column('body', sa.String(), nullable=False),
    sa.Column('leaf_hash', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    op.create_index(op.f('ix_ledger_leaf_kind'), 'ledger_leaf', ['kind'], unique=False)
    op.create_index(op.f('ix_ledger_leaf_subject'), 'ledger_leaf', ['subject'], unique=False)
    op.create_table('ledger_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('frontier', sa.String(), nullable=False),
    sa.Column('root', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('checkpoint',
    sa.Column('size', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('root', sa.String(), nullable=False),
    sa.Column('note', sa.String(), nullable=False),
    sa.Column('made_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('size')
    )
    bind = op.get_bind()
    events = bind.execute(sa.text(
        "select at, kind, subject, payload, prev_hash, hash from event order by id")).all()
    bodies: list[tuple[datetime, str, str, bytes]] = []
    now = datetime.now(UTC)
    for at, kind, subject, payload, prev_hash, hash_ in events:
        moment = _aware(at if isinstance(at, datetime) else datetime.fromisoformat(str(at)))
        assert isinstance(moment, datetime)
        ev = ("legacy-event", subject, {"kind": kind, "payload": payload,
                                        "prev_hash": prev_hash, "hash": hash_})
        bodies.append((moment, "legacy-event", subject,
                       leaf_body(len(bodies), moment, None, ev, {})))
    if events:
        snapshot = _snapshot(bind)
        ev = ("ledger-start", "", {"from_event_chain": len(events),
                                   "chain_head": events[-1][5], "rows": "as found"})
        bodies.append((now, "ledger-start", "", leaf_body(len(bodies), now, None, ev, snapshot)))
    frontier: list[bytes] = []
    for seq, (at, kind, subject, body) in enumerate(bodies):
        digest = leaf_hash(body)
        frontier = frontier_append(frontier, seq, digest)
        bind.execute(sa.text("insert into ledger_leaf (seq, at, kind, subject, body, leaf_hash) "
                             "values (:seq, :at, :kind, :subject, :body, :hash)"),
                     {"seq": seq, "at": at.astimezone(UTC).replace(tzinfo=None)
                      if bind.dialect.name == "sqlite" else at, "kind": kind,
                      "subject": subject, "body": body.decode("ascii"), "hash": digest.hex()})
    bind.execute(sa.text("insert into ledger_head (id, size, frontier, root) "
                         "values (1, :size, :frontier, :root)"),
                 {"size": len(bodies), "frontier": json.dumps([h.hex() for h in frontier]),
                  "root": frontier_root(frontier).hex()})
    op.drop_table('event')
    if events:
        logging.getLogger("evidock").warning(
            "catalog upgraded: its ledger was built from its event chain (%d events) and "
            "its %d rows as found (leaf %d, kind ledger-start)", len(events),
            sum(1 for _ in snapshot), len(bodies) - 1)


def downgrade() -> None:
    raise RuntimeError("refused: the ledger holds rows the event chain never did; restore "
                       "the catalog from a backup made before the upgrade instead")
