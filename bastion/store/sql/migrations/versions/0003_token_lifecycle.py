"""token lifecycle

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 08:04:15.918798
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=255), nullable=True),
    sa.Column('user_id', sa.String(length=64), nullable=True),
    sa.Column('grant_id', sa.String(length=64), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_at'), ['at'], unique=False)

    op.create_table('refresh_tokens',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('grant_id', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('consumed_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('token_hash')
    )
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refresh_tokens_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_refresh_tokens_grant_id'), ['grant_id'], unique=False)

    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('token_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('audience', sa.JSON(), server_default='[]', nullable=False))
        batch_op.create_index('ix_access_tokens_token_hash', ['token_hash'], unique=True)

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resources', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('access_token_format', sa.String(length=10), server_default='jwt', nullable=False))
        batch_op.add_column(sa.Column('permissions', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('refresh_token_policy', sa.String(length=20), server_default='offline_access', nullable=False))

    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auth_time', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('acr', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('amr', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('claims', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('resources', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_grants_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_grants_expires_at'))
        batch_op.drop_column('expires_at')
        batch_op.drop_column('resources')
        batch_op.drop_column('claims')
        batch_op.drop_column('amr')
        batch_op.drop_column('acr')
        batch_op.drop_column('auth_time')

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('refresh_token_policy')
        batch_op.drop_column('permissions')
        batch_op.drop_column('access_token_format')
        batch_op.drop_column('resources')

    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        # WARNING: constraint name is None; this directive will fail as
        # rendered.  Add a name, or use a naming convention; see
        # https://alembic.sqlalchemy.org/en/latest/naming.html
        batch_op.drop_index('ix_access_tokens_token_hash')
        batch_op.drop_column('audience')
        batch_op.drop_column('token_hash')

    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refresh_tokens_grant_id'))
        batch_op.drop_index(batch_op.f('ix_refresh_tokens_expires_at'))

    op.drop_table('refresh_tokens')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_at'))

    op.drop_table('audit_events')

