"""episode played_by: which worker and engine hold (or last held) an episode's current attempt

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: episodes of an older database (and pending ones) were played by nobody recorded.
    with op.batch_alter_table("episode_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("played_by", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("episode_requests", schema=None) as batch_op:
        batch_op.drop_column("played_by")
