"""the assist record of a replaced submission: a reopened reading keeps what the model showed
and what the reader did with it (issue 17 follow-up to issue 18's annotation.assist)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 12:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('annotation_revision', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assist', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('annotation_revision', schema=None) as batch_op:
        batch_op.drop_column('assist')
