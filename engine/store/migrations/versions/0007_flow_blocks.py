"""flow blocks: nested step rows (parent_position, item_index) and emitted events
(parent_id, emit_depth)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 14:40:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('step_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parent_position', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('item_index', sa.Integer(), nullable=True))
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parent_id', sqlmodel.sql.sqltypes.AutoString(length=40),
                                      nullable=True))
        batch_op.add_column(sa.Column('emit_depth', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.create_index(batch_op.f('ix_events_parent_id'), ['parent_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_parent_id'))
        batch_op.drop_column('emit_depth')
        batch_op.drop_column('parent_id')
    with op.batch_alter_table('step_runs', schema=None) as batch_op:
        batch_op.drop_column('item_index')
        batch_op.drop_column('parent_position')
