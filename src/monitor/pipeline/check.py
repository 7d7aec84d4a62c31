"""`monitor feeds check`: fetch and parse each feed once, store nothing, say what was found."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from monitor.model import FeedCheck, FetchOutcome, FetchResult
from monitor.pipeline.fetch import Fetcher
from monitor.pipeline.parse import NotAFeedError, SitemapIndex, parse_feed, parse_sitemap
from monitor.settings import FeedConfig


async def check_feeds(feeds: Sequence[FeedConfig], *, fetcher: Fetcher) -> list[FeedCheck]:
    """Check the feeds concurrently (politeness still applies per host), in the order given."""
    return list(await asyncio.gather(*(check_feed(feed, fetcher=fetcher) for feed in feeds)))


async def check_feed(feed: FeedConfig, *, fetcher: Fetcher) -> FeedCheck:
    """One unconditional fetch and parse of feed."""
    result = await fetcher.fetch_feed(feed.url)
    if result.outcome is not FetchOutcome.OK:
        return _check(feed, result, outcome=result.outcome, error=result.error)
    try:
        if feed.kind == "sitemap":
            parsed = parse_sitemap(result.body, url=result.url)
        else:
            parsed = parse_feed(result.body, url=result.url, content_type=result.content_type)
    except NotAFeedError as exc:
        return _check(feed, result, outcome=FetchOutcome.HARD_ERROR, error=str(exc))
    if isinstance(parsed, SitemapIndex):
        note = f"a sitemap index; newest child sitemaps: {', '.join(parsed.sitemaps)}"
        return _check(feed, result, warning=note)
    dates = [e.published_at for e in parsed.entries if e.published_at is not None]
    return _check(feed, result, entries=len(parsed.entries), newest=max(dates, default=None), warning=parsed.warning)


def _check(
    feed: FeedConfig,
    result: FetchResult,
    *,
    outcome: FetchOutcome = FetchOutcome.OK,
    entries: int = 0,
    newest: datetime | None = None,
    error: str | None = None,
    warning: str | None = None,
) -> FeedCheck:
    return FeedCheck(
        name=feed.name,
        url=feed.url,
        outcome=outcome,
        status=result.status,
        entries=entries,
        newest=newest,
        elapsed=result.elapsed,
        error=error,
        warning=warning,
        moved_to=result.permanent_redirect,
    )
