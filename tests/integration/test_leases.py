"""Feed leases on SQLite and PostgreSQL: who may poll a due feed, and when a held feed becomes free."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from monitor.model import FetchOutcome, FetchResult
from monitor.settings import FeedConfig
from monitor.store import leases, repository
from monitor.store.db import Database
from monitor.store.schema import FetchLog, FetchState

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TTL = timedelta(minutes=5)
HOST = leases.local_host()


@pytest.fixture
def feeds(database: Database) -> Database:
    with database.session() as session:
        repository.sync_sources(
            session, feeds=[FeedConfig(name=f"f{n}", url=f"https://f{n}.example/rss") for n in range(6)], now=NOW
        )
    return database


def _claim(database: Database, worker: str, *, now: datetime = NOW, limit: int | None = None) -> list[str]:
    with database.session() as session:
        return [f.name for f in leases.claim_feeds(session, worker=worker, now=now, ttl=TTL, limit=limit)]


def test_a_claimed_feed_is_not_claimed_again_until_polled_or_expired(feeds: Database) -> None:
    first = _claim(feeds, "run:hostA:1:aaaa", limit=4)
    second = _claim(feeds, "run:hostB:2:bbbb")

    assert len(first) == 4
    assert sorted(first + second) == [f"f{n}" for n in range(6)]  # each feed to exactly one worker
    assert _claim(feeds, "run:hostC:3:cccc") == []
    # hostA stops renewing (it died, on another machine): its feeds are free once the lease runs out.
    assert sorted(_claim(feeds, "run:hostC:3:cccc", now=NOW + TTL + timedelta(seconds=1))) == sorted(first + second)


def test_polling_ends_the_lease_and_moves_the_feed_to_its_next_due_time(feeds: Database) -> None:
    worker = "run:hostA:1:aaaa"
    with feeds.session() as session:
        (feed,) = leases.claim_feeds(session, worker=worker, now=NOW, ttl=TTL, limit=1)
    with feeds.session() as session:
        repository.record_fetch(
            session,
            feed=feed,
            result=FetchResult(feed.url, FetchOutcome.NOT_MODIFIED, status=304),
            started_at=NOW,
            new_items=0,
            next_poll_at=NOW + timedelta(hours=1),
            worker=worker,
        )
        state = session.get(FetchState, feed.id)
        assert state is not None
        assert (state.leased_by, state.lease_until) == (None, None)
    # Not due again before its next time, whoever asks, even after the old lease would have expired.
    later = NOW + TTL + timedelta(minutes=1)
    assert feed.name not in _claim(feeds, "run:hostB:2:bbbb", now=later)


def test_renew_keeps_and_release_frees(feeds: Database) -> None:
    worker = "run:hostA:1:aaaa"
    claimed = _claim(feeds, worker, limit=2)
    with feeds.session() as session:
        ids = list(session.scalars(sa.select(FetchState.source_id).where(FetchState.leased_by == worker)))
        assert leases.renew(session, worker=worker, feed_ids=ids, until=NOW + 3 * TTL) == 2
        assert leases.renew(session, worker="someone-else", feed_ids=ids, until=NOW + 3 * TTL) == 0
    assert not set(claimed) & set(_claim(feeds, "run:hostB:2:bbbb", now=NOW + 2 * TTL))
    with feeds.session() as session:
        assert leases.release(session, worker=worker) == 2
    assert sorted(_claim(feeds, "run:hostC:3:cccc", now=NOW + 2 * TTL)) == sorted(claimed)


def test_a_dead_process_on_this_host_holds_nothing(feeds: Database) -> None:
    dead_pid = 2**22 + 12345  # above pid_max on Linux: no such process
    assert len(_claim(feeds, f"run:{HOST}:{dead_pid}:dead", limit=3)) == 3
    # Its feeds need not wait for the lease to expire; a live process's leases (this one's) hold.
    assert len(_claim(feeds, f"run:{HOST}:{os.getpid()}:live")) == 6
    assert _claim(feeds, "run:hostB:2:bbbb") == []


def test_concurrent_claims_never_hand_out_a_feed_twice(feeds: Database) -> None:
    start = threading.Barrier(6)
    got: list[list[str]] = []

    def claim(n: int) -> None:
        start.wait()
        got.append(_claim(feeds, f"run:host{n}:{n}:xxxx", limit=2))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [name for names in got for name in names]
    assert sorted(everything) == sorted(set(everything)) == [f"f{n}" for n in range(6)]


def test_backlog_counts_due_unclaimed_feeds_and_the_oldest_lag(feeds: Database) -> None:
    with feeds.session() as session:
        session.execute(sa.update(FetchState).values(next_poll_at=NOW - timedelta(minutes=10)))
    _claim(feeds, "run:hostA:1:aaaa", limit=2)
    with feeds.session() as session:
        backlog = leases.backlog(session, now=NOW)
    assert backlog.due == 4
    assert backlog.oldest_lag_seconds == 600


def test_old_fetch_records_are_pruned(feeds: Database) -> None:
    with feeds.session() as session:
        source_id = session.scalars(sa.select(FetchState.source_id).limit(1)).one()
        for days in (1, 40, 90):
            session.add(
                FetchLog(
                    source_id=source_id,
                    started_at=NOW - timedelta(days=days),
                    url="u",
                    outcome="ok",
                    elapsed_ms=1,
                    attempts=1,
                    new_items=0,
                )
            )
    with feeds.session() as session:
        assert repository.prune_fetch_log(session, before=NOW - timedelta(days=30)) == 2
        assert session.scalar(sa.select(sa.func.count()).select_from(FetchLog)) == 1


def test_once_per_cluster_work_runs_once_per_due_time(database: Database) -> None:
    due = NOW.replace(minute=0)
    with database.session() as session:
        assert leases.run_once(session, job="maintenance", due_at=due, worker="a", now=NOW)
    with database.session() as session:
        assert not leases.run_once(session, job="maintenance", due_at=due, worker="b", now=NOW)
        assert leases.run_once(session, job="maintenance", due_at=due + timedelta(hours=1), worker="b", now=NOW)
        assert leases.run_once(session, job="digest:morning", due_at=due, worker="b", now=NOW)


def test_a_poll_whose_lease_was_taken_over_does_not_overwrite_the_new_holder(feeds: Database) -> None:
    with feeds.session() as session:
        (feed,) = leases.claim_feeds(session, worker="run:hostA:1:aaaa", now=NOW, ttl=TTL, limit=1)
    # hostA stalls past its lease; hostB takes the feed over.
    later = NOW + TTL + timedelta(seconds=1)
    with feeds.session() as session:
        (taken,) = leases.claim_feeds(session, worker="run:hostB:2:bbbb", now=later, ttl=TTL, limit=1)
        assert taken.id == feed.id
    with feeds.session() as session:
        repository.record_fetch(
            session,
            feed=feed,
            result=FetchResult(feed.url, FetchOutcome.OK, status=200, etag='"stale"'),
            started_at=NOW,
            new_items=0,
            next_poll_at=NOW + timedelta(hours=6),
            worker="run:hostA:1:aaaa",
        )
    with feeds.session() as session:
        state = session.get(FetchState, feed.id)
        assert state is not None
        assert (state.leased_by, state.etag, state.next_poll_at) == ("run:hostB:2:bbbb", None, None)
        assert session.scalar(sa.select(sa.func.count()).select_from(FetchLog)) == 1  # still logged
