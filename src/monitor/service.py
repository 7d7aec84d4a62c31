"""`monitor run`: APScheduler drives poll passes until SIGTERM/SIGINT; optional /healthz on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler

from monitor.errors import ConfigError
from monitor.model import FeedSummary
from monitor.pipeline.extract import Extractor
from monitor.pipeline.fetch import Fetcher
from monitor.pipeline.refresh import poll_feeds
from monitor.pipeline.robots import RobotsCache
from monitor.pipeline.tag import Tagger
from monitor.settings import FeedConfig
from monitor.store.db import Database
from monitor.store.stories import DEFAULT_WINDOW

log = logging.getLogger(__name__)

DEFAULT_TICK = timedelta(seconds=60)


class Heartbeat:
    """When the last poll pass started and ended; /healthz reads it."""

    def __init__(self, tick: timedelta) -> None:
        self.tick = tick
        self.started = time.monotonic()
        self.last_pass_end: float | None = None
        self.last_pass_at: datetime | None = None
        self._lock = threading.Lock()

    def beat(self) -> None:
        """Note that a poll pass just finished."""
        with self._lock:
            self.last_pass_end = time.monotonic()
            self.last_pass_at = datetime.now(UTC)

    def healthy(self) -> bool:
        """Healthy while passes keep finishing; a pass may take a while, so allow a generous margin."""
        with self._lock:
            reference = self.last_pass_end if self.last_pass_end is not None else self.started
        return time.monotonic() - reference < max(3 * self.tick.total_seconds(), 900)


class Service:
    """The long-running worker: a poll tick on a fixed interval, each feed polled on its own interval."""

    def __init__(
        self,
        database: Database,
        *,
        feeds: Sequence[FeedConfig],
        fetcher_options: dict[str, Any],
        tagger: Tagger | None = None,
        tick: timedelta = DEFAULT_TICK,
        story_window: timedelta = DEFAULT_WINDOW,
    ) -> None:
        self.database = database
        self.story_window = story_window
        self.feeds = feeds
        self.fetcher_options = fetcher_options
        self.tagger = tagger
        self.tick = tick
        self.heartbeat = Heartbeat(tick)
        self._stop = threading.Event()
        # Warm extraction workers and robots.txt rules outlive a pass; the HTTP client is per pass (per loop).
        self._extractor = Extractor()
        self._robots = RobotsCache()
        self._scheduler = BlockingScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            # A tick that wakes late still runs once (coalesced), never a burst of catch-up passes.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )

    def poll_pass(self) -> list[FeedSummary]:
        """Poll every due feed once; failures are recorded per feed, never raised."""
        try:
            summaries = asyncio.run(self._poll())
        except Exception:
            log.exception("job=poll outcome=crash")
            return []
        self.heartbeat.beat()
        if summaries:
            log.info(
                "job=poll feeds=%d new=%d failed_feeds=%d",
                len(summaries),
                sum(s.new for s in summaries),
                sum(1 for s in summaries if s.outcome.failed),
            )
        return summaries

    async def _poll(self) -> list[FeedSummary]:
        async with Fetcher(**self.fetcher_options, robots=self._robots) as fetcher:
            return await poll_feeds(
                self.database,
                feeds=self.feeds,
                fetcher=fetcher,
                extractor=self._extractor,
                tagger=self.tagger,
                should_stop=self._stop.is_set,
                story_window=self.story_window,
            )

    def run(self, *, health_port: int | None = None) -> None:
        """Block until SIGTERM/SIGINT; the pass in progress stops between articles, then we exit."""
        server = start_health_server(self.heartbeat, health_port) if health_port else None
        self._scheduler.add_job(
            self.poll_pass,
            "interval",
            seconds=self.tick.total_seconds(),
            next_run_time=datetime.now(UTC),
            id="poll",
        )
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        log.info("service=started feeds=%d tick_s=%d", len(self.feeds), self.tick.total_seconds())
        try:
            self._scheduler.start()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._extractor.close()
            if server is not None:
                server.shutdown()
                server.server_close()
            log.info("service=stopped")

    def stop(self) -> None:
        """Ask the service to finish the article in hand and stop."""
        self._stop.set()
        if self._scheduler.running:
            # wait=True: the pass in hand sees the stop flag, stores its article and returns.
            self._scheduler.shutdown(wait=True)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("service=stopping signal=%s", signal.Signals(signum).name)
        self.stop()


def start_health_server(heartbeat: Heartbeat, port: int) -> ThreadingHTTPServer:
    """Serve GET /healthz on 127.0.0.1:port in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/healthz":
                self.send_error(404)
                return
            healthy = heartbeat.healthy()
            last = heartbeat.last_pass_at.isoformat() if heartbeat.last_pass_at else None
            body = json.dumps({"status": "ok" if healthy else "stalled", "last_poll_pass": last}).encode()
            self.send_response(200 if healthy else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("healthz " + format, *args)

    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except OSError as exc:
        raise ConfigError(
            f"--metrics-port / MONITOR_METRICS_PORT {port}: cannot listen there: {exc.strerror}"
        ) from None
    threading.Thread(target=server.serve_forever, name="healthz", daemon=True).start()
    return server
