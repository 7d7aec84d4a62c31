"""refresh_feed(): the one place that knows the order of the stages; poll_feeds() runs it per due feed.

The scheduler (`monitor run`) and `monitor poll` both call poll_feeds, so they cannot drift apart.
Network waits overlap (asyncio); database work runs in worker threads, one short session per step.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from monitor.metrics import Metrics
from monitor.model import (
    ArticleDraft,
    Extraction,
    FeedRef,
    FeedSummary,
    FetchOutcome,
    FetchResult,
    ParsedEntry,
    ParsedFeed,
    Stored,
)
from monitor.pipeline.dedupe import canonical_url
from monitor.pipeline.extract import ExtractionError, Extractor
from monitor.pipeline.fetch import Fetcher
from monitor.pipeline.parse import (
    SITEMAP_MAX_ENTRIES,
    NotAFeedError,
    SitemapIndex,
    parse_feed,
    parse_sitemap,
)
from monitor.pipeline.prepare import Enrichment, PageJob, prepare, prepare_in_worker
from monitor.pipeline.schedule import failure_backoff, honour_hints, interval_from_rate
from monitor.pipeline.similarity import Vectoriser
from monitor.pipeline.tag import Tagger
from monitor.pipeline.writer import ArticleWriter
from monitor.settings import FeedConfig
from monitor.store import fulltext, leases, repository, stories
from monitor.store.db import Database

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
T = TypeVar("T")
FEED_CONCURRENCY = 16
STOP_CHECK_SECONDS = 0.25


def utcnow() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def _never() -> bool:
    return False


async def in_session(database: Database, work: Callable[[Session], T]) -> T:
    """Run work(session) in one transaction on a worker thread, keeping the event loop free."""

    def run() -> T:
        with database.session() as session:
            return work(session)

    return await asyncio.to_thread(run)


async def poll_feeds(
    database: Database,
    *,
    feeds: Sequence[FeedConfig],
    fetcher: Fetcher,
    extractor: Extractor,
    tagger: Tagger | None = None,
    names: Collection[str] = (),
    include_all: bool = False,
    clock: Clock = utcnow,
    should_stop: Callable[[], bool] = _never,
    story_window: timedelta = stories.DEFAULT_WINDOW,
    worker: str | None = None,
    metrics: Metrics | None = None,
    lease_ttl: timedelta = leases.DEFAULT_TTL,
) -> list[FeedSummary]:
    """One pass: mirror the config, index any article the story index lacks, then lease the named, all, or
    due feeds (those no other worker is polling) and refresh them, several at a time."""
    now = clock()
    extractor.start()  # its workers start while the config is mirrored and the first feeds are fetched
    worker = worker or worker_id("poll")
    enrichment = Enrichment(tagger)
    await sync_config(database, feeds=feeds, tagger=tagger)
    await index_missing_stories(database, enrichment.vectoriser, should_stop=should_stop)
    due = await in_session(
        database,
        lambda s: leases.claim_feeds(s, worker=worker, now=now, ttl=lease_ttl, names=names, include_all=include_all),
    )
    slots = asyncio.Semaphore(FEED_CONCURRENCY)
    in_flight: set[str] = set()
    pending = {feed.id for feed in due}
    keeper = asyncio.create_task(keep_leases(database, worker=worker, feed_ids=pending, ttl=lease_ttl, clock=clock))
    writer = ArticleWriter(database, window=story_window)

    async def one(feed: FeedRef) -> FeedSummary | None:
        async with slots:
            if should_stop():
                return None
            try:
                return await refresh_leased(
                    feed,
                    database=database,
                    fetcher=fetcher,
                    extractor=extractor,
                    clock=clock,
                    should_stop=should_stop,
                    in_flight=in_flight,
                    enrichment=enrichment,
                    writer=writer,
                    worker=worker,
                    metrics=metrics,
                )
            finally:
                pending.discard(feed.id)

    try:
        results = await asyncio.gather(*(one(feed) for feed in due))
    finally:
        keeper.cancel()
        await writer.close()
        # Feeds left unpolled (a stop request) stay due, free for the next pass or another worker.
        await in_session(database, lambda s: leases.release(s, worker=worker))
    return sorted((summary for summary in results if summary is not None), key=lambda summary: summary.name)


async def keep_leases(
    database: Database, *, worker: str, feed_ids: set[int], ttl: timedelta, clock: Clock = utcnow
) -> None:
    """Renew worker's leases on feed_ids (a live set: finished feeds leave it) every third of ttl, until
    cancelled, so a long poll keeps its feeds while a dead worker's leases run out."""
    while True:
        await asyncio.sleep(ttl.total_seconds() / 3)
        if feed_ids:
            renewal = partial(leases.renew, worker=worker, feed_ids=list(feed_ids), until=clock() + ttl)
            try:
                await in_session(database, renewal)
            except Exception:  # keep renewing: a lapse only risks a second poll of a feed
                log.exception("worker=%s outcome=lease-renewal-failed", worker)


