"""Keyword-only data access named by intent. Callers own the session (one per unit of work)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from monitor.errors import NotFoundError
from monitor.model import ArticleDraft, Extraction, FeedHealth, FeedRef, FetchOutcome, FetchResult, Stored, TagMatch
from monitor.settings import FeedConfig, TagConfig
from monitor.store import fulltext, stories
from monitor.store.db import insert_new
from monitor.store.schema import Article, ArticleCopy, ArticleTag, FetchLog, FetchState, Source, Tag

MOVE_AFTER = 3


def sync_sources(session: Session, *, feeds: Sequence[FeedConfig], now: datetime) -> None:
    """Mirror feeds.yaml into the sources table; sources no longer configured are disabled."""
    existing = {source.name: source for source in session.scalars(select(Source))}
    for feed in feeds:
        source = existing.pop(feed.name, None)
        if source is None:
            source = Source(name=feed.name, created_at=now)
            session.add(source)
        values = {
            "title": feed.display_title,
            "url": feed.url,
            "kind": feed.kind,
            "language": feed.language,
            "countries": list(feed.countries),
            "interval_seconds": int(feed.interval.total_seconds()),
            "max_interval_seconds": int(feed.max_interval.total_seconds()),
            "enabled": feed.enabled,
        }
        if source.id is not None and source.url != feed.url:
            # The user edited the URL: a redirect learnt for the old one no longer applies.
            state = session.get(FetchState, source.id)
            if state is not None:
                state.moved_to = state.redirect_target = state.etag = state.last_modified = None
                state.next_poll_at = state.poll_interval_seconds = None
                state.redirect_streak = 0
        if any(getattr(source, key, None) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(source, key, value)
            source.updated_at = now
    for source in existing.values():
        if source.enabled:
            source.enabled = False
            source.updated_at = now
    session.flush()
    missing_state = select(Source.id).where(~Source.id.in_(select(FetchState.source_id)))
    for source_id in session.scalars(missing_state):
        session.add(FetchState(source_id=source_id, consecutive_failures=0))


def due_condition(now: datetime) -> ColumnElement[bool]:
    """Enabled feeds whose next poll time has come (or that were never polled)."""
    return and_(Source.enabled.is_(True), or_(FetchState.next_poll_at.is_(None), FetchState.next_poll_at <= now))


def due_feeds(
    session: Session,
    *,
    now: datetime,
    names: Collection[str] = (),
    include_all: bool = False,
) -> list[FeedRef]:
    """Feeds to poll now: the named ones, all enabled ones, or the enabled ones whose time has come."""
    query = select(Source, FetchState).join(FetchState, FetchState.source_id == Source.id)
    query = query.where(feed_selection(session, now=now, names=names, include_all=include_all))
    return [feed_ref(source, state) for source, state in session.execute(query.order_by(Source.name)).all()]


def feed_selection(
    session: Session, *, now: datetime, names: Collection[str] = (), include_all: bool = False
) -> ColumnElement[bool]:
    """The condition picking the named feeds (NotFoundError for an unknown name), all enabled ones, or the
    due ones."""
    if names:
        known = set(session.scalars(select(Source.name).where(Source.name.in_(names))))
        unknown = sorted(set(names) - known)
        if unknown:
            configured = ", ".join(session.scalars(select(Source.name).order_by(Source.name)))
            raise NotFoundError(f"unknown feed {unknown[0]!r} (configured: {configured or 'none'})")
        return Source.name.in_(names)
    if include_all:
        return Source.enabled.is_(True)
    return due_condition(now)


def feed_ref(source: Source, state: FetchState) -> FeedRef:
    """What refresh_feed needs to know about a feed."""
    return FeedRef(
        id=source.id,
        name=source.name,
        url=state.moved_to or source.url,
        kind=source.kind,
        language=source.language,
        interval=timedelta(seconds=source.interval_seconds),
        max_interval=timedelta(seconds=source.max_interval_seconds),
        etag=state.etag,
        last_modified=state.last_modified,
        poll_interval=timedelta(seconds=state.poll_interval_seconds) if state.poll_interval_seconds else None,
        failures=state.consecutive_failures or 0,
    )


def known_entries(
    session: Session, *, source_id: int, guids: Collection[str], canonical_urls: Collection[str]
) -> set[str]:
    """Of the given GUIDs (this source) and canonical URLs (any source), those already stored or linked as
    copies."""
    known: set[str] = set()
    for table in (Article, ArticleCopy):
        if guids:
            known.update(session.scalars(select(table.guid).where(table.source_id == source_id, table.guid.in_(guids))))
        if canonical_urls:
            known.update(session.scalars(select(table.canonical_url).where(table.canonical_url.in_(canonical_urls))))
    return known


def add_article(
    session: Session, *, draft: ArticleDraft, window: timedelta = stories.DEFAULT_WINDOW
) -> tuple[Stored, int | None]:
    """Store draft once: as a copy of an article with the same text and headline, or as a new article in
    the story of the most similar article published within window (or a story of its own).

    Returns what happened and the article's id (the original's, for a copy; None when already stored).
    The unique constraints decide, with INSERT ... ON CONFLICT DO NOTHING, so two workers racing on the
    same article store it once; story assignment is serialised (stories.lock_stories).
    """
    doc = draft.search or fulltext.document(  # before the lock: stemming is the slow part
        draft.title,
        draft.text,
        tags=[tag.id for tag in draft.tags],
        when=draft.published_at or draft.fetched_at,
        fetched_at=draft.fetched_at,
    )
    stories.lock_stories(session)
    if draft.fingerprint:
        original = stories.find_original(
            session, fingerprint=draft.fingerprint, title=draft.title, canonical_url=draft.canonical_url
        )
        if original is not None:
            linked = stories.add_copy(session, draft=draft, article_id=original)
            return (Stored.COPY, original) if linked else (Stored.KNOWN, None)
    article_id = insert_new(
        session,
        Article,
        source_id=draft.source_id,
        guid=draft.guid,
        url=draft.url,
        canonical_url=draft.canonical_url,
        title=draft.title,
        summary=draft.summary,
        text=draft.text,
        author=draft.author,
        language=draft.language,
        published_at=draft.published_at,
        fetched_at=draft.fetched_at,
        extraction=draft.extraction.value,
        extraction_error=draft.extraction_error,
        watchlist_version=draft.watchlist_version,
        content_hash=draft.fingerprint,
        story_vector=draft.features.vector if draft.features is not None else None,
        search_indexed=True,
    )
    if article_id is None:
        return Stored.KNOWN, None
    fulltext.add(session, article_id=article_id, doc=doc)
    stories.assign_story(
        session,
        article_id=article_id,
        features=draft.features,
        at=draft.published_at or draft.fetched_at,
        seen_at=draft.fetched_at,
        full_text=draft.extraction is Extraction.PAGE,
        window=window,
    )
    _insert_tags(session, article_id, draft.tags)
    return Stored.NEW, article_id


def sync_tags(session: Session, *, tags: Sequence[TagConfig]) -> None:
    """Mirror the watchlist into the tags table (tags dropped from it stay until `monitor retag`)."""
    existing = {tag.id: tag for tag in session.scalars(select(Tag))}
    for config in tags:
        tag = existing.get(config.id)
        if tag is None:
            session.add(Tag(id=config.id, kind=config.kind, name=config.name))
        elif (tag.kind, tag.name) != (config.kind, config.name):
            tag.kind, tag.name = config.kind, config.name
    session.flush()


def stale_articles(session: Session, *, version: str, after_id: int, limit: int) -> list[tuple[int, str, str]]:
    """(id, title, text) of articles tagged with another watchlist than version, by id after after_id."""
    rows = session.execute(
        select(Article.id, Article.title, Article.text)
        .where(or_(Article.watchlist_version.is_(None), Article.watchlist_version != version), Article.id > after_id)
        .order_by(Article.id)
        .limit(limit)
    ).all()
    return [(row.id, row.title, row.text) for row in rows]


def count_stale(session: Session, *, version: str) -> int:
    """How many articles `monitor retag` still has to do."""
    stale = or_(Article.watchlist_version.is_(None), Article.watchlist_version != version)
    return session.scalar(select(func.count()).select_from(Article).where(stale)) or 0


def replace_tags(session: Session, *, article_id: int, tags: Sequence[TagMatch], version: str) -> None:
    """Set an article's tags to exactly these, computed with watchlist version (and its search facets)."""
    # Under the lock a search backfill holds (fulltext.index_missing), so that it cannot index the
    # article with the tags read before this replaced them: a search trusts the facets as the tags.
    stories.lock_stories(session)
    old_tags = fulltext.article_tags(session, [article_id]).get(article_id, [])
    session.execute(delete(ArticleTag).where(ArticleTag.article_id == article_id))
    _insert_tags(session, article_id, tags)
    session.execute(update(Article).where(Article.id == article_id).values(watchlist_version=version))
    new_tags = [tag.id for tag in tags]
    if sorted(set(old_tags)) == sorted(set(new_tags)):
        return
    article = session.get(Article, article_id)
    if article is None or not article.search_indexed:
        return  # the backfill indexes it with its new tags
    when, fetched_at = article.published_at or article.fetched_at, article.fetched_at
    old = fulltext.document(article.title, article.text, tags=old_tags, when=when, fetched_at=fetched_at)
    facets = fulltext.facets_of(tags=new_tags, when=when, fetched_at=fetched_at)
    new = replace(old, facets=facets)
    fulltext.replace(session, article_id=article_id, old=old, new=new)


