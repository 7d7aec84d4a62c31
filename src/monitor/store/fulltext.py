"""The full-text index: SQLite FTS5 or a PostgreSQL tsvector with a GIN index, over stemmed words.

Both backends index the same thing, the terms of pipeline/stemming.py (Russian and English Snowball), so a
query finds the same articles on either and Russian inflections match on both. The index is written in the
article's own transaction (see repository.add_article); `articles.search_indexed` marks what is in it, so
an upgraded archive or `monitor db reindex` is filled in by index_missing() in batches.

Beside the words, each article is indexed under facets: its tags and the month it was published (tag_tm,
month_202611; no word of a text contains "_"). A filtered query asks the index for the facets too, so that
the index intersects them with the words and ranks only what is left: a common word in a fifth of the
archive, filtered to one country and a few months, ranks a few thousand articles instead of two hundred
thousand. Tag facets are exact (they are written with the tags); the exact date filter still applies in
SQL. Intersecting costs time in proportion to the facets' own size, so a facet that narrows little is not
asked for: no language facet (a language is half the archive). Dates narrow as each backend does best (see
matching): FTS5 seeks to an id range, PostgreSQL asks for month facets when the range holds a small part
of the archive (measured on a 1,000,000-article archive, bench/bench_search.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Float,
    Integer,
    MetaData,
    String,
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

from monitor.model import Document
from monitor.pipeline.stemming import search_terms
from monitor.store.day_ranges import AHEAD_DAYS, IdRange, id_range, span
from monitor.store.query_syntax import Node, rank_tsquery, to_fts5, to_tsquery
from monitor.store.schema import Article, ArticleTag, UTCDateTime
from monitor.store.stories import lock_stories

MAX_TEXT_CHARS = 100_000  # a longer text is rare; PostgreSQL keeps word positions up to 16,383 only
TITLE_WEIGHT = 4.0  # a title match counts this many body matches (FTS5 bm25 column weight)
# An article's month facet is its publication month, but never more than this after it was fetched (a
# date far ahead is a feed's mistake), so that the months of an open "since" filter end this far past today.
# Only an article dated over a month ahead of its fetch, filtered "since" well after that fetch, is missed.
FUTURE_LIMIT = timedelta(days=AHEAD_DAYS)
MONTHS_SHARE = 0.4  # PostgreSQL: a date range holding more of the archive is left to the exact filter
MONTH_FACETS = 36  # nor are more months asked for than this

# Word for word the condition of the partial index ix_articles_unsearchable, so that both backends use it.
_UNINDEXED = text("NOT articles.search_indexed")
_NOT_FACET = re.compile(r"[^0-9a-z]")
# Outside the ORM's metadata: a virtual table (SQLite) or a table only one backend has.
_metadata = MetaData()
_fts = Table("article_fts", _metadata, Column("rowid", Integer), Column("title"), Column("body"), Column("facets"))
_FTS_INSERT = _fts.insert()  # composed once: values come as parameters
_pg = Table(
    "article_search",
    _metadata,
    Column("article_id", Integer),
    Column("document", TSVECTOR),
    Column("dated_at", UTCDateTime()),
    Column("language", String(20)),
)


@dataclass(frozen=True, slots=True)
class Facets:
    """What a query's filters ask of the facets: at least one facet of each group."""

    groups: tuple[tuple[str, ...], ...] = ()


def document(
    title: str,
    text: str,
    *,
    tags: Iterable[str] = (),
    when: datetime | None = None,
    fetched_at: datetime | None = None,
) -> Document:
    """The index's view of an article."""
    return Document(
        " ".join(search_terms(title)),
        " ".join(search_terms(text[:MAX_TEXT_CHARS])),
        facets_of(tags=tags, when=when, fetched_at=fetched_at),
    )


def facets_of(*, tags: Iterable[str], when: datetime | None, fetched_at: datetime | None) -> str:
    """An article's facets, space separated, always in the same order (SQLite takes a row out of the index
    by being told its tokens again, in order)."""
    facets = sorted({tag_facet(tag) for tag in tags})
    if when is not None:
        latest = (fetched_at or when) + FUTURE_LIMIT
        facets.append(month_facet(min(_utc(when), _utc(latest))))
    return " ".join(facets)


def tag_facet(tag_id: str) -> str:
    """The facet of a tag."""
    return "tag_" + _NOT_FACET.sub("_", tag_id.lower())


def month_facet(when: datetime) -> str:
    """The facet of the (UTC) month of a time."""
    return f"month_{_utc(when):%Y%m}"


