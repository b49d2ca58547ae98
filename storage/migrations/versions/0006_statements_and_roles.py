"""statements on explanations (complete, sign, correct); officers' roles; the other
recording an explanation is about (the clip before a gap); declared duties (R2); the
recorders' custody and maintenance log, out of service, check-out (R13); closed cases
and their filing (R11); sidecar files attached to their recording

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'statement',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('explanation_id', sa.Integer(), nullable=False),
        sa.Column('corrects_id', sa.Integer(), nullable=True),
        sa.Column('reason', sa.String(), nullable=False),
        sa.Column('text', sa.String(), nullable=False),
        sa.Column('signers_json', sa.String(), nullable=False),
        sa.Column('made_at', storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['corrects_id'], ['statement.id']),
        sa.ForeignKeyConstraint(['explanation_id'], ['explanation.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_statement_explanation_id', 'statement', ['explanation_id'])
    with op.batch_alter_table('officer') as batch:
        batch.add_column(sa.Column('role', sa.String(), nullable=True))
    op.create_table(
        'duty',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('officer_no', sa.String(), nullable=False),
        sa.Column('starts_at', storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('ends_at', storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('returned_at', storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('reason', sa.String(), nullable=False),
        sa.Column('declared_at', storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('declared_by', sa.String(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_duty_officer_no', 'duty', ['officer_no'])
    op.create_table(
        'device_note',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('device_no', sa.String(), nullable=False),
        sa.Column('kind', sa.String(), nullable=False),
        sa.Column('note', sa.String(), nullable=False),
        sa.Column('officer_no', sa.String(), nullable=True),
        sa.Column('by', sa.String(), nullable=False),
        sa.Column('at', storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_device_note_device_no', 'device_note', ['device_no'])
    with op.batch_alter_table('device') as batch:
        batch.add_column(sa.Column('checked_out_to', sa.String(), nullable=True))
    op.create_table(
        'case_file',
        sa.Column('case_no', sa.String(), nullable=False),
        sa.Column('ended_at', storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('closed_at', storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('closed_by', sa.String(), nullable=False),
        sa.Column('filed_at', storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('filed_by', sa.String(), nullable=True),
        sa.Column('filed_note', sa.String(), nullable=True),
        sa.PrimaryKeyConstraint('case_no'),
    )
    with op.batch_alter_table('explanation') as batch:
        batch.add_column(sa.Column('related_recording_id', sa.Integer(), nullable=True))
    with op.batch_alter_table('recording') as batch:
        batch.add_column(sa.Column('sidecar', sa.Boolean(), server_default='0',
                                   nullable=False))
        batch.add_column(sa.Column('attached_to', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('recording') as batch:
        batch.drop_column('attached_to')
        batch.drop_column('sidecar')
    op.drop_table('case_file')
    with op.batch_alter_table('device') as batch:
        batch.drop_column('checked_out_to')
    op.drop_index('ix_device_note_device_no', table_name='device_note')
    op.drop_table('device_note')
    op.drop_index('ix_duty_officer_no', table_name='duty')
    op.drop_table('duty')
    with op.batch_alter_table('explanation') as batch:
        batch.drop_column('related_recording_id')
    with op.batch_alter_table('officer') as batch:
        batch.drop_column('role')
    op.drop_index('ix_statement_explanation_id', table_name='statement')
    op.drop_table('statement')
