"""rounds, service-account tokens, quality-review projects

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 05:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_service', sa.Boolean(), server_default='0', nullable=False))
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='labels', nullable=False))
    with op.batch_alter_table('item', schema=None) as batch_op:
        batch_op.add_column(sa.Column('readers_required', sa.Integer(), nullable=True))
    with op.batch_alter_table('annotation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('quality_decision', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('quality_reason', sa.Text(), nullable=True))

    op.create_table('service_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('service_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_token_user_id'), ['user_id'], unique=False)

    op.create_table('reading_round',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('readers_per_item', sa.Integer(), nullable=False),
    sa.Column('gold_share', sa.Float(), nullable=False),
    sa.Column('deadline', sa.DateTime(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('webhook_url', sa.String(length=512), nullable=True),
    sa.Column('airflow_asset_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'name'),
    sa.UniqueConstraint('project_id', 'number')
    )
    with op.batch_alter_table('reading_round', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reading_round_project_id'), ['project_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('reading_round', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reading_round_project_id'))
    op.drop_table('reading_round')
    with op.batch_alter_table('service_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_token_user_id'))
    op.drop_table('service_token')
    with op.batch_alter_table('annotation', schema=None) as batch_op:
        batch_op.drop_column('quality_reason')
        batch_op.drop_column('quality_decision')
    with op.batch_alter_table('item', schema=None) as batch_op:
        batch_op.drop_column('readers_required')
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.drop_column('kind')
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_column('is_service')
