"""Stories in the database: exact copies, the story index, and assigning each new article to a story.

The index (story_keys) holds every article under its strongest terms with its time, so the candidates of a
new article are a few range lookups bounded by the time window, whatever the size of the archive. The
vectors live on the articles; an article whose vector is NULL is not indexed yet (older databases, or after
`monitor stories rebuild`), and index_missing() fills those in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    Table,
    Text,
    Update,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from monitor.model import ArticleDraft, Extraction, StoryFeatures
from monitor.pipeline.dedupe import same_title
from monitor.pipeline.similarity import best_story
from monitor.store.db import insert_new, take_write_lock
from monitor.store.schema import Article, ArticleCopy, Story, StoryKey, UTCDateTime

DEFAULT_WINDOW = timedelta(days=7)
CANDIDATE_LIMIT = 40  # the articles sharing most index terms with the new one are compared in full
_LOCK_KEY = 0x6D6F6E73746F7279  # "monstory": PostgreSQL advisory lock serialising story assignment
_LOCKED_BY = "monitor.stories.locked_by"  # session.info: the transaction that holds the story lock

Features = Callable[[str, str], StoryFeatures]


def lock_stories(session: Session) -> None:
    """Serialise story assignment until this transaction ends.

    Two workers storing two copies of one report at once would otherwise each miss the other and start two
    stories. PostgreSQL: a transaction-level advisory lock. SQLite: a write, which takes the database's
    single write lock before anything is read.
    """
    nested = session.in_nested_transaction()  # a savepoint rolled back would take a lock taken in it along
    if not nested and session.info.get(_LOCKED_BY) is session.get_transaction() is not None:
        return  # taken earlier in this transaction: a batch of articles takes it once
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    else:
        take_write_lock(session)
    if not nested:
        session.info[_LOCKED_BY] = session.get_transaction()


def find_original(session: Session, *, fingerprint: str, title: str, canonical_url: str) -> int | None:
    """The stored article whose text this is (same fingerprint, same headline), if any: another article,
    not this very one stored before (same URL), which is no copy of itself."""
    rows = session.execute(_ORIGINALS, {"fingerprint": fingerprint, "canonical_url": canonical_url}).all()
    return next((row.id for row in rows if same_title(row.title, title)), None)


def add_copy(session: Session, *, draft: ArticleDraft, article_id: int) -> bool:
    """Link draft to the article it copies; False when this URL or GUID was already linked."""
    copy_id = insert_new(
        session,
        ArticleCopy,
        article_id=article_id,
        source_id=draft.source_id,
        guid=draft.guid,
        url=draft.url,
        canonical_url=draft.canonical_url,
        title=draft.title,
        fetched_at=draft.fetched_at,
    )
    return copy_id is not None


def assign_story(
    session: Session,
    *,
    article_id: int,
    features: StoryFeatures | None,
    at: datetime,
    seen_at: datetime,
    full_text: bool,
    window: timedelta = DEFAULT_WINDOW,
) -> int:
    """Put a just-stored article in the story of the most similar article within window of at (its
    publication time), or in a new story first seen at seen_at; index it; return the story id."""
    story_id = None
    if features is not None:
        story_id = best_story(features, at, _candidates(session, features=features, at=at, window=window))
    if story_id is None:
        story_id = session.execute(
            insert(Story).values(created_at=seen_at, representative_id=article_id).returning(Story.id)
        ).scalar_one()
    else:
        _joined(session, story_id=story_id, article_id=article_id, at=at, full_text=full_text)
    session.execute(_SET_STORY, {"article_id": article_id, "story_id": story_id})
    if features is not None:
        _insert_keys(session, article_id=article_id, features=features, at=at)  # its vector came with its row
    return story_id


def index_article(session: Session, *, article_id: int, features: StoryFeatures, at: datetime) -> None:
    """Store an article's vector and index keys (replacing any it had)."""
    session.execute(delete(StoryKey).where(StoryKey.article_id == article_id))
    session.execute(update(Article).where(Article.id == article_id).values(story_vector=features.vector))
    _insert_keys(session, article_id=article_id, features=features, at=at)


def _insert_keys(session: Session, *, article_id: int, features: StoryFeatures, at: datetime) -> None:
    if features.keys and features.comparable:
        rows = [{"key": key, "at": at, "article_id": article_id} for key in dict.fromkeys(features.keys)]
        session.execute(_INSERT_KEYS, rows)


def index_missing(session: Session, *, features: Features, limit: int = 500) -> int:
    """Index up to limit articles that have no vector yet; return how many were done."""
    when = func.coalesce(Article.published_at, Article.fetched_at)
    rows = session.execute(
        select(Article.id, Article.title, Article.text, when.label("at"))
        .where(Article.story_vector.is_(None))
        .order_by(Article.id.desc())  # newest first: the ones new articles are compared with
        .limit(limit)
    ).all()
    for row in rows:
        index_article(session, article_id=row.id, features=features(row.title, row.text), at=row.at)
    return len(rows)


