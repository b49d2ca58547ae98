"""dock facts and device registry

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 05:00:33.046148
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.add_column(sa.Column('registered_at', storage.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('retired_at', storage.models.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('dock_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('usb_serial', sa.String(), nullable=True))
        batch_op.add_column(sa.Column('model', sa.String(), nullable=True))
        batch_op.add_column(sa.Column('clock_drift_s', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('clock_set', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('battery_pct', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('storage_free', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('storage_total', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('device_log', sa.String(), nullable=True))
        batch_op.add_column(sa.Column('interrupted', sa.Boolean(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('dock_session', schema=None) as batch_op:
        batch_op.drop_column('interrupted')
        batch_op.drop_column('device_log')
        batch_op.drop_column('storage_total')
        batch_op.drop_column('storage_free')
        batch_op.drop_column('battery_pct')
        batch_op.drop_column('clock_set')
        batch_op.drop_column('clock_drift_s')
        batch_op.drop_column('model')
        batch_op.drop_column('usb_serial')

    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.drop_column('retired_at')
        batch_op.drop_column('registered_at')

