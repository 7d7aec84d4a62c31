"""Watchlist version per article, so `monitor retag` knows which articles are stale and can resume.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("watchlist_version", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_articles_watchlist_version"), ["watchlist_version"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_articles_watchlist_version"))
        batch_op.drop_column("watchlist_version")
