"""Stories across outlets: exact copies, the story index, and a story's representative article.

Existing articles keep their own stories; their index entries are built on the next poll (or by
`monitor stories rebuild`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("representative_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("story_vector", sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f("ix_articles_content_hash"), ["content_hash"], unique=False)
    op.create_index(
        "ix_articles_unindexed",
        "articles",
        ["id"],
        unique=False,
        sqlite_where=sa.text("story_vector IS NULL"),
        postgresql_where=sa.text("story_vector IS NULL"),
    )
    op.create_table(
        "article_copies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("guid", sa.String(length=512), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("canonical_url", sa.String(length=2048), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.id"], name=op.f("fk_article_copies_article_id_articles"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_article_copies_source_id_sources"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_article_copies")),
        sa.UniqueConstraint("canonical_url", name=op.f("uq_article_copies_canonical_url")),
        sa.UniqueConstraint("source_id", "guid", name=op.f("uq_article_copies_source_id_guid")),
    )
    op.create_index(op.f("ix_article_copies_article_id"), "article_copies", ["article_id"], unique=False)
    op.create_table(
        "story_keys",
        sa.Column("key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("article_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.id"], name=op.f("fk_story_keys_article_id_articles"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("key", "at", "article_id", name=op.f("pk_story_keys")),
    )
    op.create_index(op.f("ix_story_keys_article_id"), "story_keys", ["article_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_story_keys_article_id"), table_name="story_keys")
    op.drop_table("story_keys")
    op.drop_index(op.f("ix_article_copies_article_id"), table_name="article_copies")
    op.drop_table("article_copies")
    op.drop_index("ix_articles_unindexed", table_name="articles")
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_articles_content_hash"))
        batch_op.drop_column("story_vector")
        batch_op.drop_column("content_hash")
    with op.batch_alter_table("stories", schema=None) as batch_op:
        batch_op.drop_column("representative_id")
