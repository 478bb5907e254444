"""rule history: who changed a rule, what and when (saves, renames, switches, deletes)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 14:30:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'rule_history',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('rule_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('version', sa.Integer(), nullable=True),
        sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('rule_history', schema=None) as batch_op:
        batch_op.create_index('ix_rule_history_rule_created', ['rule_name', 'created_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rule_history', schema=None) as batch_op:
        batch_op.drop_index('ix_rule_history_rule_created')
    op.drop_table('rule_history')
