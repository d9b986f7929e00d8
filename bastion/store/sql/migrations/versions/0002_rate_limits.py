"""rate limits; the user an interaction's login or consent belongs to

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 07:42:38.931919
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('user_id', sa.String(length=64), nullable=True))

    op.create_table('rate_limits',
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('window_start', sa.DateTime(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key_hash')
    )
    with op.batch_alter_table('rate_limits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rate_limits_window_start'), ['window_start'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rate_limits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rate_limits_window_start'))

    op.drop_table('rate_limits')
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.drop_column('user_id')

