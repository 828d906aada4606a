"""consensus masks: a STAPLE consensus row keeps its slice (instance, frame) and its mask

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 12:35:00.000000

Before, a mask label's consensus row held only the pixel count and bounding box, so a release could
not write the consensus mask as DICOM SEG. The mask is the run-length encoding the annotation service
uses for a reading's mask ({rows, columns, rle}, annotation/masks.py), one per item, label and slice.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('consensus_label', schema=None) as batch_op:
        batch_op.add_column(sa.Column('instance', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('frame', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('mask', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('consensus_label', schema=None) as batch_op:
        batch_op.drop_column('mask')
        batch_op.drop_column('frame')
        batch_op.drop_column('instance')
