"""annotation revisions: submissions a reader replaced after reopening the case

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 12:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('annotation_revision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('schema_version_id', sa.Integer(), nullable=True),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('rois', sa.JSON(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('quality_decision', sa.String(length=16), nullable=True),
    sa.Column('quality_reason', sa.Text(), nullable=True),
    sa.Column('submitted_at', sa.DateTime(), nullable=True),
    sa.Column('replaced_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['schema_version_id'], ['schema_version.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('annotation_revision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_annotation_revision_task_id'), ['task_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('annotation_revision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_annotation_revision_task_id'))
    op.drop_table('annotation_revision')