def _insert_tags(session: Session, article_id: int, tags: Sequence[TagMatch]) -> None:
    if tags:
        session.execute(
            insert(ArticleTag),
            [
                {"article_id": article_id, "tag_id": t.id, "count": t.count, "score": t.score, "snippet": t.snippet}
                for t in tags
            ],
        )


def record_fetch(
    session: Session,
    *,
    feed: FeedRef,
    result: FetchResult,
    started_at: datetime,
    new_items: int,
    next_poll_at: datetime,
    poll_interval: timedelta | None = None,
    error: str | None = None,
    worker: str | None = None,
) -> str | None:
    """Log one feed fetch and update the feed's health; return the feed's new URL when it just moved.

    Call this after the feed's new items are committed: validators advance only here, so if the process
    dies first, the old validators make the next poll fetch the feed again instead of a 304 losing items.
    """
    outcome = FetchOutcome.HARD_ERROR if error and not result.outcome.failed else result.outcome
    message = error or result.error
    state = session.get(FetchState, feed.id)
    if state is None:
        state = FetchState(source_id=feed.id, consecutive_failures=0, redirect_streak=0)
        session.add(state)
    log_row = FetchLog(
        source_id=feed.id,
        started_at=started_at,
        url=result.url,
        outcome=outcome.value,
        status=result.status,
        elapsed_ms=int(result.elapsed * 1000),
        attempts=result.attempts,
        new_items=new_items,
        error=message,
    )
    if worker is not None and state.leased_by not in (None, worker):
        # Our lease ran out mid-poll (a database outage, a paused process) and another worker took the feed
        # over: it records the feed's state; ours goes to the log only, and the validators stay theirs.
        session.add(log_row)
        return None
    state.last_attempt_at = started_at
    state.last_outcome = outcome.value
    if worker is not None:
        state.leased_by = state.lease_until = None  # done: the feed is free for its next due time
    state.next_poll_at = next_poll_at
    if poll_interval is not None:
        state.poll_interval_seconds = int(poll_interval.total_seconds())
    moved_to = None
    if outcome.failed:
        state.last_error = message
        state.consecutive_failures = (state.consecutive_failures or 0) + 1
    else:
        state.last_success_at = started_at
        state.consecutive_failures = 0
        if result.outcome is FetchOutcome.OK:
            state.etag = result.etag
            state.last_modified = result.last_modified
        moved_to = _follow_permanent_redirect(state, result.permanent_redirect, current=feed.url)
    session.add(log_row)
    return moved_to