async def sync_config(database: Database, *, feeds: Sequence[FeedConfig], tagger: Tagger | None) -> None:
    """Mirror feeds.yaml and the watchlist into the database."""

    def sync(session: Session) -> None:
        repository.sync_sources(session, feeds=feeds, now=utcnow())
        if tagger is not None:
            repository.sync_tags(session, tags=tagger.tags)

    await in_session(database, sync)


async def refresh_leased(feed: FeedRef, *, database: Database, clock: Clock = utcnow, **options: Any) -> FeedSummary:
    """refresh_feed for a feed this worker leased, with the catch-all of a job's boundary: a crash is logged
    and recorded like any failure (so the feed backs off instead of crashing on every tick), and ends the
    lease."""
    try:
        return await refresh_feed(feed, database=database, clock=clock, **options)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # one feed's bug must not stop the others
        log.exception("feed=%s outcome=crash", feed.name)
        error = f"internal error: {exc!r}"
        summary = FeedSummary(feed.name, FetchOutcome.HARD_ERROR, error=error)
        crash = FetchResult(feed.url, FetchOutcome.HARD_ERROR, error=error)
        return await _finish(
            database,
            feed,
            crash,
            clock(),
            summary,
            parsed=None,
            worker=options.get("worker"),
            metrics=options.get("metrics"),
        )


def worker_id(role: str) -> str:
    """A name for this process in leases and logs: role, host, pid and a random suffix."""
    return f"{role}:{leases.local_host()}:{os.getpid()}:{secrets.token_hex(2)}"


