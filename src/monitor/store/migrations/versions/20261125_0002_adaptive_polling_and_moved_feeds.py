"""Adaptive polling (learnt interval, maximum interval), moved feeds, retry attempts in the fetch log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fetch_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="1", nullable=False))

    with op.batch_alter_table("fetch_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("poll_interval_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("moved_to", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("redirect_target", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("redirect_streak", sa.Integer(), server_default="0", nullable=False))

    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_interval_seconds", sa.Integer(), server_default="21600", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_column("max_interval_seconds")

    with op.batch_alter_table("fetch_state", schema=None) as batch_op:
        batch_op.drop_column("redirect_streak")
        batch_op.drop_column("redirect_target")
        batch_op.drop_column("moved_to")
        batch_op.drop_column("poll_interval_seconds")

    with op.batch_alter_table("fetch_log", schema=None) as batch_op:
        batch_op.drop_column("attempts")
