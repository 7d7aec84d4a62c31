"""Query parameters shared by the API, the exports, the Atom feed and the search page: one ArticleQuery."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import HTTPException, Query

from monitor.settings import parse_when
from monitor.store.query_syntax import MAX_QUERY_CHARS
from monitor.store.search import ArticleQuery, Sort

MAX_ID = 2**31 - 1  # ids are 32-bit integers on PostgreSQL
PAGE_LIMIT = 100  # the most articles one page of /api/articles returns
EXPORT_LIMIT = 100_000  # the most rows one CSV or JSON Lines export returns

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
Text = Annotated[
    str | None,
    Query(
        max_length=MAX_QUERY_CHARS,
        description='Full text: words (all must match), "a phrase", OR, -excluded, (groups).',
    ),
]
Many = Annotated[list[str], Query(description="Repeatable; values of one name are ORed.")]
When = Annotated[str | None, Query(description="A day (2026-11-01), an ISO time, or an age (7d).")]


def search_filters(
    q: Text = None,
    tag: Many = [],  # noqa: B006 -- FastAPI copies defaults per request
    country: Many = [],  # noqa: B006
    source: Many = [],  # noqa: B006
    language: Many = [],  # noqa: B006
    since: When = None,
    until: When = None,
    story: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only the articles of this story.")] = None,
    sort: Annotated[
        str | None, Query(description="relevance, newest or oldest; default: relevance with q, else newest.")
    ] = None,
) -> ArticleQuery:
    """The filters of a request (without paging); 400 on a date that cannot be read or a control character."""
    for name, values in (
        ("q", [q or ""]),
        ("tag", tag),
        ("country", country),
        ("source", source),
        ("language", language),
    ):
        if any(_CONTROL.search(value) for value in values):
            raise HTTPException(status_code=400, detail=f"{name}: control characters are not allowed")
    return ArticleQuery(
        text=q.strip() or None if q else None,
        # An HTML form sends its empty choices as empty values: they mean "any".
        tags=tuple(value for value in tag if value),
        countries=tuple(value.upper() for value in country if value),
        sources=tuple(value for value in source if value),
        languages=tuple(value for value in language if value),
        since=when(since, "since", end_of_day=False),
        until=when(until, "until", end_of_day=True),
        story=story,
        sort=_sort(sort),
    )


def _sort(value: str | None) -> Sort | None:
    if not value:
        return None
    try:
        return Sort(value)
    except ValueError:
        raise HTTPException(
            status_code=400, detail=f"sort: {value!r} is not one of relevance, newest, oldest"
        ) from None


def when(value: str | None, name: str, *, end_of_day: bool) -> datetime | None:
    """A date parameter read like the command line's --since and --until; 400 when it cannot be read."""
    if not value:
        return None
    try:
        return parse_when(value, end_of_day=end_of_day)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=f"{name}: {exc}") from None