def query_facets(
    *,
    tag_groups: Sequence[Sequence[str]] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
) -> Facets:
    """The facets a filtered query asks the index for: one of each group of tags, and one of the months
    from since to until when they are few."""
    groups = [tuple(tag_facet(tag) for tag in group) for group in tag_groups if group]
    if since is not None:
        last = _utc(until) if until is not None else _utc(now or datetime.now(UTC)) + FUTURE_LIMIT
        months = _months(_utc(since), last)
        if months and len(months) <= MONTH_FACETS:
            groups.append(months)
    return Facets(tuple(groups))


def add(session: Session, *, article_id: int, doc: Document) -> None:
    """Put an article in the index (once: the caller marks it search_indexed)."""
    if _is_sqlite(session):
        session.execute(_FTS_INSERT, {"rowid": article_id, "title": doc.title, "body": doc.body, "facets": doc.facets})
    else:
        # A trigger copies the article's date and language beside it (migration 0008), so that a search
        # filtered by them need not read the article (see matching).
        session.execute(
            text(
                "INSERT INTO article_search (article_id, document) VALUES (:id, CAST(:document AS tsvector)) "
                "ON CONFLICT (article_id) DO NOTHING"
            ),
            {"id": article_id, "document": tsvector(doc)},
        )


def replace(session: Session, *, article_id: int, old: Document, new: Document) -> None:
    """Re-index an indexed article (its tags changed). FTS5 keeps no copy of a contentless row, so SQLite
    is told the old document to take out; old must be what was indexed (the same text, tags and stemmer)."""
    if _is_sqlite(session):
        session.execute(
            text(
                "INSERT INTO article_fts (article_fts, rowid, title, body, facets) "
                "VALUES ('delete', :id, :title, :body, :facets)"
            ),
            {"id": article_id, "title": old.title, "body": old.body, "facets": old.facets},
        )
        add(session, article_id=article_id, doc=new)
    else:
        session.execute(
            text("UPDATE article_search SET document = CAST(:document AS tsvector) WHERE article_id = :id"),
            {"id": article_id, "document": tsvector(new)},
        )


def tsvector(doc: Document) -> str:
    """The document as PostgreSQL tsvector text, built here rather than by to_tsvector(), which would split
    the terms again by its own rules: title terms weigh A, body terms B, and a gap between the two keeps a
    phrase from matching across them (as FTS5's separate columns do). Terms are letters and digits only;
    facets have no position, so they never take part in a phrase or the rank."""
    positions: dict[str, list[str]] = {}
    title = doc.title.split()
    for offset, (words, weight) in enumerate(((title, "A"), (doc.body.split(), "B"))):
        start = 1 + offset * (len(title) + 1)
        for index, term in enumerate(words):
            # PostgreSQL keeps positions up to 16,383 and 256 per term; it drops the rest itself.
            positions.setdefault(term, []).append(f"{start + index}{weight}")
    terms = [f"'{term}':{','.join(marks[:256])}" for term, marks in positions.items()]
    return " ".join(terms + [f"'{facet}'" for facet in doc.facets.split()])


@dataclass(frozen=True, slots=True)
class Matches:
    """What matching() found: a subquery of (article_id[, dated_at][, rank]), and which filters it
    applied exactly; dated_at (PostgreSQL) is the article's publication, else fetch, time."""

    subquery: Subquery
    exact: bool = False  # the dates and languages asked for were applied exactly


