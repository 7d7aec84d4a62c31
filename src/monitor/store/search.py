"""Reading the archive back: filtered listings and single articles as ArticleView."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, Subquery, and_, distinct, func, or_, select, tuple_
from sqlalchemy.orm import Session

from monitor.errors import NotFoundError
from monitor.model import ArticleView, StoryMember, StoryView
from monitor.store import fulltext
from monitor.store.query_syntax import Node, Term, parse_query, wanted_terms
from monitor.store.schema import Article, ArticleCopy, ArticleTag, DigestStory, Source, Story, Tag
from monitor.store.snippets import around_match, lead

_S = TypeVar("_S", bound="Select[*tuple[Any, ...]]")  # a string: SQLAlchemy 2.0 cannot subscript it so


class Sort(StrEnum):
    """The order of a listing; by default relevance when there is query text, else newest."""

    RELEVANCE = "relevance"
    NEWEST = "newest"
    OLDEST = "oldest"


@dataclass(frozen=True, slots=True)
class ArticleQuery:
    """Filters for a listing; values within one filter are ORed, filters are ANDed."""

    text: str | None = None  # the query language of store/query_syntax.py
    sources: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    story: int | None = None
    languages: tuple[str, ...] = ()
    min_score: float = 0.0  # with tags or countries: a matching tag must score at least this
    fetched_since: datetime | None = None  # when the article was stored
    fetched_until: datetime | None = None
    not_sent_to: str | None = None  # leave out the stories this digest subscription has received
    sort: Sort | None = None
    # Keyset paging in date order (newest or oldest): only the articles after this (time, id). Unlike an
    # offset, it neither repeats nor skips an article when others are stored between two pages.
    after: tuple[datetime, int] | None = None
    limit: int | None = 20
    offset: int = 0


def search_articles(session: Session, *, query: ArticleQuery) -> list[ArticleView]:
    """Articles matching query in its order (dates are publication times, else fetch times).

    QuerySyntaxError when the query text cannot be parsed.
    """
    return _search(session, query, with_total=False)[0]


def _search(session: Session, query: ArticleQuery, *, with_total: bool) -> tuple[list[ArticleView], int | None]:
    """The page, and with_total the total too where one statement gives it for little more: in relevance
    order (ranking reads every match anyway), or in date order when the index answered every filter.

    The page's ids come first, ranked and filtered without carrying the articles' texts through the sort,
    then those 20 articles (1,000,000 articles: a common word's page, 206 -> 25 ms on SQLite).
    """
    when = func.coalesce(Article.published_at, Article.fetched_at)
    sort = query.sort or (Sort.RELEVANCE if query.text else Sort.NEWEST)
    if query.after is not None and sort is Sort.RELEVANCE:
        raise ValueError("keyset paging (after) needs a date order")
    terms: tuple[Term, ...] = ()
    hits, rest = None, query
    if query.text:
        node = parse_query(query.text)
        terms = wanted_terms(node)
        hits, rest = _matching(session, query, node, ranked=sort is Sort.RELEVANCE)
    if hits is not None and _unfiltered(rest) and (sort is Sort.RELEVANCE or "dated_at" in hits.c):
        # The index answered every filter itself (PostgreSQL): page from its matches alone, dated by the
        # date kept beside each document (a common word over two months, newest first: one pass over the
        # matches instead of two).
        key_id: ColumnElement[int] = hits.c.article_id
        key_when: ColumnElement[datetime] = hits.c.dated_at if "dated_at" in hits.c else when
        statement = select(key_id.label("id"))
        counted = with_total
    else:
        statement = select(Article.id).join(Source)
        if hits is not None:
            statement = statement.join(hits, hits.c.article_id == Article.id)
        statement = _filtered(session, statement, rest, when)
        key_id, key_when = Article.id.expression, when
        # In date order the page reads 20 rows by index, where a window would read every match first.
        counted = with_total and hits is not None and sort is Sort.RELEVANCE
    if counted:
        statement = statement.add_columns(func.count().over().label("total"))
    if query.after is not None:
        position, after = tuple_(key_when, key_id), tuple_(*query.after)
        statement = statement.where(position > after if sort is Sort.OLDEST else position < after)
    if hits is not None and sort is Sort.RELEVANCE:
        # Equal ranks newest stored first: the id, not the date, which SQLite would read from behind the
        # text of each match (1,000,000 articles: 11 ms per 12,000 matches).
        statement = statement.order_by(hits.c.rank.desc(), key_id.desc())
    elif sort is Sort.OLDEST:
        statement = statement.order_by(key_when, key_id)
    else:
        statement = statement.order_by(key_when.desc(), key_id.desc())
    statement = statement.offset(query.offset)
    if query.limit:
        statement = statement.limit(query.limit)
    page = session.execute(statement).all()
    total = page[0].total if counted and page else None
    ids = [row.id for row in page]
    found = {
        article.id: (article, source)
        for article, source in session.execute(select(Article, Source.name).join(Source).where(Article.id.in_(ids)))
    }
    return _views(session, [found[article_id] for article_id in ids], with_text=False, terms=terms), total


def search_page(session: Session, *, query: ArticleQuery) -> tuple[list[ArticleView], int]:
    """A page of search_articles and how many articles match in all.

    One statement answers both where ranking or the index reads every match anyway (see _search; 1M
    articles, PostgreSQL: p95 291 -> 90 ms for a word, a country and a date); otherwise the page reads its
    20 rows by index and count_articles counts.
    """
    views, total = _search(session, query, with_total=True)
    if total is None:  # not counted with the page, or a page past the end
        total = count_articles(session, query=query)
    return views, total


def count_articles(session: Session, *, query: ArticleQuery) -> int:
    """How many articles match query (all pages)."""
    when = func.coalesce(Article.published_at, Article.fetched_at)
    statement = select(Article.id).join(Source)
    rest = query
    if query.text:
        hits, rest = _matching(session, query, parse_query(query.text), ranked=False)
        if _unfiltered(rest):  # the index filtered everything itself (PostgreSQL)
            return session.scalar(select(func.count()).select_from(hits)) or 0
        statement = statement.where(Article.id.in_(select(hits.c.article_id)))
    matching = _filtered(session, statement, rest, when).subquery()
    return session.scalar(select(func.count()).select_from(matching)) or 0


def get_article(session: Session, *, article_id: int) -> ArticleView:
    """One article with its text, tags, story and the story's other reports; NotFoundError when there is none."""
    row = session.execute(select(Article, Source.name).join(Source).where(Article.id == article_id)).first()
    if row is None:
        raise NotFoundError(f"no article with id {article_id} (list some with `monitor search`)")
    view = _views(session, [row], with_text=True)[0]
    return replace(view, members=_members(session, article_id=article_id, story_id=view.story_id))


def count_stories(session: Session, *, query: ArticleQuery) -> int:
    """How many stories have at least one article matching query."""
    when = func.coalesce(Article.published_at, Article.fetched_at)
    matching = _filtered(session, select(Article.story_id).join(Source), query, when).subquery()
    return session.scalar(select(func.count(distinct(matching.c.story_id)))) or 0


def search_stories(session: Session, *, query: ArticleQuery) -> list[StoryView]:
    """Stories with at least one article matching query, the most recently reported first."""
    when = func.coalesce(Article.published_at, Article.fetched_at)
    matching = _filtered(session, select(Article.story_id).join(Source), query, when)
    matching = matching.where(Article.story_id.is_not(None))
    latest = (
        select(Article.story_id, func.max(when).label("latest"), func.count().label("articles"))
        .where(Article.story_id.in_(matching.scalar_subquery()))
        .group_by(Article.story_id)
        .subquery()
    )
    statement = (
        select(Story, latest.c.latest, latest.c.articles)
        .join(latest, latest.c.story_id == Story.id)
        .order_by(latest.c.latest.desc(), Story.id.desc())
        .offset(query.offset)
    )
    if query.limit:
        statement = statement.limit(query.limit)
    rows = session.execute(statement).all()
    representatives = {
        article.story_id: (article, source)
        for article, source in session.execute(
            select(Article, Source.name)
            .join(Source)
            .where(Article.id.in_([story.representative_id for story, _, _ in rows if story.representative_id]))
        )
    }
    missing = [story.id for story, _, _ in rows if story.id not in representatives]
    if missing:  # a story from before representatives were kept: its earliest article
        first = select(func.min(Article.id)).where(Article.story_id.in_(missing)).group_by(Article.story_id)
        for article, source in session.execute(
            select(Article, Source.name).join(Source).where(Article.id.in_(first.scalar_subquery()))
        ):
            representatives[article.story_id] = (article, source)
    ids = [story_id for story_id in representatives if story_id is not None]
    sources = _story_sources(session, ids)
    tags: dict[int, set[str]] = defaultdict(set)
    for story_id, tag_id in session.execute(
        select(Article.story_id, ArticleTag.tag_id).join(ArticleTag).where(Article.story_id.in_(ids))
    ):
        if story_id is not None:
            tags[story_id].add(tag_id)
    views = []
    for story, latest_at, count in rows:
        article, source = representatives[story.id]
        views.append(
            StoryView(
                id=story.id,
                title=article.title,
                url=article.url,
                source=source,
                representative_id=article.id,
                first_seen_at=story.created_at,
                published_at=article.published_at,
                latest_at=latest_at,
                articles=count,
                sources=tuple(sorted(sources[story.id])),
                tags=tuple(sorted(tags[story.id])),
                snippet=lead(article.text),
            )
        )
    return views


def _filtered(session: Session, statement: _S, query: ArticleQuery, when: ColumnElement[datetime]) -> _S:
    if query.text:
        hits, rest = _matching(session, query, parse_query(query.text), ranked=False)
        return _filtered(session, statement.where(Article.id.in_(select(hits.c.article_id))), rest, when)
    if query.sources:
        # An outlet's verbatim copy of a stored article counts as that outlet carrying it.
        carried = (
            select(ArticleCopy.id)
            .join(Source, Source.id == ArticleCopy.source_id)
            .where(ArticleCopy.article_id == Article.id, Source.name.in_(query.sources))
            .exists()
        )
        statement = statement.where(or_(Source.name.in_(query.sources), carried))
    strong = ArticleTag.score >= query.min_score
    if query.tags:
        statement = statement.where(_has_tag(and_(ArticleTag.tag_id.in_(query.tags), strong)))
    if query.countries:
        statement = statement.where(
            _has_tag(and_(ArticleTag.tag_id.in_([c.upper() for c in query.countries]), Tag.kind == "country", strong))
        )
    if query.min_score and not (query.tags or query.countries):
        statement = statement.where(_has_tag(strong))
    if query.languages:
        statement = statement.where(Article.language.in_(query.languages))
    if query.fetched_since is not None or query.fetched_until is not None:
        # Stored in the range, or carried in it by an outlet as a verbatim copy of an older article.
        copy_source = ArticleCopy.source_id.in_(select(Source.id).where(Source.name.in_(query.sources)))
        copied = select(ArticleCopy.id).where(
            ArticleCopy.article_id == Article.id,
            *_in_range(ArticleCopy.fetched_at, query.fetched_since, query.fetched_until),
            *([copy_source] if query.sources else []),
        )
        statement = statement.where(
            or_(and_(*_in_range(Article.fetched_at, query.fetched_since, query.fetched_until)), copied.exists())
        )
    if query.not_sent_to is not None:
        sent = (
            select(DigestStory.story_id)
            .where(DigestStory.subscription == query.not_sent_to, DigestStory.story_id == Article.story_id)
            .exists()
        )
        statement = statement.where(~sent)
    if query.story is not None:
        statement = statement.where(Article.story_id == query.story)
    if query.since is not None:
        statement = statement.where(when >= query.since)
    if query.until is not None:
        statement = statement.where(when < query.until)
    return statement


def _matching(session: Session, query: ArticleQuery, node: Node, *, ranked: bool) -> tuple[Subquery, ArticleQuery]:
    """The full-text matches, narrowed by the index itself to the tags and countries, the dates and the
    languages as far as it can; and what of the query is left for SQL to check."""
    groups = (query.tags, query.countries)
    matches = fulltext.matching(
        session,
        node,
        tag_groups=groups,
        since=query.since,
        until=query.until,
        languages=query.languages,
        ranked=ranked,
    )
    rest = replace(query, text=None)
    if matches.exact:
        rest = replace(rest, since=None, until=None, languages=())
    # The index files each article under its tags in the transaction that stores them (repository), so a
    # tag's facet is as good as the tag, and checking each match's tags again would only cost time (some
    # 15 ms per 10,000 matches), unless the facets cannot tell (see _facets_exact).
    if _facets_exact(session, query):
        rest = replace(rest, tags=(), countries=())
    return matches.subquery, rest


def _unfiltered(query: ArticleQuery) -> bool:
    """Whether query filters nothing (its text, order and paging aside)."""
    return replace(query, text=None, sort=None, limit=None, offset=0) == ArticleQuery(limit=None)


def _facets_exact(session: Session, query: ArticleQuery) -> bool:
    """Whether the index's tag facets answer query's tag and country filters exactly: no minimum score,
    every tag asked for exists as written, no other tag shares its facet (facets fold case and
    punctuation), and every country is a country tag."""
    if query.min_score:
        return False
    if not query.tags and not query.countries:
        return True
    kinds = {tag_id: kind for tag_id, kind in session.execute(select(Tag.id, Tag.kind))}
    facets = Counter(fulltext.tag_facet(tag_id) for tag_id in kinds)
    countries = {code.upper() for code in query.countries}
    if any(kinds.get(code) != "country" for code in countries):
        return False
    return all(tag_id in kinds and facets[fulltext.tag_facet(tag_id)] == 1 for tag_id in {*query.tags, *countries})


def _in_range(column: Any, since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    conditions = []
    if since is not None:
        conditions.append(column >= since)
    if until is not None:
        conditions.append(column < until)
    return conditions


def _has_tag(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return (
        select(ArticleTag.article_id)
        .join(Tag, Tag.id == ArticleTag.tag_id)
        .where(ArticleTag.article_id == Article.id, condition)
        .exists()
    )


def _views(
    session: Session, rows: Sequence[tuple[Article, str]], *, with_text: bool, terms: tuple[Term, ...] = ()
) -> list[ArticleView]:
    ids = [article.id for article, _ in rows]
    tags: dict[int, list[ArticleTag]] = defaultdict(list)
    for tag in session.scalars(
        select(ArticleTag).where(ArticleTag.article_id.in_(ids)).order_by(ArticleTag.score.desc(), ArticleTag.tag_id)
    ):
        tags[tag.article_id].append(tag)
    story_sources = _story_sources(session, {article.story_id for article, _ in rows if article.story_id is not None})
    views = []
    for article, source in rows:
        article_tags = tags.get(article.id, [])
        story_id = article.story_id
        also = sorted(story_sources[story_id] - {source}) if story_id is not None else []
        snippet = (
            (around_match(article.text, terms) if terms else None)
            or next((t.snippet for t in article_tags if t.snippet), None)
            or lead(article.text)
        )
        views.append(
            ArticleView(
                id=article.id,
                url=article.url,
                canonical_url=article.canonical_url,
                source=source,
                title=article.title,
                published_at=article.published_at,
                fetched_at=article.fetched_at,
                language=article.language,
                tags=tuple(t.tag_id for t in article_tags),
                story_id=article.story_id,
                also_reported_by=tuple(also),
                snippet=snippet,
                author=article.author,
                extraction=article.extraction,
                extraction_error=article.extraction_error,
                text=article.text if with_text else None,
            )
        )
    return views


def _story_sources(session: Session, story_ids: Collection[int]) -> dict[int, set[str]]:
    """Every outlet that carried each story: its articles' sources and their copies' sources."""
    sources: dict[int, set[str]] = defaultdict(set)
    if not story_ids:
        return sources
    members = select(Article.story_id, Source.name).join(Source).where(Article.story_id.in_(story_ids))
    copies = (
        select(Article.story_id, Source.name)
        .join(ArticleCopy, ArticleCopy.article_id == Article.id)
        .join(Source, Source.id == ArticleCopy.source_id)
        .where(Article.story_id.in_(story_ids))
    )
    for story_id, source in itertools.chain(session.execute(members), session.execute(copies)):
        if story_id is not None:
            sources[story_id].add(source)
    return sources


def _members(session: Session, *, article_id: int, story_id: int | None) -> tuple[StoryMember, ...]:
    """The story's other articles, then the copies of any of its articles, oldest first."""
    when = func.coalesce(Article.published_at, Article.fetched_at)
    in_story = Article.story_id == story_id if story_id is not None else Article.id == article_id
    others = session.execute(
        select(Article.id, Article.url, Article.title, Source.name)
        .join(Source)
        .where(in_story, Article.id != article_id)
        .order_by(when, Article.id)
    ).all()
    copies = session.execute(
        select(ArticleCopy.url, ArticleCopy.title, Source.name)
        .join(Source, Source.id == ArticleCopy.source_id)
        .join(Article, Article.id == ArticleCopy.article_id)
        .where(in_story)
        .order_by(ArticleCopy.fetched_at, ArticleCopy.id)
    ).all()
    return tuple(StoryMember(row.name, row.url, row.title, row.id) for row in others) + tuple(
        StoryMember(row.name, row.url, row.title, None) for row in copies
    )
