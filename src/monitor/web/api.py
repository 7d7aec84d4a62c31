"""GET /api/*: articles, one article, stories, sources, stats, and CSV / JSON Lines exports of any search."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse

from monitor.output import article_record, health_record, render_articles, stats_record, story_record
from monitor.store.repository import feed_health
from monitor.store.search import (
    ArticleQuery,
    Sort,
    count_stories,
    get_article,
    search_articles,
    search_page,
    search_stories,
)
from monitor.store.stats import archive_stats, default_since
from monitor.web.params import EXPORT_LIMIT, MAX_ID, PAGE_LIMIT, When, search_filters, when
from monitor.web.session import database_of

router = APIRouter(prefix="/api", tags=["archive"])
Filters = Annotated[ArticleQuery, Depends(search_filters)]
Limit = Annotated[int, Query(ge=1, le=PAGE_LIMIT, description=f"Page size, at most {PAGE_LIMIT}.")]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
EXPORT_BATCH = 1_000


@router.get("/articles", summary="Search articles")
def articles(request: Request, filters: Filters, limit: Limit = 20, offset: Offset = 0) -> dict[str, Any]:
    """Articles matching the filters, best matches first with q (else newest), and how many match in all."""
    query = _paged(filters, limit, offset)
    with database_of(request).session() as session:
        views, total = search_page(session, query=query)
    return {"items": [article_record(view) for view in views], "total": total, "limit": limit, "offset": offset}


@router.get("/articles.csv", summary="Export a search as CSV", response_class=StreamingResponse)
def export_csv(
    request: Request, filters: Filters, limit: Annotated[int, Query(ge=1, le=EXPORT_LIMIT)] = EXPORT_LIMIT
) -> StreamingResponse:
    """Every article matching the filters (up to limit) as CSV, newest first (or sort=oldest), streamed."""
    return _export(request, filters, limit, "csv", "text/csv; charset=utf-8")


@router.get("/articles.jsonl", summary="Export a search as JSON Lines", response_class=StreamingResponse)
def export_jsonl(
    request: Request, filters: Filters, limit: Annotated[int, Query(ge=1, le=EXPORT_LIMIT)] = EXPORT_LIMIT
) -> StreamingResponse:
    """Every article matching the filters (up to limit) as JSON Lines, newest first (or sort=oldest), streamed."""
    return _export(request, filters, limit, "jsonl", "application/x-ndjson; charset=utf-8")


@router.get("/articles/{article_id}", summary="One article")
def article(request: Request, article_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> dict[str, Any]:
    """One article with its text, tags, story and the story's other reports and copies."""
    with database_of(request).session() as session:
        return article_record(get_article(session, article_id=article_id), with_text=True)


@router.get("/stories", summary="Search stories")
def stories(request: Request, filters: Filters, limit: Limit = 20, offset: Offset = 0) -> dict[str, Any]:
    """Stories with at least one article matching the filters, most recently reported first."""
    query = _paged(filters, limit, offset)
    with database_of(request).session() as session:
        items = [story_record(view) for view in search_stories(session, query=query)]
        total = count_stories(session, query=filters)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/sources", summary="Sources with health")
def sources(request: Request) -> dict[str, Any]:
    """Every configured source with its schedule and health (last success, last error, failures)."""
    with database_of(request).session() as session:
        return {"items": [health_record(feed) for feed in feed_health(session, now=datetime.now(UTC))]}


@router.get("/stats", summary="Counts per source, tag, week and day")
def stats(request: Request, since: When = None) -> dict[str, Any]:
    """Articles and stories per source, per tag, per week and per day since a date (default: 12 weeks)."""
    start = when(since, "since", end_of_day=False) or default_since()
    with database_of(request).session() as session:
        return stats_record(archive_stats(session, since=start))


def _paged(filters: ArticleQuery, limit: int, offset: int) -> ArticleQuery:
    return replace(filters, limit=limit, offset=offset)


def _export(request: Request, filters: ArticleQuery, limit: int, fmt: str, media_type: str) -> StreamingResponse:
    """Stream every match, newest first (oldest with sort=oldest), in batches of EXPORT_BATCH read by keyset:
    articles stored while the export runs cause no repeats and no gaps."""
    database = database_of(request)
    query = replace(filters, sort=Sort.OLDEST if filters.sort is Sort.OLDEST else Sort.NEWEST, offset=0)
    # The first batch runs now, so that a malformed query is a 400 rather than a broken stream.
    with database.session() as session:
        first = search_articles(session, query=replace(query, limit=min(limit, EXPORT_BATCH)))

    def batches() -> Iterator[str]:
        batch, done = first, len(first)
        yield render_articles(batch, fmt)
        while done < limit and len(batch) == EXPORT_BATCH:
            last = batch[-1]
            following = replace(query, limit=min(limit - done, EXPORT_BATCH), after=(last.when, last.id))
            with database.session() as session:
                batch = search_articles(session, query=following)
            if batch:
                yield render_articles(batch, fmt, header=False)
            done += len(batch)

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    headers = {"Content-Disposition": f'attachment; filename="monitor-{stamp}.{fmt}"'}
    return StreamingResponse(batches(), media_type=media_type, headers=headers)
