"""GET /feeds/search.atom: any search as an Atom feed (the only feedgen user), to follow a filter in a reader."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from feedgen.feed import FeedGenerator

from monitor.model import ArticleView
from monitor.store.search import ArticleQuery, Sort, search_articles
from monitor.web.params import search_filters
from monitor.web.session import database_of

router = APIRouter(tags=["feeds"])
FEED_LIMIT = 200
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # what XML 1.0 cannot carry at all


@router.get("/feeds/search.atom", summary="A search as an Atom feed", response_class=Response)
def search_feed(
    request: Request,
    filters: Annotated[ArticleQuery, Depends(search_filters)],
    limit: Annotated[int, Query(ge=1, le=FEED_LIMIT)] = 50,
) -> Response:
    """The newest articles matching the filters (same parameters as /api/articles) as Atom 1.0."""
    query = replace(filters, sort=filters.sort or Sort.NEWEST, limit=limit, offset=0)
    with database_of(request).session() as session:
        articles = search_articles(session, query=query)
    body = atom(articles, self_url=str(request.url), page_url=_page_url(request), title=_title(filters))
    return Response(body, media_type="application/atom+xml; charset=utf-8")


def atom(articles: list[ArticleView], *, self_url: str, page_url: str, title: str) -> bytes:
    """Articles as an Atom feed whose id is its own URL: one feed per search."""
    feed = FeedGenerator()
    feed.id(self_url)
    feed.title(_safe(title))
    feed.link(href=self_url, rel="self", type="application/atom+xml")
    feed.link(href=page_url, rel="alternate", type="text/html")
    feed.author({"name": "monitor"})
    feed.generator("monitor")
    feed.updated(max((a.fetched_at for a in articles), default=datetime.now(UTC)))
    for article in articles:
        entry = feed.add_entry(order="append")
        # The canonical URL, not the row id: it stays the same if the archive is rebuilt.
        entry.id(article.canonical_url)
        entry.title(_safe(article.title))
        entry.link(href=article.url, rel="alternate")
        entry.published(article.published_at or article.fetched_at)
        entry.updated(article.fetched_at)
        entry.author({"name": article.source})
        entry.summary(_safe(article.snippet))
        for tag in article.tags:
            entry.category(term=tag)
    body: bytes = feed.atom_str(pretty=True)
    return body


def _title(filters: ArticleQuery) -> str:
    parts = [f"“{filters.text}”"] if filters.text else []
    parts += [*filters.tags, *filters.countries, *filters.sources, *filters.languages]
    return "monitor: " + (" · ".join(parts) if parts else "all articles")


def _page_url(request: Request) -> str:
    return str(request.url.replace(path="/"))


def _safe(value: str) -> str:
    return _NOT_XML.sub("", value)