async def refresh_feed(
    feed: FeedRef,
    *,
    database: Database,
    fetcher: Fetcher,
    extractor: Extractor,
    clock: Clock = utcnow,
    should_stop: Callable[[], bool] = _never,
    in_flight: set[str] | None = None,
    enrichment: Enrichment,
    writer: ArticleWriter,
    worker: str | None = None,
    metrics: Metrics | None = None,
) -> FeedSummary:
    """Fetch one feed, store its new entries, then record the fetch (validators last; the lease ends).

    in_flight holds the canonical URLs other feeds of this pass are already fetching: a story carried by
    five outlets is downloaded once. enrichment is the watchlist's tagger with its story vectoriser, and
    writer the article writer every feed in hand shares (it knows the story window).
    """
    started = clock()
    if feed.kind == "sitemap":
        # A sitemap index often stays the same (a 304) while its child sitemaps fill up: always read it.
        result = await fetcher.fetch_feed(feed.url)
    else:
        result = await fetcher.fetch_feed(feed.url, etag=feed.etag, last_modified=feed.last_modified)
    if result.outcome is not FetchOutcome.OK:
        summary = FeedSummary(feed.name, result.outcome, error=result.error)
        return await _finish(database, feed, result, started, summary, parsed=None, worker=worker, metrics=metrics)
    try:
        if feed.kind == "sitemap":
            parsed = await _read_sitemap(result, fetcher=fetcher)
        else:
            # Parsing a big feed costs tens of milliseconds of CPU: do it on the worker processes, so that
            # a pass over many feeds uses every core and the event loop keeps serving the network.
            parsed = await extractor.call(_parse_feed, result.body, result.url, result.content_type)
    except NotAFeedError as exc:
        summary = FeedSummary(feed.name, FetchOutcome.HARD_ERROR, error=str(exc))
        return await _finish(database, feed, result, started, summary, parsed=None, worker=worker, metrics=metrics)
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
    known = await in_session(
        database,
        lambda s: repository.known_entries(
            s,
            source_id=feed.id,
            guids=[entry.guid for entry in candidates.values()],
            canonical_urls=list(candidates),
        ),
    )
    claimed = in_flight if in_flight is not None else set()
    fresh = [(c, e) for c, e in candidates.items() if c not in known and e.guid not in known and c not in claimed]
    claimed.update(c for c, _ in fresh)
    skipped = len(parsed.entries) - (failed - parsed.dropped) - len(fresh)
    new = from_summary = copies = 0
    complete, stopped = True, False
    pending = {
        asyncio.create_task(
            _draft_and_store(
                entry,
                canonical,
                feed=feed,
                fetcher=fetcher,
                extractor=extractor,
                clock=clock,
                enrichment=enrichment,
                writer=writer,
                metrics=metrics,
            )
        )
        for canonical, entry in fresh
    }
    try:
        while pending:
            # Wake up now and then even when no page is done, so a stop request is honoured promptly.
            done, pending = await asyncio.wait(pending, timeout=STOP_CHECK_SECONDS, return_when=FIRST_COMPLETED)
            for task in done:
                draft, stored = task.result()
                if isinstance(stored, Exception):
                    log.error("feed=%s url=%s outcome=store-failed error=%r", feed.name, draft.url, str(stored))
                    failed += 1
                    complete = False
                elif stored is Stored.KNOWN:
                    skipped += 1
                elif stored is Stored.COPY:
                    copies += 1
                else:
                    new += 1
                    from_summary += draft.extraction is not Extraction.PAGE
            if pending and should_stop():
                complete, stopped = False, True
                break
    finally:
        for task in pending:
            task.cancel()
    summary = FeedSummary(feed.name, FetchOutcome.OK, new, skipped, failed, from_summary, copies=copies)
    if not complete:
        # Forget the validators: the next pass must get the whole feed again for the items left over,
        # instead of a 304 that would lose them. A stopped pass leaves the feed due at once.
        result = FetchResult(result.url, result.outcome, result.status, elapsed=result.elapsed)
        return await _finish(
            database, feed, result, started, summary, parsed=None, due_now=stopped, worker=worker, metrics=metrics
        )
    return await _finish(database, feed, result, started, summary, parsed=parsed, worker=worker, metrics=metrics)


async def _read_sitemap(result: FetchResult, *, fetcher: Fetcher) -> ParsedFeed:
    """A sitemap's entries; for a sitemap index, the entries of its newest child sitemaps."""
    parsed = parse_sitemap(result.body, url=result.url)
    if not isinstance(parsed, SitemapIndex):
        return parsed
    entries: dict[str, ParsedEntry] = {}
    problems = []
    for child_url in parsed.sitemaps:
        child = await fetcher.fetch_feed(child_url)
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


async def _draft_and_store(
    entry: ParsedEntry,
    canonical: str,
    *,
    feed: FeedRef,
    fetcher: Fetcher,
    extractor: Extractor,
    clock: Clock,
    enrichment: Enrichment,
    writer: ArticleWriter,
    metrics: Metrics | None = None,
) -> tuple[ArticleDraft, Stored | Exception]:
    """Download one entry's page, have a worker turn it into a draft, and hand that to the writer."""
    page = await fetcher.fetch_page(entry.link)
    job = PageJob(
        entry=entry,
        canonical_url=canonical,
        source_id=feed.id,
        feed_language=feed.language,
        fetched_at=clock(),
        page_url=page.url,
        body=page.body if page.outcome is FetchOutcome.OK else None,
        content_type=page.content_type,
        page_error=None if page.outcome is FetchOutcome.OK else f"page {page.outcome.value}: {page.error}",
    )
    began = time.monotonic()
    try:
        prepared = await extractor.run_page(prepare_in_worker, job, enrichment.watchlist)
    except ExtractionError as exc:  # the worker overran its time or died: keep what the feed said
        prepared = prepare(replace(job, body=None, page_error=str(exc)), enrichment)
        prepared = replace(prepared, extraction_seconds=time.monotonic() - began)
    draft = prepared.draft
    if metrics is not None:
        metrics.page_fetched(
            status=page.status,
            extraction_seconds=prepared.extraction_seconds,
            failed=draft.extraction is not Extraction.PAGE,
        )
    log.info(
        "feed=%s url=%s page=%s extraction=%s%s",
        feed.name,
        entry.link,
        page.outcome.value,
        draft.extraction.value,
        f" error={draft.extraction_error!r}" if draft.extraction_error else "",
    )
    try:
        return draft, await writer.store(draft)
    except Exception as exc:  # noqa: BLE001 - not stored: the feed counts it failed and polls it again
        return draft, exc