def count_unindexed(session: Session) -> int:
    """Articles without a story vector."""
    return session.scalar(select(func.count()).select_from(Article).where(Article.story_vector.is_(None))) or 0


def clear_index(session: Session) -> None:
    """Forget every vector and index key, so index_missing() rebuilds them all."""
    session.execute(delete(StoryKey))
    session.execute(update(Article).values(story_vector=null()))


def _candidates(
    session: Session, *, features: StoryFeatures, at: datetime, window: timedelta
) -> Sequence[tuple[int, StoryFeatures, datetime]]:
    if not features.keys or not features.comparable:
        return []
    rows = session.execute(
        _CANDIDATES, {"keys": list(features.keys), "earliest": at - window, "latest": at + window}
    ).all()
    return [
        (row.story_id, StoryFeatures(vector=_vector(row.vector)), row.at)
        for row in rows
        if row.story_id is not None and row.vector
    ]


@lru_cache(maxsize=4096)
def _vector(stored: str) -> dict[str, float]:
    """A stored vector, decoded once: the same recent articles are candidates of one new article after
    another, and decoding was a third of the cost of finding a story. Shared: never modify one."""
    vector: dict[str, float] = json.loads(stored)
    return vector


def _joined(session: Session, *, story_id: int, article_id: int, at: datetime, full_text: bool) -> None:
    """Make the article its story's representative if it is the story's earliest full text."""
    session.execute(_TAKE_OVER, {"story_id": story_id, "article_id": article_id, "full": int(full_text), "at": at})


# Built once: composing a statement costs more than running it on this path (once per stored article).
def _candidates_statement() -> Select[tuple[int | None, str | None, datetime]]:
    """The articles sharing most index keys with a new one within the window: their story, vector, time.
    On the tables: rows, not ORM entities, are wanted, and the ORM's result handling cost a third of it."""
    keys, articles = _KEYS, _ARTICLES
    shared = (
        select(keys.c.article_id, func.max(keys.c.at).label("at"))
        .where(
            keys.c.key.in_(bindparam("keys", expanding=True)),
            keys.c.at >= bindparam("earliest", type_=UTCDateTime()),
            keys.c.at <= bindparam("latest", type_=UTCDateTime()),
        )
        .group_by(keys.c.article_id)
        .order_by(func.count().desc(), keys.c.article_id.desc())
        .limit(CANDIDATE_LIMIT)
        .subquery()
    )
    return select(articles.c.story_id, cast(articles.c.story_vector, Text).label("vector"), shared.c.at).join(
        shared, shared.c.article_id == articles.c.id
    )


def _take_over_statement() -> Update:
    """The new article becomes the representative unless the current one is a full text and the new one
    is not, or both are alike and the current one is not later."""
    # On the tables, not the mapped classes: an ORM UPDATE would also work out which loaded objects to
    # refresh, which cost more than the statement.
    stories, current = _STORIES, _ARTICLES.alias("current")
    current_full = case((current.c.extraction == Extraction.PAGE.value, 1), else_=0)
    full = bindparam("full", type_=Integer())
    keeps = (
        select(current.c.id)
        .where(
            current.c.id == stories.c.representative_id,
            or_(
                current_full > full,
                and_(
                    current_full == full,
                    func.coalesce(current.c.published_at, current.c.fetched_at) <= bindparam("at", type_=UTCDateTime()),
                ),
            ),
        )
        .exists()
    )
    return (
        update(stories)
        .where(stories.c.id == bindparam("story_id", type_=Integer()), ~keeps)
        .values(representative_id=bindparam("article_id", type_=Integer()))
    )


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


_ARTICLES, _STORIES, _KEYS = _table(Article), _table(Story), _table(StoryKey)
_ORIGINALS = (
    select(_ARTICLES.c.id, _ARTICLES.c.title)
    .where(
        _ARTICLES.c.content_hash == bindparam("fingerprint"),
        _ARTICLES.c.canonical_url != bindparam("canonical_url"),
    )
    .order_by(_ARTICLES.c.id)
    .limit(10)
)
_INSERT_KEYS = insert(_KEYS)  # an executemany of the table's own INSERT, not the ORM's bulk insert
_CANDIDATES = _candidates_statement()
_TAKE_OVER = _take_over_statement()
_SET_STORY = (
    update(_ARTICLES)
    .where(_ARTICLES.c.id == bindparam("article_id", type_=Integer()))
    .values(story_id=bindparam("story_id", type_=Integer()))
)