def _follow_permanent_redirect(state: FetchState, target: str | None, *, current: str) -> str | None:
    """Adopt a 301/308 target once it has been seen MOVE_AFTER times in a row (a one-off may be a mistake)."""
    if target is None or target == current:
        state.redirect_target, state.redirect_streak = None, 0
        return None
    if state.redirect_target == target:
        state.redirect_streak = (state.redirect_streak or 0) + 1
    else:
        state.redirect_target, state.redirect_streak = target, 1
    if state.redirect_streak >= MOVE_AFTER:
        state.moved_to, state.redirect_target, state.redirect_streak = target, None, 0
        return target
    return None


def prune_fetch_log(session: Session, *, before: datetime) -> int:
    """Delete fetch records older than before; return how many."""
    result = session.execute(delete(FetchLog).where(FetchLog.started_at < before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


UNHEALTHY_AFTER = 3


def feed_health(session: Session, *, now: datetime) -> list[FeedHealth]:
    """Every configured source with its schedule and health, by name."""
    week_ago = now - timedelta(days=7)
    recent = (
        select(Article.source_id, func.count().label("recent_items"))
        .where(func.coalesce(Article.published_at, Article.fetched_at) >= week_ago)
        .group_by(Article.source_id)
        .subquery()
    )
    rows = session.execute(
        select(Source, FetchState, recent.c.recent_items)
        .outerjoin(FetchState, FetchState.source_id == Source.id)
        .outerjoin(recent, recent.c.source_id == Source.id)
        .order_by(Source.name)
    ).all()
    return [_health(source, state, items or 0) for source, state, items in rows]


def _health(source: Source, state: FetchState | None, items: int) -> FeedHealth:
    failures = state.consecutive_failures if state else 0
    if not source.enabled:
        status = "disabled"
    elif state is None or state.last_attempt_at is None:
        status = "never polled"
    elif failures >= UNHEALTHY_AFTER:
        status = "unhealthy"
    elif failures:
        status = "failing"
    else:
        status = "ok"
    return FeedHealth(
        name=source.name,
        title=source.title,
        url=(state.moved_to if state and state.moved_to else None) or source.url,
        configured_url=source.url,
        enabled=source.enabled,
        status=status,
        last_success_at=state.last_success_at if state else None,
        last_attempt_at=state.last_attempt_at if state else None,
        last_outcome=state.last_outcome if state else None,
        last_error=state.last_error if state and failures else None,
        consecutive_failures=failures,
        items_last_7_days=items,
        next_poll_at=state.next_poll_at if state else None,
        poll_interval=timedelta(seconds=state.poll_interval_seconds)
        if state and state.poll_interval_seconds
        else timedelta(seconds=source.interval_seconds),
    )