def _parse_feed(body: bytes, url: str, content_type: str | None) -> ParsedFeed:
    return parse_feed(body, url=url, content_type=content_type)


async def index_missing_stories(
    database: Database, vectoriser: Vectoriser, *, should_stop: Callable[[], bool] = _never
) -> int:
    """Index the articles the story index or the full-text index lacks (an upgraded database, or after
    `monitor stories rebuild` or `monitor db reindex`), in batches of one transaction each; return how many
    index entries were made."""
    done = 0
    while not should_stop():
        batch = await in_session(database, partial(_index_batch, vectoriser))
        if not batch:
            break
        done += batch
        log.info("indexes: %d entries made", done)
    return done


def _index_batch(vectoriser: Vectoriser, session: Session) -> int:
    return stories.index_missing(session, features=vectoriser.features) + fulltext.index_missing(session)


def _schedule(
    feed: FeedRef, result: FetchResult, summary: FeedSummary, parsed: ParsedFeed | None, now: datetime
) -> tuple[datetime, timedelta | None]:
    """Next poll time, and the learnt interval to remember (None: keep the stored one)."""
    if summary.outcome.failed:
        retry_after = timedelta(seconds=result.retry_after) if result.retry_after is not None else None
        return now + failure_backoff(minimum=feed.interval, failures=feed.failures + 1, retry_after=retry_after), None
    learnt: timedelta | None = None
    if parsed is not None:
        learnt = interval_from_rate(
            (e.published_at for e in parsed.entries), now=now, minimum=feed.interval, maximum=feed.max_interval
        )
    interval = learnt or feed.poll_interval or feed.interval
    ttl = timedelta(minutes=parsed.ttl_minutes) if parsed is not None and parsed.ttl_minutes else None
    max_age = timedelta(seconds=result.max_age) if result.max_age is not None else None
    return now + honour_hints(interval, ttl=ttl, max_age=max_age), learnt


async def _finish(
    database: Database,
    feed: FeedRef,
    result: FetchResult,
    started: datetime,
    summary: FeedSummary,
    *,
    parsed: ParsedFeed | None,
    due_now: bool = False,
    worker: str | None = None,
    metrics: Metrics | None = None,
) -> FeedSummary:
    next_poll_at, learnt = _schedule(feed, result, summary, parsed, started)
    if due_now:
        next_poll_at = started
    moved_to = await in_session(
        database,
        lambda s: repository.record_fetch(
            s,
            feed=feed,
            result=result,
            started_at=started,
            new_items=summary.new,
            next_poll_at=next_poll_at,
            poll_interval=learnt,
            error=summary.error if summary.outcome.failed else None,
            worker=worker,
        ),
    )
    if metrics is not None:
        metrics.feed_polled(summary, status=result.status, seconds=(utcnow() - started).total_seconds())
    if moved_to:
        note = f"moved permanently to {moved_to}; polling there now — update feeds.yaml"
        log.warning("feed=%s moved_to=%s", feed.name, moved_to)
        summary = replace(summary, note=note)
    log.info(
        "feed=%s url=%s outcome=%s status=%s attempts=%d new=%d skipped=%d failed=%d elapsed_ms=%d next=%s%s",
        feed.name,
        result.url,
        summary.outcome.value,
        result.status,
        result.attempts,
        summary.new,
        summary.skipped,
        summary.failed,
        int(result.elapsed * 1000),
        next_poll_at.strftime("%H:%M:%S"),
        f" error={summary.error!r}" if summary.error else "",
    )
    return summary
