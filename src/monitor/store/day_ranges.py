"""A date filter as a range of article ids, so that the full-text index reads only that part of itself.

Both indexes keep each word's articles in id order (FTS5 doclists by rowid), and ids grow with fetch time,
which follows publication closely. A date range is turned into the narrowest id range that certainly holds
every article dated in it, from article_days: the lowest and highest id of each UTC day's articles, kept
by a trigger on articles (migration 0008), so that no writer can leave an article out. The exact date
filter still applies afterwards; the range only saves the index from handing over a year of matches for a
month's query (1,000,000 articles: a common word, one country, the last six months went from 50,000
candidates to 12,500; bench/bench_search.py). An article dated long before it was stored (a backfilled
feed) only widens its day's range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import case, func, select, text
from sqlalchemy.orm import Session

from monitor.store.schema import ArticleDay
from monitor.store.stories import lock_stories


@dataclass(frozen=True, slots=True)
class IdRange:
    """Article ids from low to high, both included; None is open-ended."""

    low: int | None = None
    high: int | None = None


# An article dated more than this many days after it was fetched marks its day "ahead": its month facet
# is not its own month's (fulltext.FUTURE_LIMIT). Migration 0008's trigger says 31 days too.
AHEAD_DAYS = 31
EVERYTHING = IdRange()
NOTHING = IdRange(1, 0)
_any_ahead = func.max(case((ArticleDay.ahead, 1), else_=0))  # PostgreSQL has no max() of booleans


@dataclass(frozen=True, slots=True)
class Span:
    """What the archive holds in a date range: the id range, roughly what share of all articles it is
    (0 to 1), and whether some article in it is dated over a month after it was fetched."""

    ids: IdRange
    share: float
    ahead: bool


def id_range(session: Session, *, since: datetime | None, until: datetime | None) -> IdRange:
    """Ids that include every article dated from since (included) to until (excluded)."""
    if since is None and until is None:
        return EVERYTHING
    low, high, _ = _days(session, since=since, until=until)
    if low is None:
        return NOTHING
    return IdRange(low if since is not None else None, high if until is not None else None)


def span(session: Session, *, since: datetime | None, until: datetime | None) -> Span:
    """The date range from since (included) to until (excluded), as the archive holds it."""
    low, high, ahead = _days(session, since=since, until=until)
    if low is None:
        return Span(NOTHING, 0.0, ahead=False)
    first, last, _ = _days(session, since=None, until=None)
    ids = IdRange(low if since is not None else None, high if until is not None else None)
    return Span(ids, (high - low + 1) / (last - first + 1), ahead=bool(ahead))


def _days(session: Session, *, since: datetime | None, until: datetime | None) -> tuple[Any, Any, Any]:
    """The lowest and highest id of the days from since to until, and whether one of them is ahead."""
    statement = select(func.min(ArticleDay.first_id), func.max(ArticleDay.last_id), _any_ahead)
    if since is not None:
        statement = statement.where(ArticleDay.day >= utc_day(since))
    if until is not None:
        statement = statement.where(ArticleDay.day <= utc_day(until))
    return tuple(session.execute(statement).one())


def rebuild(session: Session) -> int:
    """Recompute every day's range from the articles (`monitor db reindex`); return how many days."""
    lock_stories(session)  # no article is stored meanwhile
    session.execute(text("DELETE FROM article_days"))
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text(
                "INSERT INTO article_days (day, first_id, last_id, ahead) "
                "SELECT CAST(coalesce(published_at, fetched_at) AT TIME ZONE 'UTC' AS date) AS day, min(id), "
                f"max(id), bool_or(coalesce(published_at, fetched_at) > fetched_at + interval '{AHEAD_DAYS} days') "
                "FROM articles GROUP BY 1"
            )
        )
    else:  # SQLite keeps UTC times as text, "2026-11-26 08:00:00.000000"
        session.execute(
            text(
                "INSERT INTO article_days (day, first_id, last_id, ahead) "
                "SELECT substr(coalesce(published_at, fetched_at), 1, 10), min(id), max(id), "
                f"max(coalesce(published_at, fetched_at) > datetime(fetched_at, '+{AHEAD_DAYS} days')) "
                "FROM articles GROUP BY 1"
            )
        )
    return session.scalar(select(func.count()).select_from(ArticleDay)) or 0


def utc_day(when: datetime) -> date:
    """The UTC day of a time."""
    return (when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)).date()
