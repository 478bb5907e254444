"""rejected and inspected requests: refused webhooks (bounded, expiring) and what the
built-in request inspector received

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 14:20:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AutoString = sqlmodel.sql.sqltypes.AutoString
UTCDateTime = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        'rejected_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('source', AutoString(length=64), nullable=False),
        sa.Column('received_at', UTCDateTime(), nullable=False),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.Column('code', AutoString(length=64), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('method', AutoString(length=16), nullable=False),
        sa.Column('content_type', AutoString(length=255), nullable=False),
        sa.Column('headers', sa.JSON(), nullable=False),
        sa.Column('query', sa.JSON(), nullable=False),
        sa.Column('body_excerpt', sa.Text(), nullable=False),
        sa.Column('body_size', sa.Integer(), nullable=False),
        sa.Column('remote_addr', AutoString(length=64), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('rejected_requests', schema=None) as batch_op:
        batch_op.create_index('ix_rejected_source_received', ['source', 'received_at'])
        batch_op.create_index(batch_op.f('ix_rejected_requests_received_at'), ['received_at'])
    op.create_table(
        'inspected_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', AutoString(length=64), nullable=False),
        sa.Column('received_at', UTCDateTime(), nullable=False),
        sa.Column('method', AutoString(length=16), nullable=False),
        sa.Column('content_type', AutoString(length=255), nullable=False),
        sa.Column('headers', sa.JSON(), nullable=False),
        sa.Column('query', sa.JSON(), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('body_size', sa.Integer(), nullable=False),
        sa.Column('remote_addr', AutoString(length=64), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('inspected_requests', schema=None) as batch_op:
        batch_op.create_index('ix_inspected_name_id', ['name', 'id'])


def downgrade() -> None:
    with op.batch_alter_table('inspected_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_inspected_name_id')
    op.drop_table('inspected_requests')
    with op.batch_alter_table('rejected_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rejected_requests_received_at'))
        batch_op.drop_index('ix_rejected_source_received')
    op.drop_table('rejected_requests')
