"""Benchmark the scheduler's claim of due feeds: what one `monitor run` tick costs the database.

    cd /work/main && .venv/bin/python bench/bench_claim.py [--feeds 5000] [--ticks 200] [--postgres URL]

Issue 6's target: with 5,000 configured feeds, claiming the due ones costs under 50 ms per tick, on SQLite
and on PostgreSQL. A tick is what Service.claim_tick does against the database: one transaction that
leases up to 16 due feeds (`SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL), and one that reads the
backlog for the metrics. The feeds' next poll times are spread so that about 1 in 10 is due at any tick,
and each claimed feed is "polled" at once (record_fetch: the lease ends, the next time moves on by its
interval), as in a steady state. The baseline is `SELECT 1` in a transaction on the same database in the
same run: the ratio is the claim's own cost over a round trip.

Exit status: 0 when the target is met on every backend measured, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from benchkit import Figure, Target, add_json_option, peak_rss, source_revision, write_result

from monitor.model import FetchOutcome, FetchResult
from monitor.settings import FeedConfig
from monitor.store import leases, repository
from monitor.store.db import Database, open_database, upgrade
from monitor.store.schema import FetchState, Source

TARGET_MS = 50.0
CAPACITY = 16


def seed(database: Database, feeds: int, now: datetime) -> None:
    """feeds sources, their next poll times spread from 90 s ago to 15 min ahead (a 15 min interval)."""
    configs = [
        FeedConfig(name=f"feed{n:05d}", url=f"https://feed{n}.example/rss", interval="15m") for n in range(feeds)
    ]
    with database.session() as session:
        repository.sync_sources(session, feeds=configs, now=now)
    rng = random.Random(5)
    with database.session() as session:
        ids = list(session.scalars(sa.select(FetchState.source_id)))
        session.execute(
            sa.update(FetchState),
            [
                {"source_id": i, "next_poll_at": now + timedelta(seconds=rng.uniform(-90, 900)), "last_outcome": "ok"}
                for i in ids
            ],
        )


def tick(database: Database, worker: str, now: datetime) -> int:
    """One claim tick as the service does it, then the claimed feeds recorded as polled."""
    with database.session() as session:
        claimed = leases.claim_feeds(session, worker=worker, now=now, ttl=timedelta(minutes=5), limit=CAPACITY)
    with database.session() as session:
        leases.backlog(session, now=now)
    return len(claimed) if claimed else 0


def poll_all(database: Database, worker: str, now: datetime) -> None:
    with database.session() as session:
        held = session.execute(sa.select(FetchState.source_id).where(FetchState.leased_by == worker)).scalars().all()
        for source_id in held:
            feed = repository.feed_ref(session.get_one(Source, source_id), session.get_one(FetchState, source_id))
            repository.record_fetch(
                session,
                feed=feed,
                result=FetchResult(feed.url, FetchOutcome.NOT_MODIFIED, status=304),
                started_at=now,
                new_items=0,
                next_poll_at=now + timedelta(minutes=15),
                worker=worker,
            )


def baseline(database: Database) -> None:
    with database.session() as session:
        session.execute(sa.text("SELECT 1"))


def timed(action: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        action()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def measure(url: str, feeds: int, ticks: int) -> dict[str, float]:
    database = open_database(url, migrate=False)
    upgrade(database)
    now = datetime.now(UTC)
    seed(database, feeds, now)
    if database.engine.dialect.name == "postgresql":
        with database.engine.connect() as connection:
            connection.execute(sa.text("ANALYZE"))
            connection.commit()
    worker = f"run:bench:{os.getpid()}:0000"
    claim_ms: list[float] = []
    claimed = 0
    for n in range(ticks):
        moment = now + timedelta(seconds=15 * n / 10)
        began = time.perf_counter()
        claimed += tick(database, worker, moment)
        claim_ms.append((time.perf_counter() - began) * 1000)
        poll_all(database, worker, moment)
    base_ms = timed(lambda: baseline(database), ticks)
    database.dispose()
    if claimed == 0:
        raise SystemExit("no feed was ever claimed: the benchmark measured nothing")
    median, p95 = statistics.median(claim_ms), statistics.quantiles(claim_ms, n=20)[18]
    return {
        "median_ms": median,
        "p95_ms": p95,
        "max_ms": max(claim_ms),
        "slowest_tick": claim_ms.index(max(claim_ms)) + 1,
        "baseline_ms": statistics.median(base_ms),
        "ratio": median / statistics.median(base_ms),
        "claimed": claimed,
    }


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    admin = sa.create_engine(admin_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    name = f"monitor_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=5000)
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument(
        "--postgres",
        nargs="?",
        const="postgresql://postgres@127.0.0.1:5432/postgres",
        help="also measure PostgreSQL (admin URL; a fresh database is created and dropped)",
    )
    add_json_option(parser)
    args = parser.parse_args(argv)
    revision = source_revision()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        results["sqlite"] = measure(f"sqlite:///{Path(folder) / 'bench.db'}", args.feeds, args.ticks)
    if args.postgres:
        with postgres_database(args.postgres) as url:
            results["postgresql"] = measure(url, args.feeds, args.ticks)
    print(f"claim of due feeds, {args.feeds} feeds, {args.ticks} ticks, {os.cpu_count()} cores")
    print("| backend | median per tick | p95 | slowest (tick #) | `SELECT 1` baseline | ratio | feeds claimed |")
    print("|---|---|---|---|---|---|---|")
    for backend, r in results.items():
        print(
            f"| {backend} | {r['median_ms']:.1f} ms | {r['p95_ms']:.1f} ms | "
            f"{r['max_ms']:.1f} ms (#{r['slowest_tick']:.0f}) | "
            f"{r['baseline_ms']:.2f} ms | {r['ratio']:.0f}x | {r['claimed']:.0f} |"
        )
    met = all(r["p95_ms"] < TARGET_MS for r in results.values())
    print(f"target: p95 under {TARGET_MS:.0f} ms per tick: {'met' if met else 'MISSED'}")
    figures = [
        Figure(
            name="claim tick",
            backend=backend,
            value=r["median_ms"],
            unit="ms",
            statistic=f"median of {args.ticks} ticks, {args.feeds} feeds",
            target=Target(f"p95 < {TARGET_MS:g} ms", TARGET_MS, "ms", r["p95_ms"] < TARGET_MS, observed=r["p95_ms"]),
            baseline=r["baseline_ms"],
            baseline_name="SELECT 1 in a transaction",
            ratio=r["ratio"],
        )
        for backend, r in results.items()
    ]
    return write_result(
        args.json,
        benchmark="claim",
        status=0 if met else 1,
        revision=revision,
        figures=figures,
        memory=peak_rss(children=False),
    )


if __name__ == "__main__":
    sys.exit(main())
