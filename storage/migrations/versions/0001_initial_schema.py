"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 04:33:39.145859
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('device',
    sa.Column('device_no', sa.String(), nullable=False),
    sa.Column('model', sa.String(), nullable=True),
    sa.Column('usb_serial', sa.String(), nullable=True),
    sa.Column('officer_no', sa.String(), nullable=True),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('first_seen', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('device_no')
    )
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_usb_serial'), ['usb_serial'], unique=False)

    op.create_table('dock_session',
    sa.Column('session_id', sa.String(), nullable=False),
    sa.Column('station_id', sa.String(), nullable=False),
    sa.Column('device_no', sa.String(), nullable=True),
    sa.Column('officer_no', sa.String(), nullable=True),
    sa.Column('source', sa.String(), nullable=False),
    sa.Column('started_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('files_seen', sa.Integer(), nullable=False),
    sa.Column('files_stored', sa.Integer(), nullable=False),
    sa.Column('files_already_held', sa.Integer(), nullable=False),
    sa.Column('files_failed', sa.Integer(), nullable=False),
    sa.Column('bytes_stored', sa.BigInteger(), nullable=False),
    sa.Column('summary_json', sa.String(), nullable=True),
    sa.Column('signature', sa.String(), nullable=True),
    sa.Column('key_id', sa.String(), nullable=True),
    sa.PrimaryKeyConstraint('session_id')
    )
    op.create_table('event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('subject', sa.String(), nullable=False),
    sa.Column('payload', sa.String(), nullable=False),
    sa.Column('prev_hash', sa.String(), nullable=False),
    sa.Column('hash', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('hash')
    )
    op.create_table('explanation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.String(), nullable=True),
    sa.Column('recording_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('rule', sa.String(), nullable=False),
    sa.Column('device_no', sa.String(), nullable=True),
    sa.Column('source_path', sa.String(), nullable=True),
    sa.Column('vault_path', sa.String(), nullable=True),
    sa.Column('occurred_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('error', sa.String(), nullable=False),
    sa.Column('action', sa.String(), nullable=False),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('text', sa.String(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('explanation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_explanation_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_explanation_recording_id'), ['recording_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_explanation_session_id'), ['session_id'], unique=False)

    op.create_table('officer',
    sa.Column('officer_no', sa.String(), nullable=False),
    sa.Column('name', sa.String(), nullable=True),
    sa.Column('unit_no', sa.String(), nullable=True),
    sa.Column('unit_name', sa.String(), nullable=True),
    sa.PrimaryKeyConstraint('officer_no')
    )
    op.create_table('recording',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.String(), nullable=False),
    sa.Column('station_id', sa.String(), nullable=False),
    sa.Column('agency', sa.String(), nullable=False),
    sa.Column('category', sa.String(), nullable=True),
    sa.Column('case_no', sa.String(), nullable=True),
    sa.Column('party', sa.String(), nullable=True),
    sa.Column('device_no', sa.String(), nullable=False),
    sa.Column('officer_no', sa.String(), nullable=False),
    sa.Column('officer_name', sa.String(), nullable=True),
    sa.Column('unit', sa.String(), nullable=True),
    sa.Column('source_path', sa.String(), nullable=False),
    sa.Column('source_size', sa.BigInteger(), nullable=False),
    sa.Column('source_mtime_ns', sa.BigInteger(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(), nullable=False),
    sa.Column('signature', sa.String(), nullable=False),
    sa.Column('key_id', sa.String(), nullable=False),
    sa.Column('record_version', sa.Integer(), nullable=False),
    sa.Column('recording_start', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recording_end', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('start_from', sa.String(), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('media_json', sa.String(), nullable=True),
    sa.Column('important', sa.Boolean(), nullable=False),
    sa.Column('ingested_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deadline', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('vault_path', sa.String(), nullable=False),
    sa.Column('state', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('vault_path')
    )
    with op.batch_alter_table('recording', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recording_case_no'), ['case_no'], unique=False)
        batch_op.create_index(batch_op.f('ix_recording_device_no'), ['device_no'], unique=False)
        batch_op.create_index(batch_op.f('ix_recording_ingested_at'), ['ingested_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_recording_officer_no'), ['officer_no'], unique=False)
        batch_op.create_index(batch_op.f('ix_recording_recording_start'), ['recording_start'], unique=False)
        batch_op.create_index(batch_op.f('ix_recording_session_id'), ['session_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_recording_sha256'), ['sha256'], unique=False)
        batch_op.create_index('ix_recording_source', ['device_no', 'source_path', 'source_size', 'source_mtime_ns'], unique=False)

    op.create_table('station',
    sa.Column('station_id', sa.String(), nullable=False),
    sa.Column('agency', sa.String(), nullable=False),
    sa.Column('key_id', sa.String(), nullable=False),
    sa.Column('public_key_pem', sa.String(), nullable=False),
    sa.Column('first_seen', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('station_id')
    )


def downgrade() -> None:
    op.drop_table('station')
    with op.batch_alter_table('recording', schema=None) as batch_op:
        batch_op.drop_index('ix_recording_source')
        batch_op.drop_index(batch_op.f('ix_recording_sha256'))
        batch_op.drop_index(batch_op.f('ix_recording_session_id'))
        batch_op.drop_index(batch_op.f('ix_recording_recording_start'))
        batch_op.drop_index(batch_op.f('ix_recording_officer_no'))
        batch_op.drop_index(batch_op.f('ix_recording_ingested_at'))
        batch_op.drop_index(batch_op.f('ix_recording_device_no'))
        batch_op.drop_index(batch_op.f('ix_recording_case_no'))

    op.drop_table('recording')
    op.drop_table('officer')
    with op.batch_alter_table('explanation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_explanation_session_id'))
        batch_op.drop_index(batch_op.f('ix_explanation_recording_id'))
        batch_op.drop_index(batch_op.f('ix_explanation_kind'))

    op.drop_table('explanation')
    op.drop_table('event')
    op.drop_table('dock_session')
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_usb_serial'))

    op.drop_table('device')
