"""Full-text search: an FTS5 table (SQLite) or a tsvector table with a GIN index (PostgreSQL).

Both hold stemmed words computed by the application (store/fulltext.py), so existing articles are
indexed on the next poll, by the service, or by `monitor db reindex`; `search_indexed` marks what is done.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("search_indexed", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index(
        "ix_articles_unsearchable",
        "articles",
        ["id"],
        unique=False,
        sqlite_where=sa.text("NOT search_indexed"),
        postgresql_where=sa.text("NOT search_indexed"),
    )
    op.create_index("ix_articles_when", "articles", [sa.text("coalesce(published_at, fetched_at)"), "id"])
    if op.get_bind().dialect.name == "sqlite":
        # Contentless: the terms are only needed to build the index; titles and texts live in articles.
        # "_" is part of a token, so that a facet (tag_tm, month_202611) stays one token.
        op.execute(
            "CREATE VIRTUAL TABLE article_fts USING fts5(title, body, facets, content='', "
            "tokenize=\"unicode61 remove_diacritics 0 tokenchars '_'\")"
        )
    else:
        op.create_table(
            "article_search",
            sa.Column("article_id", sa.Integer(), nullable=False),
            sa.Column("document", postgresql.TSVECTOR(), nullable=False),
            sa.ForeignKeyConstraint(
                ["article_id"], ["articles.id"], name=op.f("fk_article_search_article_id_articles"), ondelete="CASCADE"
            ),
            sa.PrimaryKeyConstraint("article_id", name=op.f("pk_article_search")),
        )
        op.create_index("ix_article_search_document", "article_search", ["document"], postgresql_using="gin")
        # A document averages 2.5 kB, past the 2 kB where PostgreSQL moves a value out of line: ranking or
        # checking a phrase then reads each candidate back from TOAST. Kept in the row, the 1M-article
        # benchmark's phrase request went from 347 to 185 ms, a common word's from 346 to 99 ms.
        op.execute("ALTER TABLE article_search SET (toast_tuple_target = 8160)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE article_fts")
    else:
        op.drop_table("article_search")
    op.drop_index("ix_articles_unsearchable", table_name="articles")
    op.drop_index("ix_articles_when", table_name="articles")
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.drop_column("search_indexed")
