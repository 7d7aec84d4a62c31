"""refresh_feed(): the one place that knows the order of the stages; poll_feeds() runs it per due feed.

The scheduler (`monitor run`) and `monitor poll` both call poll_feeds, so they cannot drift apart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from monitor.model import (
    ArticleDraft,
    Extraction,
    FeedRef,
    FeedSummary,
    FetchOutcome,
    FetchResult,
    ParsedEntry,
    ParsedFeed,
)
from monitor.pipeline.dedupe import canonical_url
from monitor.pipeline.extract import ExtractionError, Extractor, html_to_text
from monitor.pipeline.fetch import Fetcher
from monitor.pipeline.parse import (
    SITEMAP_MAX_ENTRIES,
    NotAFeedError,
    SitemapIndex,
    parse_feed,
    parse_sitemap,
)
from monitor.settings import FeedConfig
from monitor.store import repository
from monitor.store.db import Database

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def _never() -> bool:
    return False


def poll_feeds(
    database: Database,
    *,
    feeds: Sequence[FeedConfig],
    fetcher: Fetcher,
    extractor: Extractor,
    names: Collection[str] = (),
    include_all: bool = False,
    clock: Clock = utcnow,
    should_stop: Callable[[], bool] = _never,
) -> list[FeedSummary]:
    """One pass: mirror the config, then refresh the named, all, or due feeds in turn."""
    with database.session() as session:
        repository.sync_sources(session, feeds=feeds, now=clock())
        due = repository.due_feeds(session, now=clock(), names=names, include_all=include_all)
    summaries = []
    for feed in due:
        if should_stop():
            break
        try:
            summaries.append(
                refresh_feed(
                    feed,
                    database=database,
                    fetcher=fetcher,
                    extractor=extractor,
                    clock=clock,
                    should_stop=should_stop,
                )
            )
        except Exception as exc:
            log.exception("feed=%s outcome=crash", feed.name)
            summaries.append(FeedSummary(feed.name, FetchOutcome.HARD_ERROR, error=f"internal error: {exc!r}"))
    return summaries


def refresh_feed(
    feed: FeedRef,
    *,
    database: Database,
    fetcher: Fetcher,
    extractor: Extractor,
    clock: Clock = utcnow,
    should_stop: Callable[[], bool] = _never,
) -> FeedSummary:
    """Fetch one feed, store its new entries, then record the fetch (validators last)."""
    started = clock()
    next_poll_at = started + feed.interval
    result = fetcher.fetch_feed(feed.url, etag=feed.etag, last_modified=feed.last_modified)
    if result.outcome is not FetchOutcome.OK:
        return _finish(
            database,
            feed,
            result,
            started,
            next_poll_at,
            FeedSummary(feed.name, result.outcome, error=result.error),
        )
    try:
        if feed.kind == "sitemap":
            parsed = _read_sitemap(result, fetcher=fetcher)
        else:
            parsed = parse_feed(result.body, url=result.url, content_type=result.content_type)
    except NotAFeedError as exc:
        summary = FeedSummary(feed.name, FetchOutcome.HARD_ERROR, error=str(exc))
        return _finish(database, feed, result, started, next_poll_at, summary)
    if parsed.warning:
        log.info("feed=%s parse_warning=%r", feed.name, parsed.warning)

    failed = parsed.dropped
    candidates: dict[str, ParsedEntry] = {}
    for entry in parsed.entries:
        canonical = canonical_url(entry.link)
        if canonical is None:
            log.warning("feed=%s link=%r outcome=refused reason=not-an-article-url", feed.name, entry.link)
            failed += 1
        else:
            candidates.setdefault(canonical, entry)
    with database.session() as session:
        known = repository.known_entries(
            session,
            source_id=feed.id,
            guids=[entry.guid for entry in candidates.values()],
            canonical_urls=list(candidates),
        )
    fresh = [
        (canonical, entry)
        for canonical, entry in candidates.items()
        if canonical not in known and entry.guid not in known
    ]
    skipped = len(parsed.entries) - parsed.dropped - failed - len(fresh)
    new = from_summary = 0
    complete = True
    for canonical, entry in fresh:
        if should_stop():
            complete = False
            break
        draft = _draft(entry, canonical, feed=feed, fetcher=fetcher, extractor=extractor, clock=clock)
        try:
            with database.session() as session:
                stored = repository.add_article(session, draft=draft) is not None
        except SQLAlchemyError as exc:
            log.error("feed=%s url=%s outcome=store-failed error=%r", feed.name, draft.url, str(exc))
            failed += 1
            complete = False
            continue
        if not stored:
            skipped += 1
            continue
        new += 1
        if draft.extraction is not Extraction.PAGE:
            from_summary += 1
    summary = FeedSummary(feed.name, FetchOutcome.OK, new, skipped, failed, from_summary)
    if not complete:
        # Forget the validators and stay due: the next pass must get the whole feed again for the
        # items left over, instead of a 304 that would lose them.
        result = FetchResult(result.url, result.outcome, result.status, elapsed=result.elapsed)
        next_poll_at = started
    return _finish(database, feed, result, started, next_poll_at, summary)


def _read_sitemap(result: FetchResult, *, fetcher: Fetcher) -> ParsedFeed:
    """A sitemap's entries; for a sitemap index, the entries of its newest child sitemaps."""
    parsed = parse_sitemap(result.body, url=result.url)
    if not isinstance(parsed, SitemapIndex):
        return parsed
    entries: dict[str, ParsedEntry] = {}
    problems = []
    for child_url in parsed.sitemaps:
        child = fetcher.fetch_feed(child_url)
        if child.outcome is not FetchOutcome.OK:
            problems.append(f"{child_url}: {child.error or child.outcome.value}")
            continue
        try:
            document = parse_sitemap(child.body, url=child.url)
        except NotAFeedError as exc:
            problems.append(f"{child_url}: {exc}")
            continue
        if isinstance(document, ParsedFeed):
            for entry in document.entries:
                entries.setdefault(entry.guid, entry)
    if problems and not entries:
        raise NotAFeedError(f"no child sitemap could be read ({problems[0]})")
    newest = sorted(entries.values(), key=lambda e: e.published_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    return ParsedFeed(title=None, language=None, entries=tuple(newest[:SITEMAP_MAX_ENTRIES]))


def _draft(
    entry: ParsedEntry,
    canonical: str,
    *,
    feed: FeedRef,
    fetcher: Fetcher,
    extractor: Extractor,
    clock: Clock,
) -> ArticleDraft:
    summary = html_to_text(entry.summary_html) if entry.summary_html else None
    page = fetcher.fetch_page(entry.link)
    article = None
    if page.outcome is FetchOutcome.OK:
        try:
            article = extractor.extract(page.body, url=page.url, content_type=page.content_type)
            error = None
        except ExtractionError as exc:
            error = str(exc)
    else:
        error = f"page {page.outcome.value}: {page.error}"
    if article is not None and summary and len(article.text) < len(summary):
        # A script-rendered or paywalled page yields a scrap of navigation; the summary says more.
        error = f"page gave {len(article.text)} characters, fewer than the feed's summary"
        article = None
    if article is not None:
        extraction, text = Extraction.PAGE, article.text
    elif summary:
        extraction, text = Extraction.FEED_SUMMARY, summary
    else:
        extraction, text = Extraction.NONE, ""
    log.info(
        "feed=%s url=%s page=%s extraction=%s%s",
        feed.name,
        entry.link,
        page.outcome.value,
        extraction.value,
        f" error={error!r}" if error else "",
    )
    return ArticleDraft(
        source_id=feed.id,
        guid=entry.guid,
        url=entry.link,
        canonical_url=canonical,
        title=entry.title or (article.title if article else None) or canonical,
        text=text,
        summary=summary,
        author=entry.author or (article.author if article else None),
        published_at=entry.published_at or (article.published_at if article else None),
        fetched_at=clock(),
        language=(article.language if article else None) or feed.language,
        extraction=extraction,
        extraction_error=error,
    )


def _finish(
    database: Database,
    feed: FeedRef,
    result: FetchResult,
    started: datetime,
    next_poll_at: datetime,
    summary: FeedSummary,
) -> FeedSummary:
    with database.session() as session:
        repository.record_fetch(
            session,
            feed=feed,
            result=result,
            started_at=started,
            new_items=summary.new,
            next_poll_at=next_poll_at,
            error=summary.error if summary.outcome.failed else None,
        )
    log.info(
        "feed=%s url=%s outcome=%s status=%s new=%d skipped=%d failed=%d elapsed_ms=%d%s",
        feed.name,
        result.url,
        summary.outcome.value,
        result.status,
        summary.new,
        summary.skipped,
        summary.failed,
        int(result.elapsed * 1000),
        f" error={summary.error!r}" if summary.error else "",
    )
    return summary
