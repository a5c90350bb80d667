"""league roles: the supporting roles (reporter, grader, diagnoser) a league runs on its episodes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 22:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The server default fills existing rows (every league of a 0001 database: no roles enabled).
    with op.batch_alter_table("leagues", schema=None) as batch_op:
        batch_op.add_column(sa.Column("roles", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))


def downgrade() -> None:
    with op.batch_alter_table("leagues", schema=None) as batch_op:
        batch_op.drop_column("roles")
