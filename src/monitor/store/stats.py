"""Counts for `monitor stats` and /api/stats: articles and stories per source, per tag, per week and per day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import ColumnElement, Date, cast, distinct, func, select
from sqlalchemy.orm import Session

from monitor.store.schema import Article, ArticleTag, Source, Tag


@dataclass(frozen=True, slots=True)
class Count:
    """One row: a label, its articles and its stories (distinct)."""

    label: str
    articles: int
    stories: int


@dataclass(frozen=True, slots=True)
class Stats:
    """The archive in numbers, since a date."""

    since: datetime
    articles: int
    stories: int
    by_source: tuple[Count, ...]
    by_tag: tuple[Count, ...]
    by_week: tuple[Count, ...]  # label: the Monday starting the ISO week, YYYY-MM-DD
    by_day: tuple[Count, ...] = ()  # label: the day, YYYY-MM-DD (UTC)


def archive_stats(session: Session, *, since: datetime) -> Stats:
    """Articles and stories published (else fetched) since since, per source, per tag and per week."""
    when = func.coalesce(Article.published_at, Article.fetched_at)
    recent = when >= since
    total = session.execute(select(func.count(), func.count(distinct(Article.story_id))).where(recent)).one()
    by_source = session.execute(
        select(Source.name, func.count(), func.count(distinct(Article.story_id)))
        .join(Article, Article.source_id == Source.id)
        .where(recent)
        .group_by(Source.name)
        .order_by(func.count().desc(), Source.name)
    ).all()
    by_tag = session.execute(
        select(Tag.id, func.count(), func.count(distinct(Article.story_id)))
        .join(ArticleTag, ArticleTag.tag_id == Tag.id)
        .join(Article, Article.id == ArticleTag.article_id)
        .where(recent)
        .group_by(Tag.id)
        .order_by(func.count().desc(), Tag.id)
    ).all()
    day = _day(session, when)
    articles_by: dict[str, dict[date, int]] = {"day": {}, "week": {}}
    stories_by: dict[str, dict[date, set[int]]] = {"day": {}, "week": {}}
    # One row per (day, story): a story reported over several days counts once in its week.
    for value, story_id, articles in session.execute(
        select(day, Article.story_id, func.count()).where(recent).group_by(day, Article.story_id)
    ):
        today = _as_date(value)
        for period, start in (("day", today), ("week", today - timedelta(days=today.weekday()))):
            articles_by[period][start] = articles_by[period].get(start, 0) + int(articles)
            if story_id is not None:
                stories_by[period].setdefault(start, set()).add(story_id)
    by_week, by_day = (
        tuple(
            Count(start.isoformat(), count, len(stories_by[period].get(start, ())))
            for start, count in sorted(articles_by[period].items())
        )
        for period in ("week", "day")
    )
    return Stats(
        since=since,
        articles=int(total[0]),
        stories=int(total[1]),
        by_source=tuple(Count(name, int(a), int(s)) for name, a, s in by_source),
        by_tag=tuple(Count(tag, int(a), int(s)) for tag, a, s in by_tag),
        by_week=by_week,
        by_day=by_day,
    )


def _day(session: Session, when: ColumnElement[datetime]) -> ColumnElement[date]:
    if session.get_bind().dialect.name == "sqlite":
        return func.date(when)  # text YYYY-MM-DD (stored UTC)
    return cast(func.timezone("UTC", when), Date)


def _as_date(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def default_since(now: datetime | None = None) -> datetime:
    """Twelve weeks back, from the start of that day (UTC)."""
    moment = (now or datetime.now(UTC)) - timedelta(weeks=12)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)
