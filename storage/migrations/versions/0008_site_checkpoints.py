"""a site of stations: a checkpoint is kept per station that signed it

Stations sharing one catalog may each sign a checkpoint of the same tree size; the
checkpoint table's key becomes (size, station) so neither replaces the other. Rows from
before take the station named in their note's first line (``evidock/<station>``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'checkpoint_new',
        sa.Column('size', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('station', sa.String(), nullable=False),
        sa.Column('root', sa.String(), nullable=False),
        sa.Column('note', sa.String(), nullable=False),
        sa.Column('made_at', storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('size', 'station'))
    bind = op.get_bind()
    rows = bind.execute(sa.text("select size, root, note, made_at from checkpoint")).all()
    for size, root, note, made_at in rows:
        origin = str(note).split("\n", 1)[0]
        bind.execute(sa.text("insert into checkpoint_new (size, station, root, note, made_at) "
                             "values (:size, :station, :root, :note, :made_at)"),
                     {"size": size, "station": origin.removeprefix("evidock/"), "root": root,
                      "note": note, "made_at": made_at})
    op.drop_table('checkpoint')
    op.rename_table('checkpoint_new', 'checkpoint')


def downgrade() -> None:
    """Back to one checkpoint per size: the first station's (by name) is kept."""
    op.create_table(
        'checkpoint_old',
        sa.Column('size', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('root', sa.String(), nullable=False),
        sa.Column('note', sa.String(), nullable=False),
        sa.Column('made_at', storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('size'))
    op.get_bind().execute(sa.text(
        "insert into checkpoint_old (size, root, note, made_at) "
        "select size, root, note, made_at from checkpoint c where not exists (select 1 "
        "from checkpoint d where d.size = c.size and d.station < c.station)"))
    op.drop_table('checkpoint')
    op.rename_table('checkpoint_old', 'checkpoint')
