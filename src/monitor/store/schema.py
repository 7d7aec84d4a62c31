"""SQLAlchemy 2 typed models. Alembic migrations in store/migrations must match them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with stable constraint names, so migrations agree across backends."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}


class Source(Base):
    """An outlet's feed, mirrored from feeds.yaml on every start."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    url: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20))
    language: Mapped[str | None] = mapped_column(String(20))
    countries: Mapped[list[str]] = mapped_column(JSON, default=list)
    interval_seconds: Mapped[int] = mapped_column(Integer)
    max_interval_seconds: Mapped[int] = mapped_column(Integer, server_default="21600")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class FetchState(Base):
    """Conditional-GET validators, schedule and health of one source."""

    __tablename__ = "fetch_state"

    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    next_poll_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_outcome: Mapped[str | None] = mapped_column(String(20))
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    poll_interval_seconds: Mapped[int | None] = mapped_column(Integer)  # learnt from the publishing rate
    moved_to: Mapped[str | None] = mapped_column(Text)  # where the feed now lives (repeated 301/308)
    redirect_target: Mapped[str | None] = mapped_column(Text)
    redirect_streak: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The worker polling the feed now, until when (store/leases.py); an expired lease is free to take.
    leased_by: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None]


class JobRun(Base):
    """Work done once per cluster per due time (a digest, maintenance): the row's insert is the claim."""

    __tablename__ = "job_runs"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(primary_key=True)
    worker: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime]


class FetchLog(Base):
    """One row per feed fetch: the outcome and what it yielded."""

    __tablename__ = "fetch_log"
    __table_args__ = (Index(None, "source_id", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    started_at: Mapped[datetime]
    url: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(20))
    status: Mapped[int | None] = mapped_column(Integer)
    elapsed_ms: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    new_items: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class Story(Base):
    """An event reported by one or more articles."""

    __tablename__ = "stories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime]  # when its first article was stored
    # The earliest article with its full text (no foreign key: articles already point here).
    representative_id: Mapped[int | None] = mapped_column(Integer)


class Article(Base):
    """One stored article. The unique constraints are the final word on duplicates."""

    __tablename__ = "articles"
    __table_args__ = (
        UniqueConstraint("source_id", "guid"),
        Index(None, "published_at"),
        Index(None, "story_id"),
        # The few articles not yet in the story index, found without reading the whole table.
        Index(
            "ix_articles_unindexed",
            "id",
            sqlite_where=text("story_vector IS NULL"),
            postgresql_where=text("story_vector IS NULL"),
        ),
        # Listings sort by publication time, else fetch time: newest first without reading every row.
        Index("ix_articles_when", text("coalesce(published_at, fetched_at)"), "id"),
        # The columns a search filters its matches on, read without the article's row (whose text SQLite
        # stores before its dates, and PostgreSQL fetches a page for): 1,000,000 articles, 12,000 matches
        # filtered by date in 18 ms instead of 50 on PostgreSQL.
        Index("ix_articles_filters", "id", "published_at", "fetched_at", "language", "source_id"),
        # The few not yet in the full-text index (see store/fulltext.py).
        Index(
            "ix_articles_unsearchable",
            "id",
            sqlite_where=text("NOT search_indexed"),
            postgresql_where=text("NOT search_indexed"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="RESTRICT"))
    guid: Mapped[str] = mapped_column(String(512))
    url: Mapped[str] = mapped_column(Text)
    canonical_url: Mapped[str] = mapped_column(String(2048), unique=True)
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(20))
    published_at: Mapped[datetime | None]
    fetched_at: Mapped[datetime]
    extraction: Mapped[str] = mapped_column(String(20))
    extraction_error: Mapped[str | None] = mapped_column(Text)
    story_id: Mapped[int | None] = mapped_column(ForeignKey("stories.id", ondelete="SET NULL"))
    # Fingerprint of the watchlist the tags were computed with; `monitor retag` updates the others.
    watchlist_version: Mapped[str | None] = mapped_column(String(32), index=True)
    # Hash of the normalised text: the same text under another URL is a copy of this article.
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    # The story matcher's weighted terms ({term: weight}); NULL until indexed (see store/stories.py).
    story_vector: Mapped[dict[str, float] | None] = mapped_column(JSON(none_as_null=True))
    # In the full-text index (store/fulltext.py), which lives outside the ORM: each backend has its own.
    search_indexed: Mapped[bool] = mapped_column(default=False, server_default=false())


class ArticleDay(Base):
    """The lowest and highest id of the articles dated each UTC day (publication, else fetch time).

    A date filter becomes an id range the full-text index can seek to (store/day_ranges.py). A trigger on
    articles keeps it (migration 0008); articles are never deleted nor re-dated, so a row only widens.
    """

    __tablename__ = "article_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    first_id: Mapped[int] = mapped_column(Integer)
    last_id: Mapped[int] = mapped_column(Integer)
    # Some article of the day is dated over 31 days after it was fetched (fulltext.FUTURE_LIMIT): its
    # month facet is not its own month's.
    ahead: Mapped[bool] = mapped_column(Boolean)


class ArticleCopy(Base):
    """The same text found under another URL (a print view, a mirror, a verbatim repost): linked, not stored."""

    __tablename__ = "article_copies"
    __table_args__ = (UniqueConstraint("source_id", "guid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="RESTRICT"))
    guid: Mapped[str] = mapped_column(String(512))
    url: Mapped[str] = mapped_column(Text)
    canonical_url: Mapped[str] = mapped_column(String(2048), unique=True)
    title: Mapped[str] = mapped_column(Text)
    fetched_at: Mapped[datetime]


class StoryKey(Base):
    """The story index: each article under its strongest terms, by time, so candidates are a range lookup."""

    __tablename__ = "story_keys"

    key: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True, autoincrement=False, index=True
    )


class Tag(Base):
    """A watchlist entry: a country (ISO code), topic or region."""

    __tablename__ = "tags"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))


class ArticleTag(Base):
    """A tag on an article, with how often and how prominently it is mentioned."""

    __tablename__ = "article_tags"
    __table_args__ = (Index(None, "tag_id", "article_id"),)

    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[str] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    snippet: Mapped[str | None] = mapped_column(Text)


class DigestRun(Base):
    """The ledger: one row per subscription and window. Pending until sent; sent once, with its Message-ID."""

    __tablename__ = "digest_runs"
    __table_args__ = (UniqueConstraint("subscription", "window_end"), Index(None, "status", "next_attempt_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription: Mapped[str] = mapped_column(String(100))
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20))  # pending | sending | sent
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(300))
    stories: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    failed_recipients: Mapped[dict[str, str] | None] = mapped_column(JSON(none_as_null=True))
    worker: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]


class DigestStory(Base):
    """A story a subscription has received: never sent to it again."""

    __tablename__ = "digest_stories"

    subscription: Mapped[str] = mapped_column(String(100), primary_key=True)
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("digest_runs.id", ondelete="CASCADE"), index=True)
