"""the recorder clock's offset applied to a recording's times and to its event log;
what the recorder said when asked again after its dock (its readiness for a shift)

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

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('recording') as batch:
        batch.add_column(sa.Column('clock_offset_s', sa.Integer(), nullable=True))
    with op.batch_alter_table('device_event') as batch:
        batch.add_column(sa.Column('clock_offset_s', sa.Integer(), nullable=True))
    with op.batch_alter_table('dock_session') as batch:
        batch.add_column(sa.Column('ready_json', sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dock_session') as batch:
        batch.drop_column('ready_json')
    with op.batch_alter_table('device_event') as batch:
        batch.drop_column('clock_offset_s')
    with op.batch_alter_table('recording') as batch:
        batch.drop_column('clock_offset_s')
