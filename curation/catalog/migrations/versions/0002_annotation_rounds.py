"""annotation rounds: rounds, items, readings, consensus labels, reader reports, human quality reviews

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 06:05:20.426627
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('annotation_round',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('schema_name', sa.String(length=64), nullable=False),
    sa.Column('schema_version', sa.Integer(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('service_round_id', sa.Integer(), nullable=True),
    sa.Column('service_round_number', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('n_items', sa.Integer(), nullable=False),
    sa.Column('n_readings', sa.Integer(), nullable=False),
    sa.Column('n_readers', sa.Integer(), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project', 'name', name='uq_annotation_round_project_name')
    )
    op.create_table('reader_report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('reader', sa.String(length=64), nullable=False),
    sa.Column('n_readings', sa.Integer(), nullable=False),
    sa.Column('qc_flags', sa.JSON(), nullable=False),
    sa.Column('passes_qc', sa.Boolean(), nullable=False),
    sa.Column('reward', sa.Float(), nullable=False),
    sa.Column('feedback', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['round_id'], ['annotation_round.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('round_id', 'reader', name='uq_reader_report_round_reader')
    )
    with op.batch_alter_table('reader_report', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reader_report_round_id'), ['round_id'], unique=False)

    op.create_table('annotation_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('item_key', sa.String(length=128), nullable=False),
    sa.Column('service_item_id', sa.Integer(), nullable=True),
    sa.Column('is_gold', sa.Boolean(), nullable=False),
    sa.Column('gold_answer', sa.JSON(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['round_id'], ['annotation_round.id'], ),
    sa.ForeignKeyConstraint(['series_id'], ['series.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('round_id', 'item_key', name='uq_annotation_item_round_key')
    )
    with op.batch_alter_table('annotation_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_annotation_item_item_key'), ['item_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_annotation_item_round_id'), ['round_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_annotation_item_series_id'), ['series_id'], unique=False)

    op.create_table('quality_review',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('series_key', sa.String(length=128), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=True),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('reviewer', sa.String(length=64), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['round_id'], ['annotation_round.id'], ),
    sa.ForeignKeyConstraint(['series_id'], ['series.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('round_id', 'series_id', 'reviewer', name='uq_quality_review_round_series_reviewer')
    )
    with op.batch_alter_table('quality_review', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quality_review_round_id'), ['round_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_quality_review_series_id'), ['series_id'], unique=False)

    op.create_table('consensus_label',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('value', sa.Integer(), nullable=True),
    sa.Column('posterior', sa.Float(), nullable=True),
    sa.Column('n_readers', sa.Integer(), nullable=False),
    sa.Column('n_positive', sa.Integer(), nullable=True),
    sa.Column('x0', sa.Float(), nullable=True),
    sa.Column('y0', sa.Float(), nullable=True),
    sa.Column('x1', sa.Float(), nullable=True),
    sa.Column('y1', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['annotation_item.id'], ),
    sa.ForeignKeyConstraint(['round_id'], ['annotation_round.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('round_id', 'item_id', 'label', 'method', 'ordinal', name='uq_consensus_label')
    )
    with op.batch_alter_table('consensus_label', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consensus_label_item_id'), ['item_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consensus_label_round_id'), ['round_id'], unique=False)

    op.create_table('reading',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('record', sa.String(length=8), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=False),
    sa.Column('reader', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Integer(), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.Column('roi_kind', sa.String(length=16), nullable=True),
    sa.Column('instance', sa.Integer(), nullable=True),
    sa.Column('frame', sa.Integer(), nullable=True),
    sa.Column('x0', sa.Float(), nullable=True),
    sa.Column('y0', sa.Float(), nullable=True),
    sa.Column('x1', sa.Float(), nullable=True),
    sa.Column('y1', sa.Float(), nullable=True),
    sa.Column('points', sa.JSON(), nullable=True),
    sa.Column('mask_uri', sa.String(length=2048), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['annotation_item.id'], ),
    sa.ForeignKeyConstraint(['round_id'], ['annotation_round.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('round_id', 'task_id', 'record', 'label', 'ordinal', name='uq_reading_task_record')
    )
    with op.batch_alter_table('reading', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reading_item_id'), ['item_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reading_reader'), ['reader'], unique=False)
        batch_op.create_index('ix_reading_round_label', ['round_id', 'label'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('reading', schema=None) as batch_op:
        batch_op.drop_index('ix_reading_round_label')
        batch_op.drop_index(batch_op.f('ix_reading_reader'))
        batch_op.drop_index(batch_op.f('ix_reading_item_id'))

    op.drop_table('reading')
    with op.batch_alter_table('consensus_label', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consensus_label_round_id'))
        batch_op.drop_index(batch_op.f('ix_consensus_label_item_id'))

    op.drop_table('consensus_label')
    with op.batch_alter_table('quality_review', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quality_review_series_id'))
        batch_op.drop_index(batch_op.f('ix_quality_review_round_id'))

    op.drop_table('quality_review')
    with op.batch_alter_table('annotation_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_annotation_item_series_id'))
        batch_op.drop_index(batch_op.f('ix_annotation_item_round_id'))
        batch_op.drop_index(batch_op.f('ix_annotation_item_item_key'))

    op.drop_table('annotation_item')
    with op.batch_alter_table('reader_report', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reader_report_round_id'))

    op.drop_table('reader_report')
    op.drop_table('annotation_round')