def matching(
    session: Session,
    node: Node,
    *,
    tag_groups: Sequence[Sequence[str]] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    languages: Sequence[str] = (),
    ranked: bool = True,
) -> Matches:
    """The articles matching a parsed query: article_ids, with their rank when ranked (ranking reads each
    match's document); a higher rank is better, and only the words count towards it. The index narrows the
    matches itself by what it can: one tag of each group (facets, exact), and the dates and languages,
    exactly or roughly as Matches says (the caller filters exactly what was not).

    The dates narrow each backend its own way (1,000,000 articles, bench/bench_search.py). FTS5 seeks in
    its doclists to an id range (store/day_ranges.py): a common word, one country, six months, 12,459
    candidates counted in 3 ms instead of 49,880 in 11. PostgreSQL would AND the GIN bitmap with one of the
    primary key over the range, which costs as much as it saves (17 ms for six months); month facets
    inside the GIN query cost nothing extra (21 ms for the same 12,590 candidates), and each document's
    date and language beside it filter exactly without reading the article.
    """
    rank: ColumnElement[float]
    if _is_sqlite(session):
        table: ColumnElement[Any] = literal_column("article_fts")
        expression = to_fts5(node)
        for group in query_facets(tag_groups=tag_groups).groups:
            expression += " AND facets : (" + " OR ".join(f'"{facet}"' for facet in group) + ")"
        rank = -func.bm25(table, TITLE_WEIGHT, 1.0, 0.0)  # bm25() is lower for better matches
        ids = id_range(session, since=since, until=until)
        statement = (
            select(_fts.c.rowid.label("article_id"))
            .select_from(_fts)
            .where(table.op("MATCH")(bindparam("fts_query", expression)), *_within(_fts.c.rowid, ids))
        )
        if ranked:
            statement = statement.add_columns(rank.label("rank"))
        return Matches(statement.subquery("matching"))
    words = to_tsquery(node)
    # The months' facets narrow a common word a lot and cost little, but their union costs in proportion
    # to the articles in them: "water" and one country over 7 months of a 2-year archive 31 ms (none:
    # 184), over 13 months 134, over 25 months 322.
    # An article dated over FUTURE_LIMIT after its fetch is filed under an earlier month: where the range
    # holds one, only the exact filter can find it.
    dated = since is not None or until is not None
    range_ = span(session, since=since, until=until) if dated else None
    if range_ is not None and range_.share <= MONTHS_SHARE and not range_.ahead:
        facets = query_facets(tag_groups=tag_groups, since=since, until=until)
    else:
        facets = query_facets(tag_groups=tag_groups)
    query = words + "".join(" & (" + " | ".join(f"'{f}'" for f in group) + ")" for group in facets.groups)
    conditions: list[ColumnElement[bool]] = [_pg.c.document.op("@@")(cast(bindparam("ts_query", query), TSQUERY))]
    if since is not None:
        conditions.append(_pg.c.dated_at >= since)
    if until is not None:
        conditions.append(_pg.c.dated_at < until)
    if languages:
        conditions.append(_pg.c.language.in_(languages))
    statement = select(_pg.c.article_id, _pg.c.dated_at).where(*conditions)
    if ranked:
        # ts_rank counts the wanted terms, a title's (weight A) TITLE_WEIGHT times a text's (B), as bm25's
        # column weights do in FTS5; normalisation 1 divides by 1 + log(length), so a long text does not
        # win by length alone. Half the cost of ts_rank_cd's cover density (20,000 matches: 18 ms, not 47).
        weights: ColumnElement[Any] = literal_column(f"'{{0, 0, {1 / TITLE_WEIGHT}, 1}}'::float4[]")
        terms = cast(bindparam("ts_rank_terms", rank_tsquery(node)), TSQUERY)
        rank = func.ts_rank(weights, _pg.c.document, terms, 1).cast(Float)
        # OFFSET 0 keeps the planner from merging this into the outer query, which would carry every
        # candidate's document (2.5 kB) up to the sort and through its parallel workers' queues and rank
        # it there (1,000,000 articles, a common word in one country: 266 ms, instead of 70 with it).
        statement = statement.add_columns(rank.label("rank")).offset(0)
    return Matches(statement.subquery("matching"), exact=True)


def _within(column: ColumnElement[int], ids: IdRange) -> list[ColumnElement[bool]]:
    bounds = []
    if ids.low is not None:
        bounds.append(column >= ids.low)
    if ids.high is not None:
        bounds.append(column <= ids.high)
    return bounds


def index_missing(session: Session, *, limit: int = 500) -> int:
    """Index up to limit articles that are not in the index yet, newest first; return how many."""
    # Two workers backfilling at once would index the same articles twice: take the lock that article
    # inserts take (stories.lock_stories), so one backfills while the other waits, then finds nothing.
    lock_stories(session)
    rows = session.execute(
        select(Article.id, Article.title, Article.text, Article.published_at, Article.fetched_at)
        .where(_UNINDEXED)
        .order_by(Article.id.desc())
        .limit(limit)
    ).all()
    tags = article_tags(session, [row.id for row in rows])
    for row in rows:
        doc = document(
            row.title,
            row.text,
            tags=tags.get(row.id, ()),
            when=row.published_at or row.fetched_at,
            fetched_at=row.fetched_at,
        )
        add(session, article_id=row.id, doc=doc)
    if rows:
        session.execute(update(Article).where(Article.id.in_([row.id for row in rows])).values(search_indexed=True))
    return len(rows)


def article_tags(session: Session, article_ids: Sequence[int]) -> dict[int, list[str]]:
    """The tag ids of each article."""
    tags: dict[int, list[str]] = {}
    if article_ids:
        for article_id, tag_id in session.execute(
            select(ArticleTag.article_id, ArticleTag.tag_id).where(ArticleTag.article_id.in_(article_ids))
        ):
            tags.setdefault(article_id, []).append(tag_id)
    return tags


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


def _months(first: datetime, last: datetime) -> tuple[str, ...]:
    months: list[str] = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month) and len(months) <= MONTH_FACETS:
        months.append(f"month_{year:04d}{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return tuple(months)


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"
