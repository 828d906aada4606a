"""model suggestions per item (probabilities, heatmaps, boxes), blind-first projects, the assist
record of a reading and the unaided answer recorded before a reveal (issue 18)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 12:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.add_column(sa.Column('blind_first', sa.Boolean(), server_default='0', nullable=False))
    with op.batch_alter_table('annotation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assist', sa.JSON(), nullable=True))

    op.create_table('prediction',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('model_name', sa.String(length=64), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('probabilities', sa.JSON(), nullable=False),
    sa.Column('boxes', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['item_id'], ['item.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('item_id')
    )
    op.create_table('prediction_heatmap',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prediction_id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=False),
    sa.Column('instance_position', sa.Integer(), nullable=False),
    sa.Column('frame', sa.Integer(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('cols', sa.Integer(), nullable=False),
    sa.Column('png', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['prediction_id'], ['prediction.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('prediction_heatmap', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prediction_heatmap_prediction_id'), ['prediction_id'], unique=False)
    op.create_table('assist_reveal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('unaided', sa.JSON(), nullable=False),
    sa.Column('revealed_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('task_id')
    )


def downgrade() -> None:
    op.drop_table('assist_reveal')
    with op.batch_alter_table('prediction_heatmap', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prediction_heatmap_prediction_id'))
    op.drop_table('prediction_heatmap')
    op.drop_table('prediction')
    with op.batch_alter_table('annotation', schema=None) as batch_op:
        batch_op.drop_column('assist')
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.drop_column('blind_first')
