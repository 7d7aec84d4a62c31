"""The full-text index: SQLite FTS5 or a PostgreSQL tsvector with a GIN index, over stemmed words.

Both backends index the same thing, the stems of pipeline/stemming.py (Russian and English Snowball), so a
query finds the same articles on either and Russian inflections match on both. The index is written in the
article's own transaction (see repository.add_article); `articles.search_indexed` marks what is in it, so
an upgraded archive or `monitor db reindex` is filled in by index_missing() in batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Float,
    Integer,
    MetaData,
    Subquery,
    Table,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import TSQUERY, TSVECTOR
from sqlalchemy.orm import Session

from monitor.pipeline.stemming import search_terms
from monitor.store.query_syntax import Node, to_fts5, to_tsquery
from monitor.store.schema import Article
from monitor.store.stories import lock_stories

MAX_TEXT_CHARS = 100_000  # a longer text is rare; PostgreSQL keeps word positions up to 16,383 only
TITLE_WEIGHT = 4.0  # a title match counts this many body matches (FTS5 bm25 column weight)

# Word for word the condition of the partial index ix_articles_unsearchable, so that both backends use it.
_UNINDEXED = text("NOT articles.search_indexed")
# Outside the ORM's metadata: a virtual table (SQLite) or a table only one backend has.
_metadata = MetaData()
_fts = Table("article_fts", _metadata, Column("rowid", Integer), Column("title"), Column("body"))
_pg = Table("article_search", _metadata, Column("article_id", Integer), Column("document", TSVECTOR))


@dataclass(frozen=True, slots=True)
class Document:
    """An article as the index sees it: its stems, space separated."""

    title: str
    body: str


def document(title: str, text: str) -> Document:
    """The index's view of an article."""
    return Document(" ".join(search_terms(title)), " ".join(search_terms(text[:MAX_TEXT_CHARS])))


def add(session: Session, *, article_id: int, doc: Document) -> None:
    """Put an article in the index (once: the caller marks it search_indexed)."""
    if _is_sqlite(session):
        session.execute(_fts.insert().values(rowid=article_id, title=doc.title, body=doc.body))
    else:
        session.execute(
            text(
                "INSERT INTO article_search (article_id, document) VALUES (:id, CAST(:document AS tsvector)) "
                "ON CONFLICT (article_id) DO NOTHING"
            ),
            {"id": article_id, "document": tsvector(doc)},
        )


def tsvector(doc: Document) -> str:
    """The document as PostgreSQL tsvector text, built here rather than by to_tsvector(), which would split
    the terms again by its own rules: title terms weigh A, body terms B, and a gap between the two keeps a
    phrase from matching across them (as FTS5's separate columns do). Terms are letters and digits only."""
    positions: dict[str, list[str]] = {}
    title = doc.title.split()
    for offset, (words, weight) in enumerate(((title, "A"), (doc.body.split(), "B"))):
        start = 1 + offset * (len(title) + 1)
        for index, term in enumerate(words):
            # PostgreSQL keeps positions up to 16,383 and 256 per term; it drops the rest itself.
            positions.setdefault(term, []).append(f"{start + index}{weight}")
    return " ".join(f"'{term}':{','.join(marks[:256])}" for term, marks in positions.items())


def matching(session: Session, node: Node) -> Subquery:
    """The articles matching a parsed query, as a subquery of (article_id, rank); a higher rank is better."""
    rank: ColumnElement[float]
    if _is_sqlite(session):
        table: ColumnElement[Any] = literal_column("article_fts")
        rank = -func.bm25(table, TITLE_WEIGHT, 1.0)  # bm25() is lower for better matches
        statement = (
            select(_fts.c.rowid.label("article_id"), rank.label("rank"))
            .select_from(_fts)
            .where(table.op("MATCH")(bindparam("fts_query", to_fts5(node))))
        )
    else:
        query = cast(bindparam("ts_query", to_tsquery(node)), TSQUERY)
        # Normalisation 1 divides by 1 + log(length): a long text does not win by length alone.
        rank = func.ts_rank_cd(_pg.c.document, query, 1).cast(Float)
        statement = select(_pg.c.article_id, rank.label("rank")).where(_pg.c.document.op("@@")(query))
    return statement.subquery("matching")


def index_missing(session: Session, *, limit: int = 500) -> int:
    """Index up to limit articles that are not in the index yet, newest first; return how many."""
    # Two workers backfilling at once would index the same articles twice: take the lock that article
    # inserts take (stories.lock_stories), so one backfills while the other waits, then finds nothing.
    lock_stories(session)
    rows = session.execute(
        select(Article.id, Article.title, Article.text).where(_UNINDEXED).order_by(Article.id.desc()).limit(limit)
    ).all()
    for row in rows:
        add(session, article_id=row.id, doc=document(row.title, row.text))
    if rows:
        session.execute(update(Article).where(Article.id.in_([row.id for row in rows])).values(search_indexed=True))
    return len(rows)


def count_unindexed(session: Session) -> int:
    """Articles not in the full-text index yet."""
    return session.scalar(select(func.count()).select_from(Article).where(_UNINDEXED)) or 0


def clear(session: Session) -> None:
    """Empty the index, so that index_missing() rebuilds it (after the stemming changed, say)."""
    if _is_sqlite(session):
        session.execute(text("INSERT INTO article_fts (article_fts) VALUES ('delete-all')"))
    else:
        session.execute(text("TRUNCATE article_search"))
    session.execute(update(Article).values(search_indexed=False))


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"
