"""Feed leases: how several workers sharing one database split the feeds, each due feed polled by one.

A worker claims due feeds by stamping them with its id and a lease expiry, in one transaction that skips
rows another worker is claiming at the same moment (PostgreSQL `SELECT ... FOR UPDATE SKIP LOCKED`; SQLite
has one writer at a time anyway). Recording the poll (repository.record_fetch) ends the lease and moves the
feed's next poll time on, so the same due time is never polled twice. A worker renews the leases of the
feeds it is still polling; one that dies stops renewing, and its feeds are claimed by another worker once
the leases expire.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from monitor.model import FeedRef
from monitor.store.db import take_write_lock
from monitor.store.repository import due_condition, feed_ref, feed_selection
from monitor.store.schema import FetchState, JobRun, Source

DEFAULT_TTL = timedelta(minutes=5)


def claim_feeds(
    session: Session,
    *,
    worker: str,
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
    limit: int | None = None,
    names: Collection[str] = (),
    include_all: bool = False,
) -> list[FeedRef]:
    """Lease up to limit feeds to worker: the due ones (or named, or all enabled) that no live lease holds,
    most overdue first."""
    take_write_lock(session)  # SQLite: no other claim between our read and our write
    free = or_(
        FetchState.lease_until.is_(None),
        FetchState.lease_until <= now,
        FetchState.leased_by.in_(_dead_local_workers(session, now=now)),
    )
    chosen = (
        select(FetchState.source_id)
        .join(Source, Source.id == FetchState.source_id)
        .where(free, feed_selection(session, now=now, names=names, include_all=include_all))
        .order_by(FetchState.next_poll_at.asc().nulls_first(), FetchState.source_id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        chosen = chosen.with_for_update(skip_locked=True, of=FetchState)
    ids = list(session.scalars(chosen))
    if not ids:
        return []
    session.execute(
        update(FetchState).where(FetchState.source_id.in_(ids)).values(leased_by=worker, lease_until=now + ttl)
    )
    rows = session.execute(
        select(Source, FetchState).join(FetchState, FetchState.source_id == Source.id).where(Source.id.in_(ids))
    ).all()
    order = {source_id: index for index, source_id in enumerate(ids)}
    return sorted((feed_ref(source, state) for source, state in rows), key=lambda feed: order[feed.id])


def _dead_local_workers(session: Session, *, now: datetime) -> list[str]:
    """Holders of live leases that are processes of this host no longer running (killed, crashed): their
    leases need not be waited out. Worker ids are role:host:pid:suffix (refresh.worker_id)."""
    holders = session.scalars(
        select(FetchState.leased_by).where(FetchState.lease_until > now, FetchState.leased_by.is_not(None)).distinct()
    )
    host = local_host()
    dead = []
    for holder in holders:
        parts = (holder or "").split(":")
        if len(parts) == 4 and parts[1] == host and parts[2].isdigit() and not _running(int(parts[2])):
            dead.append(holder or "")
    return dead


def local_host() -> str:
    """This process's host as worker ids name it: the host name and the pid namespace, so that containers
    sharing a host name never judge each other's processes by pid."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return f"{socket.gethostname()}/{namespace}"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return True


def renew(session: Session, *, worker: str, feed_ids: Collection[int], until: datetime) -> int:
    """Extend worker's leases on feed_ids (the feeds it is still polling); return how many it still holds."""
    if not feed_ids:
        return 0
    result = session.execute(
        update(FetchState)
        .where(FetchState.source_id.in_(feed_ids), FetchState.leased_by == worker)
        .values(lease_until=until)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def release(session: Session, *, worker: str, feed_ids: Collection[int] | None = None) -> int:
    """Give up worker's leases (all, or on feed_ids) without polling: the feeds stay due for anyone."""
    statement = update(FetchState).where(FetchState.leased_by == worker)
    if feed_ids is not None:
        statement = statement.where(FetchState.source_id.in_(feed_ids))
    result = session.execute(statement.values(leased_by=None, lease_until=None))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Backlog:
    """Due feeds no worker holds: how many, and how late the most overdue one is."""

    due: int
    oldest_lag_seconds: float


def backlog(session: Session, *, now: datetime) -> Backlog:
    """The queue of due, unclaimed feeds (for metrics)."""
    free = or_(FetchState.lease_until.is_(None), FetchState.lease_until <= now)
    row = session.execute(
        select(func.count(), func.min(FetchState.next_poll_at))
        .select_from(FetchState)
        .join(Source, Source.id == FetchState.source_id)
        .where(free, due_condition(now))
    ).one()
    count, oldest = row
    lag = (now - oldest).total_seconds() if oldest is not None else 0.0
    return Backlog(due=int(count or 0), oldest_lag_seconds=max(0.0, lag))


def run_once(session: Session, *, job: str, due_at: datetime, worker: str, now: datetime) -> bool:
    """Claim the run of job due at due_at for worker; False when another worker already has it. Work that
    must happen once per cluster (a digest, maintenance) runs only when this says True."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(JobRun)
        .values(name=job, due_at=due_at, worker=worker, started_at=now)
        .on_conflict_do_nothing()
        .returning(JobRun.name)
    )
    return session.execute(statement).scalar_one_or_none() is not None
