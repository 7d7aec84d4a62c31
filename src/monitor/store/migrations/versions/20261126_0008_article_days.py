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


# Every stored article notes its id under its day, by trigger, so that no writer can forget it (a worker
# of an older version still running against an upgraded database, a bulk load). "ahead": some article of
# the day is dated more than 31 days after it was fetched, so its month facet is not its own month.
SQLITE_TRIGGER = """
CREATE TRIGGER article_days_on_insert AFTER INSERT ON articles BEGIN
    INSERT INTO article_days (day, first_id, last_id, ahead)
    VALUES (
        substr(coalesce(NEW.published_at, NEW.fetched_at), 1, 10), NEW.id, NEW.id,
        coalesce(NEW.published_at, NEW.fetched_at) > datetime(NEW.fetched_at, '+31 days')
    )
    ON CONFLICT (day) DO UPDATE SET
        first_id = min(first_id, excluded.first_id),
        last_id = max(last_id, excluded.last_id),
        ahead = ahead OR excluded.ahead;
END
"""
POSTGRESQL_TRIGGERS = (
    """
CREATE FUNCTION article_days_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO article_days (day, first_id, last_id, ahead)
    VALUES (
        CAST(coalesce(NEW.published_at, NEW.fetched_at) AT TIME ZONE 'UTC' AS date), NEW.id, NEW.id,
        coalesce(NEW.published_at, NEW.fetched_at) > NEW.fetched_at + interval '31 days'
    )
    ON CONFLICT (day) DO UPDATE SET
        first_id = least(article_days.first_id, excluded.first_id),
        last_id = greatest(article_days.last_id, excluded.last_id),
        ahead = article_days.ahead OR excluded.ahead;
    RETURN NULL;
END
$$
""",
    "CREATE TRIGGER article_days_on_insert AFTER INSERT ON articles FOR EACH ROW EXECUTE FUNCTION article_days_note()",
    # The document's date and language, from its article, when the writer does not give them.
    """
CREATE FUNCTION article_search_dates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT coalesce(published_at, fetched_at), language INTO NEW.dated_at, NEW.language
    FROM articles WHERE id = NEW.article_id;
    RETURN NEW;
END
$$
""",
    "CREATE TRIGGER article_search_dates BEFORE INSERT ON article_search FOR EACH ROW "
    "WHEN (NEW.dated_at IS NULL) EXECUTE FUNCTION article_search_dates()",
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "article_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("first_id", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("ahead", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_article_days")),
    )
    op.create_index(
        "ix_articles_filters", "articles", ["id", "published_at", "fetched_at", "language", "source_id"], unique=False
    )
    if sqlite:  # times are kept as UTC text, "2026-11-26 08:00:00.000000"
        when = "coalesce(published_at, fetched_at)"
        op.execute(
            f"INSERT INTO article_days (day, first_id, last_id, ahead) SELECT substr({when}, 1, 10), min(id), "
            f"max(id), max({when} > datetime(fetched_at, '+31 days')) FROM articles GROUP BY 1"
        )
        op.execute(SQLITE_TRIGGER)
        return
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
        "INSERT INTO article_days (day, first_id, last_id, ahead) "
        "SELECT CAST(coalesce(published_at, fetched_at) AT TIME ZONE 'UTC' AS date) AS day, min(id), max(id), "
        "bool_or(coalesce(published_at, fetched_at) > fetched_at + interval '31 days') FROM articles GROUP BY 1"
    )
    for statement in POSTGRESQL_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER article_search_dates ON article_search")
        op.execute("DROP FUNCTION article_search_dates()")
        op.execute("DROP TRIGGER article_days_on_insert ON articles")
        op.execute("DROP FUNCTION article_days_note()")
        op.drop_column("article_search", "language")
        op.drop_column("article_search", "dated_at")
    else:
        op.execute("DROP TRIGGER article_days_on_insert")
    op.drop_index("ix_articles_filters", table_name="articles")
    op.drop_table("article_days")
