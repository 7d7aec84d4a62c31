"""Scale-out and crash safety with real processes: three `monitor run` workers sharing one PostgreSQL database
split 60 feeds, one is killed with SIGKILL and the others take its feeds over, the survivors stop on SIGTERM
within the grace period; on SQLite, one worker killed and restarted, and a second worker refused."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import FeedServer, run_cli, write_feeds
from feedbuilders import rss2

pytestmark = pytest.mark.slow
FEEDS = 60
ITEMS = 2
PAGE = "<html><body><article><h1>{title}</h1><p>{text}</p></article></body></html>"


def _worker(database_url: str, config_dir: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    environment.update(
        MONITOR_ALLOW_PRIVATE_NETWORKS="1",
        MONITOR_HOST_DELAY="0",
        MONITOR_PER_HOST="4",
        MONITOR_LEASE_TTL="4s",
        MONITOR_SHUTDOWN_GRACE="3s",
        **env,
    )
    argv = [sys.executable, "-m", "monitor", "--database-url", database_url, "--config-dir", str(config_dir)]
    return subprocess.Popen(
        [*argv, "run", "--tick", "1s", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def _wait_for(condition: Callable[[], bool], timeout: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not met within {timeout} s")


def _outlets(server: FeedServer, tmp_path: Path, *, page_delay: float) -> Path:
    """FEEDS feeds of ITEMS items each; every page answers after page_delay seconds."""
    entries = []
    for feed in range(FEEDS):
        items = []
        for item in range(ITEMS):
            title = f"Feed {feed} item {item}"
            text = f"Report number {item} of outlet {feed}, about the Caspian ferry line and its timetable. " * 8
            link = server.add(f"/p/{feed}-{item}.html", PAGE.format(title=title, text=text), delay=page_delay)
            published = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(days=feed, hours=item)
            items.append({"title": title, "link": link, "guid": f"{feed}-{item}", "published": published})
        url = server.add(f"/f/{feed}.xml", rss2(items), content_type="application/rss+xml")
        entries.append({"name": f"outlet{feed:02d}", "url": url, "interval": "1h"})
    return write_feeds(tmp_path / "config", entries)


def _scalar(database_url: str, query: str, **params: object) -> int:
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text(query), params).scalar() or 0)
    finally:
        engine.dispose()


def _articles(database_url: str) -> int:
    return _scalar(database_url, "select count(*) from articles")


def _leased_by(database_url: str, pid: int) -> set[str]:
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "select s.name from fetch_state f join sources s on s.id = f.source_id "
                    "where f.leased_by like :pattern and f.lease_until > :now"
                ),
                {"pattern": f"run:%:{pid}:%", "now": datetime.now(UTC)},
            )
            return {row[0] for row in rows}
    finally:
        engine.dispose()


def _feed_hits(server: FeedServer) -> dict[int, int]:
    counts = dict.fromkeys(range(FEEDS), 0)
    for request in server.requests:
        match = re.fullmatch(r"/f/(\d+)\.xml", request.path)
        if match:
            counts[int(match.group(1))] += 1
    return counts


def _stop(worker: subprocess.Popen[str], *, within: float) -> str:
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=60)
    took = time.monotonic() - started
    assert worker.returncode == 0, stderr[-2000:]
    assert took < within, f"SIGTERM took {took:.1f} s"
    return stderr


def test_three_workers_share_the_feeds_and_survive_a_sigkill(
    server: FeedServer, postgres_url: str, tmp_path: Path
) -> None:
    config = _outlets(server, tmp_path, page_delay=0.4)
    assert run_cli("db", "upgrade", database_url=postgres_url).exit_code == 0
    victim = _worker(postgres_url, config)
    workers = [victim]
    try:
        # The victim first (so that it surely holds feeds however loaded the machine), then two more.
        _wait_for(lambda: len(_leased_by(postgres_url, victim.pid)) >= 2, what="the victim holding feeds")
        workers += [_worker(postgres_url, config) for _ in range(2)]
        _wait_for(
            lambda: _scalar(postgres_url, "select count(distinct leased_by) from fetch_state") >= 2,
            what="a second worker claiming feeds",
        )
        # Kill it while it holds feeds half-polled.
        _wait_for(lambda: len(_leased_by(postgres_url, victim.pid)) >= 1, what="the victim holding feeds again")
        held = _leased_by(postgres_url, victim.pid)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)

        _wait_for(lambda: _articles(postgres_url) == FEEDS * ITEMS, what="every item stored")
        _wait_for(
            lambda: _scalar(postgres_url, "select count(*) from fetch_state where leased_by is not null") == 0,
            what="every lease ended",
        )
        time.sleep(2.5)  # more ticks: nothing is due again for an hour, so nothing more is fetched
    finally:
        survivors = [w for w in workers[1:] if w.poll() is None]
        stderrs = [_stop(worker, within=3 + 6) for worker in survivors]
        for worker in workers:
            if worker.poll() is None:
                worker.kill()

    held_numbers = {int(name.removeprefix("outlet")) for name in held}
    hits = _feed_hits(server)
    # Exactly once per due time; a feed the victim held half-polled is taken over and fetched once more.
    assert {feed: n for feed, n in hits.items() if feed not in held_numbers} == {
        feed: 1 for feed in range(FEEDS) if feed not in held_numbers
    }
    assert all(hits[feed] in (1, 2) for feed in held_numbers)
    assert any(hits[feed] == 2 for feed in held_numbers)  # the takeover did happen
    # Every item stored once, every feed recorded once as polled successfully.
    assert _articles(postgres_url) == FEEDS * ITEMS
    assert _scalar(postgres_url, "select count(distinct canonical_url) from articles") == FEEDS * ITEMS
    assert _scalar(postgres_url, "select count(*) from fetch_state where last_outcome = 'ok'") == FEEDS
    # The survivors carried on (both ran to the end; at least one took feeds over).
    assert len(survivors) == 2
    assert any("job=claim" in stderr for stderr in stderrs)


def test_sigterm_finishes_within_the_grace_period_and_releases_its_leases(
    server: FeedServer, postgres_url: str, tmp_path: Path
) -> None:
    config = _outlets(server, tmp_path, page_delay=20.0)  # pages that outlast the grace period
    assert run_cli("db", "upgrade", database_url=postgres_url).exit_code == 0
    worker = _worker(postgres_url, config)
    _wait_for(lambda: len(_leased_by(postgres_url, worker.pid)) >= 1, what="feeds claimed")

    stderr = _stop(worker, within=3 + 6)

    assert "service=stopped" in stderr
    assert _scalar(postgres_url, "select count(*) from fetch_state where leased_by is not null") == 0
    # Abandoned feeds stay due: nothing of theirs was lost, the next worker polls them at once.
    assert _scalar(postgres_url, "select count(*) from fetch_state where next_poll_at > now()") == 0


def test_sqlite_worker_killed_and_restarted_loses_nothing_and_refuses_a_twin(
    server: FeedServer, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'monitor.db'}"
    config = _outlets(server, tmp_path, page_delay=0.2)
    assert run_cli("db", "upgrade", database_url=database_url).exit_code == 0
    first = _worker(database_url, config)
    try:
        _wait_for(lambda: _articles(database_url) >= 10, what="some items stored")
        twin = _worker(database_url, config)
        _, twin_err = twin.communicate(timeout=60)
        assert twin.returncode == 1
        assert twin_err.splitlines()[-1].startswith("monitor: error: another `monitor run` is already using")
        assert "Traceback" not in twin_err
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        stored = _articles(database_url)
        assert stored < FEEDS * ITEMS

        second = _worker(database_url, config)
        _wait_for(lambda: _articles(database_url) == FEEDS * ITEMS, what="every item stored after the restart")
        _stop(second, within=3 + 6)
    finally:
        for process in (first,):
            if process.poll() is None:
                process.kill()
    assert _scalar(database_url, "select count(distinct canonical_url) from articles") == FEEDS * ITEMS
    assert _scalar(database_url, "select count(*) from fetch_state where leased_by is not null") == 0
