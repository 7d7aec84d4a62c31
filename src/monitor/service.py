"""`monitor run`: the long-running worker.

APScheduler drives a claim tick (lease the due feeds this worker has room for and start each at once, so no
feed waits for another) and maintenance (pruning old fetch records, SQLite optimise). Feeds are refreshed on
an asyncio loop in a thread of its own, through the same refresh_feed() as `monitor poll`. Several workers
may share one PostgreSQL database: leases (store/leases.py) make each due feed polled by one of them. On
SIGTERM/SIGINT the worker stops claiming, lets the feeds in hand finish within the grace period, abandons
the rest between two articles, releases its leases and exits 0. /healthz and /metrics are served on
127.0.0.1 when a port is given.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import json
import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import IO, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from monitor.digest.send import SmtpSettings, send_due
from monitor.errors import ConfigError
from monitor.metrics import CONTENT_TYPE, Metrics
from monitor.model import FeedRef, FeedSummary
from monitor.pipeline.extract import Extractor
from monitor.pipeline.fetch import Fetcher
from monitor.pipeline.prepare import Enrichment
from monitor.pipeline.refresh import (
    FEED_CONCURRENCY,
    index_missing_stories,
    keep_leases,
    refresh_leased,
    sync_config,
    utcnow,
    worker_id,
)
from monitor.pipeline.robots import RobotsCache
from monitor.pipeline.tag import Tagger
from monitor.pipeline.writer import ArticleWriter
from monitor.settings import FeedConfig, SubscriptionConfig
from monitor.store import leases, repository
from monitor.store.db import Database
from monitor.store.stories import DEFAULT_WINDOW

log = logging.getLogger(__name__)

DEFAULT_TICK = timedelta(seconds=15)
MAINTENANCE_EVERY = timedelta(hours=1)
WRITER_FLUSH_SECONDS = 8  # of the 10 s the loop gets to shut down
KEEP_FETCH_LOG = timedelta(days=30)
# A job that wakes late (the machine slept, the process was down) runs once, however late (APScheduler 3's
# default grace of 1 s would skip it silently), never as a burst of catch-up runs, and never twice at once.
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    """How a worker behaves; defaults suit one machine, the MONITOR_* settings tune them."""

    tick: timedelta = DEFAULT_TICK
    story_window: timedelta = DEFAULT_WINDOW
    lease_ttl: timedelta = leases.DEFAULT_TTL
    grace: timedelta = timedelta(seconds=10)
    capacity: int = FEED_CONCURRENCY  # feeds in flight at once
    keep_fetch_log: timedelta = KEEP_FETCH_LOG
    digest_check: timedelta = timedelta(minutes=1)  # retries of failed digests, and catching up after downtime


class Heartbeat:
    """When the scheduler last ticked; /healthz reads it."""

    def __init__(self, tick: timedelta) -> None:
        self.tick = tick
        self.started = time.monotonic()
        self.last_tick: float | None = None
        self.last_tick_at: datetime | None = None
        self._lock = threading.Lock()

    def beat(self) -> None:
        """Note that a claim tick just ran."""
        with self._lock:
            self.last_tick = time.monotonic()
            self.last_tick_at = datetime.now(UTC)

    def ticking(self) -> bool:
        """Whether ticks keep coming (three missed ticks, and at least 30 s, mean the scheduler stopped)."""
        with self._lock:
            reference = self.last_tick if self.last_tick is not None else self.started
        return time.monotonic() - reference < max(3 * self.tick.total_seconds(), 30)


class Service:
    """One worker: claim ticks, feeds refreshed as soon as they are claimed, maintenance, clean stop."""

    def __init__(
        self,
        database: Database,
        *,
        feeds: Sequence[FeedConfig],
        fetcher_options: dict[str, Any],
        tagger: Tagger | None = None,
        options: ServiceOptions | None = None,
        subscriptions: Sequence[SubscriptionConfig] = (),
        smtp: SmtpSettings | None = None,
    ) -> None:
        self.database = database
        self.subscriptions = tuple(subscriptions)
        self.smtp = smtp or SmtpSettings()
        self.feeds = feeds
        self.fetcher_options = fetcher_options
        self.tagger = tagger
        self.options = options or ServiceOptions()
        self.worker = worker_id("run")
        self.metrics = Metrics()
        self.heartbeat = Heartbeat(self.options.tick)
        self._enrichment = Enrichment(tagger)
        # One writer for every feed in hand: their articles are stored in batches, one transaction each.
        self._writer = ArticleWriter(database, window=self.options.story_window)
        self._stopping = threading.Event()  # no more claims
        self._abandon = threading.Event()  # feeds in hand stop between two articles
        self._in_flight: dict[int, concurrent.futures.Future[FeedSummary]] = {}
        self._leased: set[int] = set()
        self._claim_lock = threading.Lock()
        # Warm extraction workers and robots.txt rules live as long as the service.
        self._extractor = Extractor()
        self._robots = RobotsCache()
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="feeds", daemon=True)
        self._fetcher: Fetcher | None = None
        self._keeper: concurrent.futures.Future[None] | None = None
        self._indexer: asyncio.Task[int] | None = None  # a reference, or the loop may drop the task
        self._scheduler = BlockingScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=2)}, job_defaults=JOB_DEFAULTS, timezone=UTC
        )

    # -- the jobs ----------------------------------------------------------------------------------------

    def claim_tick(self) -> int:
        """Lease the due feeds this worker has room for and start them; return how many were started."""
        with self._claim_lock:
            if self._stopping.is_set():
                return 0
            now = utcnow()
            room = self.options.capacity - len(self._in_flight)
            try:
                with self.database.session() as session:
                    claimed = (
                        leases.claim_feeds(session, worker=self.worker, now=now, ttl=self.options.lease_ttl, limit=room)
                        if room > 0
                        else []
                    )
                with self.database.session() as session:
                    backlog = leases.backlog(session, now=now)
            except Exception:
                log.exception("job=claim outcome=crash")
                return 0
            self.metrics.due_feeds.set(backlog.due)
            self.metrics.oldest_due_lag.set(backlog.oldest_lag_seconds)
            for feed in claimed:
                self._start(feed)
            self.metrics.in_flight.set(len(self._in_flight))
            self.metrics.last_tick.set(time.time())
            self.heartbeat.beat()
            if claimed:
                log.info("job=claim worker=%s claimed=%d in_flight=%d", self.worker, len(claimed), len(self._in_flight))
            return len(claimed)

    def maintenance(self) -> None:
        """Prune the fetch log; let SQLite refresh its query statistics. Once per hour per cluster."""
        now = utcnow()
        cutoff = now - self.options.keep_fetch_log
        try:
            with self.database.session() as session:
                due = now.replace(minute=0, second=0, microsecond=0)
                if not leases.run_once(session, job="maintenance", due_at=due, worker=self.worker, now=now):
                    return  # another worker did this hour's
                pruned = repository.prune_fetch_log(session, before=cutoff)
                if session.get_bind().dialect.name == "sqlite":
                    session.execute(text("PRAGMA optimize"))
        except Exception:
            log.exception("job=maintenance outcome=crash")
            return
        log.info("job=maintenance pruned_fetch_records=%d", pruned)

    def digest_job(self, name: str | None = None) -> None:
        """Send the digests that are due (one subscription's at its time; all, to retry and catch up)."""
        if self._stopping.is_set() or not self.subscriptions:
            return
        try:
            send_due(
                self.database,
                self.subscriptions,
                smtp=self.smtp,
                now=utcnow(),
                worker=self.worker,
                tagger=self.tagger,
                names=[name] if name else (),
            )
        except Exception:
            log.exception("job=digest subscription=%s outcome=crash", name or "all")

    def _start(self, feed: FeedRef) -> None:
        self._leased.add(feed.id)
        future = asyncio.run_coroutine_threadsafe(self._refresh(feed), self._loop)
        self._in_flight[feed.id] = future

        def done(_: concurrent.futures.Future[FeedSummary]) -> None:
            self._in_flight.pop(feed.id, None)
            self._leased.discard(feed.id)
            self.metrics.in_flight.set(len(self._in_flight))

        future.add_done_callback(done)

    async def _refresh(self, feed: FeedRef) -> FeedSummary:
        assert self._fetcher is not None
        return await refresh_leased(
            feed,
            database=self.database,
            fetcher=self._fetcher,
            extractor=self._extractor,
            should_stop=self._abandon.is_set,
            enrichment=self._enrichment,
            writer=self._writer,
            worker=self.worker,
            metrics=self.metrics,
        )

    # -- lifecycle ---------------------------------------------------------------------------------------

    def run(self, *, http_port: int | None = None) -> None:
        """Block until SIGTERM/SIGINT, then stop cleanly (see the module's docstring)."""
        single = _single_worker_lock(self.database)
        server = start_http_server(self, http_port) if http_port else None
        self._loop_thread.start()
        try:
            self._call(self._open())
            tick = self.options.tick.total_seconds()
            self._scheduler.add_job(
                self.claim_tick, "interval", seconds=tick, next_run_time=datetime.now(UTC), id="claim"
            )
            self._scheduler.add_job(
                self.maintenance,
                "interval",
                seconds=MAINTENANCE_EVERY.total_seconds(),
                next_run_time=datetime.now(UTC) + timedelta(minutes=1),
                id="maintenance",
            )
            for subscription in self.subscriptions:
                hour, minute = subscription.at.split(":")
                self._scheduler.add_job(
                    self.digest_job,
                    CronTrigger(hour=int(hour), minute=int(minute), timezone=subscription.zone),
                    args=[subscription.name],
                    id=f"digest:{subscription.name}",
                )
            if self.subscriptions:
                self._scheduler.add_job(
                    self.digest_job,
                    "interval",
                    seconds=self.options.digest_check.total_seconds(),
                    next_run_time=datetime.now(UTC) + timedelta(seconds=5),
                    id="digests",
                )
            previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
            log.info(
                "service=started worker=%s feeds=%d tick_s=%d lease_s=%d",
                self.worker,
                len(self.feeds),
                tick,
                self.options.lease_ttl.total_seconds(),
            )
            try:
                self._scheduler.start()  # returns once stop() shut it down
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
            self._drain()
        finally:
            self._close()
            if server is not None:
                server.shutdown()
                server.server_close()
            if single is not None:
                single.close()
            log.info("service=stopped worker=%s", self.worker)

    def stop(self) -> None:
        """Stop claiming; run() then drains the feeds in hand and returns."""
        with self._claim_lock:
            self._stopping.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def healthy(self) -> tuple[bool, str]:
        """Whether the scheduler keeps ticking and the database answers, and why not."""
        if not self.heartbeat.ticking():
            return False, "scheduler stopped ticking"
        try:
            with self.database.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            return False, f"database unreachable: {type(exc).__name__}"
        return True, "ok"

    async def _open(self) -> None:
        fetcher = Fetcher(**self.fetcher_options, robots=self._robots)
        self._fetcher = await fetcher.__aenter__()
        await sync_config(self.database, feeds=self.feeds, tagger=self.tagger)
        # After an upgrade the whole archive may need indexing (minutes): do it beside the polling, newest
        # articles first, so that the service is up and healthy at once.
        self._indexer = asyncio.get_running_loop().create_task(
            index_missing_stories(self.database, self._enrichment.vectoriser, should_stop=self._stopping.is_set)
        )
        self._keeper = asyncio.run_coroutine_threadsafe(
            keep_leases(self.database, worker=self.worker, feed_ids=self._leased, ttl=self.options.lease_ttl),
            self._loop,
        )

    def _drain(self) -> None:
        """Give the feeds in hand the grace period, then make them stop between two articles."""
        pending = list(self._in_flight.values())
        grace = self.options.grace.total_seconds()
        log.info("service=stopping in_flight=%d grace_s=%d", len(pending), grace)
        _, left = concurrent.futures.wait(pending, timeout=grace)
        if left:
            self._abandon.set()  # they record what they stored, stay due, and end their leases
            _, left = concurrent.futures.wait(left, timeout=2)
        for future in left:
            future.cancel()
        if left:
            log.warning("service=stopping abandoned=%d", len(left))

    def _close(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
        if self._loop_thread.is_alive():
            try:
                self._call(self._shutdown_loop(), timeout=10)
            except Exception:
                log.exception("service=stopping outcome=close-failed")
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(timeout=10)
        try:
            with self.database.session() as session:
                released = leases.release(session, worker=self.worker)
            if released:
                log.info("service=stopping released_leases=%d", released)
        except Exception:
            log.exception("service=stopping outcome=release-failed")
        self._extractor.close()

    async def _shutdown_loop(self) -> None:
        # What the feeds handed over is written before anything is cancelled, within the shutdown's budget:
        # anything left is not lost (its feed has not recorded its fetch, so it stays due).
        try:
            await asyncio.wait_for(self._writer.close(), timeout=WRITER_FLUSH_SECONDS)
        except TimeoutError:
            log.warning("service=stopping outcome=writer-flush-timed-out")
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._fetcher is not None:
            await self._fetcher.__aexit__(None, None, None)

    def _call(self, coroutine: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("service=stopping signal=%s", signal.Signals(signum).name)
        self.stop()


def _single_worker_lock(database: Database) -> IO[str] | None:
    """On SQLite, refuse a second worker on the same database file: SQLite has one writer, and leases would
    only make two workers take turns."""
    if database.engine.dialect.name != "sqlite" or not database.engine.url.database:
        return None
    path = Path(database.engine.url.database)
    if str(path) == ":memory:":
        return None
    handle = path.with_name(path.name + ".run-lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConfigError(
            f"another `monitor run` is already using {path}: SQLite allows one worker; "
            "to run several, share a PostgreSQL database (MONITOR_DATABASE_URL)"
        ) from None
    return handle


def start_http_server(service: Service, port: int) -> ThreadingHTTPServer:
    """Serve GET /healthz and /metrics on 127.0.0.1:port in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/healthz":
                healthy, reason = service.healthy()
                last = service.heartbeat.last_tick_at
                body = json.dumps(
                    {
                        "status": "ok" if healthy else "unhealthy",
                        "reason": reason,
                        "worker": service.worker,
                        "last_tick": last.isoformat() if last else None,
                        "in_flight": len(service._in_flight),
                    }
                ).encode()
                self._send(200 if healthy else 503, "application/json", body)
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE, service.metrics.render())
            else:
                self.send_error(404)

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("http " + format, *args)

    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except OSError as exc:
        raise ConfigError(
            f"--metrics-port / MONITOR_METRICS_PORT {port}: cannot listen there: {exc.strerror}"
        ) from None
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
