"""pending copies, clearing intents, device events; shared vault paths; session owner

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# Names for the constraints 0001 left unnamed, so SQLite's batch mode can drop them.
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _vault_path_unique() -> str:
    for found in sa.inspect(op.get_bind()).get_unique_constraints('recording'):
        if found['column_names'] == ['vault_path']:
            return found['name'] or 'uq_recording_vault_path'
    raise RuntimeError("recording.vault_path has no unique constraint to drop")


def upgrade() -> None:
    name = _vault_path_unique()
    with op.batch_alter_table('recording', naming_convention=_NAMING) as batch_op:
        batch_op.drop_constraint(name, type_='unique')
        batch_op.create_index(batch_op.f('ix_recording_vault_path'), ['vault_path'], unique=False)

    with op.batch_alter_table('dock_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(), nullable=True))
        batch_op.add_column(sa.Column('firmware', sa.String(), nullable=True))
        batch_op.create_index(batch_op.f('ix_dock_session_owner'), ['owner'], unique=False)

    op.create_table('pending_copy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(), nullable=False),
    sa.Column('session_id', sa.String(), nullable=False),
    sa.Column('tmp_path', sa.String(), nullable=False),
    sa.Column('vault_path', sa.String(), nullable=False),
    sa.Column('row_json', sa.String(), nullable=False),
    sa.Column('created_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('pending_copy', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pending_copy_owner'), ['owner'], unique=False)

    op.create_table('clearing',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.String(), nullable=False),
    sa.Column('device_no', sa.String(), nullable=True),
    sa.Column('intent_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('files_json', sa.String(), nullable=False),
    sa.Column('outcome', sa.String(), nullable=True),
    sa.Column('outcome_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('detail', sa.String(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('clearing', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clearing_session_id'), ['session_id'], unique=False)

    op.create_table('device_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_no', sa.String(), nullable=False),
    sa.Column('at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('detail', sa.String(), nullable=False),
    sa.Column('session_id', sa.String(), nullable=False),
    sa.Column('explanation_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('device_no', 'at', 'kind', 'detail', name='uq_device_event')
    )


def downgrade() -> None:
    op.drop_table('device_event')
    with op.batch_alter_table('clearing', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clearing_session_id'))
    op.drop_table('clearing')
    with op.batch_alter_table('pending_copy', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pending_copy_owner'))
    op.drop_table('pending_copy')
    with op.batch_alter_table('dock_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dock_session_owner'))
        batch_op.drop_column('owner')
        batch_op.drop_column('firmware')
    with op.batch_alter_table('recording', naming_convention=_NAMING) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recording_vault_path'))
        batch_op.create_unique_constraint('uq_recording_vault_path', ['vault_path'])
