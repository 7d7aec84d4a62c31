"""Faster filtered search: the id range of each day's articles (a date filter becomes an id range for
the full-text index), an index of the columns a search filters its matches on, and on PostgreSQL each
document's date and language beside it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "article_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("first_id", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_article_days")),
    )
    if op.get_bind().dialect.name == "sqlite":  # times are kept as UTC text, "2026-11-26 08:00:00.000000"
        day = "substr(coalesce(published_at, fetched_at), 1, 10)"
    else:
        day = "CAST(coalesce(published_at, fetched_at) AT TIME ZONE 'UTC' AS date)"
    op.create_index(
        "ix_articles_filters", "articles", ["id", "published_at", "fetched_at", "language", "source_id"], unique=False
    )
    if op.get_bind().dialect.name == "postgresql":
        # The date and language of each article beside its document: a search filtered by them ranks and
        # counts without reading the article (1,000,000 articles: 15,000 matches, 105 -> 42 ms).
        op.add_column("article_search", sa.Column("dated_at", sa.DateTime(timezone=True), nullable=True))
        op.add_column("article_search", sa.Column("language", sa.String(length=20), nullable=True))
        op.execute(
            "UPDATE article_search SET dated_at = coalesce(a.published_at, a.fetched_at), language = a.language "
            "FROM articles a WHERE a.id = article_search.article_id"
        )
        op.alter_column("article_search", "dated_at", nullable=False)
    op.execute(
        f"INSERT INTO article_days (day, first_id, last_id) SELECT {day}, min(id), max(id) FROM articles GROUP BY 1"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_column("article_search", "language")
        op.drop_column("article_search", "dated_at")
    op.drop_index("ix_articles_filters", table_name="articles")
    op.drop_table("article_days")
