"""the recorder clock's offset applied to a recording's times and to its event log;
what the recorder said when asked again after its dock (its readiness for a shift);
retention: recordings purged by rule keep their row as a tombstone, and holds;
officers' OS accounts and the access register (R12)

A recording keeps the times as corrected (its start and end); the offset applied
(whole seconds, the recorder's clock minus the station's, null when unknown) gives
back the recorder's own times. Rows from before keep null: their times are as the
recorder's clock said.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 04:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('device_event') as batch:
        batch.add_column(sa.Column('clock_offset_s', sa.Integer(), nullable=True))
    with op.batch_alter_table('dock_session') as batch:
        batch.add_column(sa.Column('ready_json', sa.String(), nullable=True))
    with op.batch_alter_table('recording') as batch:
        batch.add_column(sa.Column('clock_offset_s', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('purged_at', storage.models.UTCDateTime(timezone=True),
                                   nullable=True))
        for name in ('purged_by', 'purge_approved_by', 'purge_approval', 'purge_why'):
            batch.add_column(sa.Column(name, sa.String(), nullable=True))
    op.create_index('ix_recording_purged_at', 'recording', ['purged_at'])
    with op.batch_alter_table('officer') as batch:
        batch.add_column(sa.Column('login', sa.String(), nullable=True))
    op.create_index('ix_officer_login', 'officer', ['login'])
    op.create_table(
        'access_entry',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('login', sa.String(), nullable=False),
        sa.Column('roles', sa.String(), nullable=False),
        sa.Column('action', sa.String(), nullable=False),
        sa.Column('recordings', sa.String(), nullable=False),
        sa.Column('officers', sa.String(), nullable=False),
        sa.Column('reason', sa.String(), nullable=True),
        sa.Column('approved_by', sa.String(), nullable=True),
        sa.Column('approval', sa.String(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_access_entry_at', 'access_entry', ['at'])
    op.create_index('ix_access_entry_login', 'access_entry', ['login'])
    op.create_table(
        'hold',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('recording_id', sa.Integer(), nullable=True),
        sa.Column('case_no', sa.String(), nullable=True),
        sa.Column('reason', sa.String(), nullable=False),
        sa.Column('note', sa.String(), nullable=False),
        sa.Column('placed_by', sa.String(), nullable=False),
        sa.Column('placed_at', storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('released_at', storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('released_by', sa.String(), nullable=True),
        sa.Column('release_note', sa.String(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_hold_recording_id', 'hold', ['recording_id'])
    op.create_index('ix_hold_case_no', 'hold', ['case_no'])


def downgrade() -> None:
    op.drop_index('ix_access_entry_login', table_name='access_entry')
    op.drop_index('ix_access_entry_at', table_name='access_entry')
    op.drop_table('access_entry')
    op.drop_index('ix_officer_login', table_name='officer')
    with op.batch_alter_table('officer') as batch:
        batch.drop_column('login')
    op.drop_index('ix_hold_case_no', table_name='hold')
    op.drop_index('ix_hold_recording_id', table_name='hold')
    op.drop_table('hold')
    op.drop_index('ix_recording_purged_at', table_name='recording')
    with op.batch_alter_table('recording') as batch:
        for name in ('purge_why', 'purge_approval', 'purge_approved_by', 'purged_by',
                     'purged_at', 'clock_offset_s'):
            batch.drop_column(name)
    with op.batch_alter_table('dock_session') as batch:
        batch.drop_column('ready_json')
    with op.batch_alter_table('device_event') as batch:
        batch.drop_column('clock_offset_s')
