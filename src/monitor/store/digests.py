"""The digest ledger: windows, their sending state, and the stories each subscription has received.

A run is one (subscription, window) row: created pending (the unique constraint makes that once per
cluster), claimed for sending by one worker (pending -> sending), then sent with its Message-ID, or back to
pending with a later next attempt. Each story sent is recorded against the subscription, so it is never
sent to it again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from monitor.store.db import insert_new
from monitor.store.schema import Article, ArticleTag, DigestRun, DigestStory, Tag

# A run left "sending" this long (its worker died mid-send) is pending again.
STALE_SENDING = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Run:
    """A ledger row, as the sender needs it."""

    id: int
    subscription: str
    window_start: datetime
    window_end: datetime
    attempts: int
    message_id: str | None


@dataclass(frozen=True, slots=True)
class StoryTag:
    """A watchlist tag on a story: its strongest score and snippet among the story's articles."""

    id: str
    kind: str
    name: str
    score: float
    snippet: str | None


def last_window_end(session: Session, *, subscription: str) -> datetime | None:
    """Where the subscription's latest window ended (sent or not), if it has one."""
    return session.scalar(select(func.max(DigestRun.window_end)).where(DigestRun.subscription == subscription))


def open_run(session: Session, *, subscription: str, start: datetime, end: datetime, now: datetime) -> int | None:
    """Create the pending run for this window; None when it exists already (another worker made it)."""
    return insert_new(
        session,
        DigestRun,
        subscription=subscription,
        window_start=start,
        window_end=end,
        status="pending",
        attempts=0,
        stories=0,
        created_at=now,
    )


def due_runs(session: Session, *, now: datetime, subscriptions: Collection[str]) -> list[Run]:
    """Runs to send now: pending ones whose next attempt has come, and ones stuck sending, oldest first."""
    rows = session.scalars(
        select(DigestRun)
        .where(
            DigestRun.subscription.in_(subscriptions),
            or_(
                (DigestRun.status == "pending")
                & or_(DigestRun.next_attempt_at.is_(None), DigestRun.next_attempt_at <= now),
                (DigestRun.status == "sending") & (DigestRun.next_attempt_at <= now - STALE_SENDING),
            ),
        )
        .order_by(DigestRun.window_end)
    )
    return [Run(r.id, r.subscription, r.window_start, r.window_end, r.attempts, r.message_id) for r in rows]


def claim_run(session: Session, *, run: Run, worker: str, message_id: str, now: datetime) -> bool:
    """Take run for sending (one worker wins); its Message-ID is fixed here, so a resend reuses it."""
    earlier = aliased(DigestRun)
    unsent_before = (
        select(earlier.id)
        .where(
            earlier.subscription == run.subscription,
            earlier.status != "sent",
            earlier.window_end < run.window_end,
        )
        .exists()
    )
    result = session.execute(
        update(DigestRun)
        .where(
            DigestRun.id == run.id,
            or_(
                DigestRun.status == "pending",
                (DigestRun.status == "sending") & (DigestRun.next_attempt_at <= now - STALE_SENDING),
            ),
            ~unsent_before,
        )
        .values(status="sending", worker=worker, next_attempt_at=now, message_id=run.message_id or message_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def message_id_of(session: Session, *, run_id: int) -> str:
    """The Message-ID fixed when the run was first claimed."""
    value = session.scalar(select(DigestRun.message_id).where(DigestRun.id == run_id))
    if value is None:
        raise LookupError(f"digest run {run_id} has no Message-ID; claim it first")
    return value


def mark_sent(
    session: Session,
    *,
    run_id: int,
    worker: str,
    subscription: str,
    story_ids: Sequence[int],
    failed_recipients: dict[str, str],
    now: datetime,
) -> bool:
    """Record the run as sent and its stories as received by the subscription (only while worker still
    holds the run: a worker whose claim went stale and was taken over records nothing)."""
    result = session.execute(
        update(DigestRun)
        .where(DigestRun.id == run_id, DigestRun.status == "sending", DigestRun.worker == worker)
        .values(
            status="sent",
            sent_at=now,
            stories=len(story_ids),
            failed_recipients=failed_recipients or None,
            error=None,
            attempts=DigestRun.attempts + 1,
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    already = set(
        session.scalars(
            select(DigestStory.story_id).where(
                DigestStory.subscription == subscription, DigestStory.story_id.in_(story_ids)
            )
        )
    )
    fresh = [story_id for story_id in dict.fromkeys(story_ids) if story_id not in already]
    if fresh:
        session.execute(
            insert(DigestStory), [{"subscription": subscription, "story_id": s, "run_id": run_id} for s in fresh]
        )
    return True


def mark_failed(session: Session, *, run_id: int, worker: str, error: str, retry_at: datetime) -> None:
    """Put the run back to pending, to be tried again at retry_at (unless another worker has taken it)."""
    session.execute(
        update(DigestRun)
        .where(DigestRun.id == run_id, DigestRun.status == "sending", DigestRun.worker == worker)
        .values(status="pending", error=error, next_attempt_at=retry_at, attempts=DigestRun.attempts + 1)
    )


def story_tags(session: Session, *, story_ids: Collection[int]) -> dict[int, list[StoryTag]]:
    """Each story's tags with their best score and snippet across its articles, strongest first."""
    best: dict[int, dict[str, StoryTag]] = defaultdict(dict)
    rows = session.execute(
        select(Article.story_id, ArticleTag.tag_id, Tag.kind, Tag.name, ArticleTag.score, ArticleTag.snippet)
        .join(ArticleTag, ArticleTag.article_id == Article.id)
        .join(Tag, Tag.id == ArticleTag.tag_id)
        .where(Article.story_id.in_(story_ids))
    )
    for story_id, tag_id, kind, name, score, snippet in rows:
        if story_id is None:
            continue
        current = best[story_id].get(tag_id)
        if current is None or score > current.score:
            best[story_id][tag_id] = StoryTag(tag_id, kind, name, score, snippet)
    return {story: sorted(tags.values(), key=lambda t: (-t.score, t.id)) for story, tags in best.items()}
