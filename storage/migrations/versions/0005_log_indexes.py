"""indexes for `evidock log` over millions of recordings

Each filter of the log (device, officer, late, state) gets an index that also orders
by the recording's start, so the most recent matches are read straight from the index
(bench/log_bench.py); the single-column device and officer indexes they replace go.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 02:00:00
"""

from __future__ import annotations

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_BY_START = ("device_no", "officer_no", "late", "state")


def upgrade() -> None:
    op.drop_index('ix_recording_device_no', table_name='recording')
    op.drop_index('ix_recording_officer_no', table_name='recording')
    for column in _BY_START:
        op.create_index(f'ix_recording_{column}_start', 'recording',
                        [column, 'recording_start'])


def downgrade() -> None:
    for column in _BY_START:
        op.drop_index(f'ix_recording_{column}_start', table_name='recording')
    op.create_index('ix_recording_officer_no', 'recording', ['officer_no'])
    op.create_index('ix_recording_device_no', 'recording', ['device_no'])
