"""A date filter as a range of article ids, so that the full-text index reads only that part of itself.

Both indexes keep each word's articles in id order (FTS5 doclists by rowid; PostgreSQL's bitmap AND with
the primary key), and ids grow with fetch time, which follows publication closely. A date range is turned
into the narrowest id range that certainly holds every article dated in it, from article_days: the lowest
and highest id of each UTC day's articles. The exact date filter still applies afterwards; the range only
saves the index from handing over a year of matches for a month's query (1,000,000 articles: a common
word, one country, the last six months went from 50,000 candidates to 12,500; bench/bench_search.py).
An article dated long before it was stored (a backfilled feed) only widens its day's range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Date, case, cast, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from monitor.store.schema import Article, ArticleDay
from monitor.store.stories import lock_stories


@dataclass(frozen=True, slots=True)
class IdRange:
    """Article ids from low to high, both included; None is open-ended."""

    low: int | None = None
    high: int | None = None

    @property
    def empty(self) -> bool:
        return self.low is not None and self.high is not None and self.low > self.high


EVERYTHING = IdRange()
NOTHING = IdRange(1, 0)


def record(session: Session, *, article_id: int, when: datetime) -> None:
    """Note a new article's id under its day (in the article's own transaction)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(ArticleDay).values(day=utc_day(when), first_id=article_id, last_id=article_id)
    new = insert.excluded
    session.execute(
        insert.on_conflict_do_update(
            index_elements=[ArticleDay.day],
            set_={
                "first_id": case((new.first_id < ArticleDay.first_id, new.first_id), else_=ArticleDay.first_id),
                "last_id": case((new.last_id > ArticleDay.last_id, new.last_id), else_=ArticleDay.last_id),
            },
        )
    )


def id_range(session: Session, *, since: datetime | None, until: datetime | None) -> IdRange:
    """Ids that include every article dated from since (included) to until (excluded)."""
    if since is None and until is None:
        return EVERYTHING
    statement = select(func.min(ArticleDay.first_id), func.max(ArticleDay.last_id))
    if since is not None:
        statement = statement.where(ArticleDay.day >= utc_day(since))
    if until is not None:
        statement = statement.where(ArticleDay.day <= utc_day(until))
    row = session.execute(statement).one()
    if row[0] is None:
        return NOTHING
    return IdRange(row[0] if since is not None else None, row[1] if until is not None else None)


def share(session: Session, *, since: datetime | None, until: datetime | None) -> float:
    """Roughly what share of the archive's articles a date range holds (0 to 1), from its id range."""
    first, last = session.execute(select(func.min(ArticleDay.first_id), func.max(ArticleDay.last_id))).one()
    if first is None:
        return 0.0
    ids = id_range(session, since=since, until=until)
    if ids.empty:
        return 0.0
    low, high = ids.low if ids.low is not None else first, ids.high if ids.high is not None else last
    return (high - low + 1) / (last - first + 1)


def rebuild(session: Session) -> int:
    """Recompute every day's range from the articles (`monitor db reindex`); return how many days."""
    lock_stories(session)  # no article is stored meanwhile
    when = func.coalesce(Article.published_at, Article.fetched_at)
    if session.get_bind().dialect.name == "postgresql":
        day: ColumnElement[Any] = cast(func.timezone("UTC", when), Date)
    else:
        day = func.substr(when, 1, 10)  # SQLite keeps UTC times as text, "2026-11-26 08:00:00.000000"
    session.execute(delete(ArticleDay))
    session.execute(
        insert(ArticleDay).from_select(
            ["day", "first_id", "last_id"], select(day, func.min(Article.id), func.max(Article.id)).group_by(day)
        )
    )
    return session.scalar(select(func.count()).select_from(ArticleDay)) or 0


def utc_day(when: datetime) -> date:
    """The UTC day of a time."""
    return (when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)).date()
