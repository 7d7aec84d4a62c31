"""What an operator sees: Prometheus metrics of a pass, JSON log lines, and /healthz's two conditions."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from conftest import PAGES, FeedServer, run_cli, write_feeds
from feedbuilders import rss2
from monitor.metrics import Metrics
from monitor.service import Service
from monitor.settings import FeedConfig
from monitor.store.db import Database
from pollkit import RSS, Poll


def _feed(server: FeedServer) -> str:
    items = [
        {
            "title": "Salon chain bans men",
            "link": server.add("/pages/salon.html", (PAGES / "abc13.com-Copperfield.html").read_bytes()),
            "guid": "a",
            "published": datetime(2026, 11, 20, tzinfo=UTC),
        },
        {"title": "Gone", "link": server.url("/pages/gone.html"), "guid": "b", "summary": "Still here in summary."},
    ]
    return server.add("/rss.xml", rss2(items), content_type=RSS)


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value if value is not None else 0.0


def test_a_pass_is_counted_in_the_metrics(poll: Poll, server: FeedServer) -> None:
    metrics = Metrics()
    feed = FeedConfig(name="wire", url=_feed(server))

    poll(feed, metrics=metrics)
    poll(feed, metrics=metrics)  # everything known now

    assert _sample(metrics, "monitor_feeds_polled_total", outcome="ok") == 2
    assert _sample(metrics, "monitor_articles_stored_total") == 2
    assert _sample(metrics, "monitor_duplicates_total", kind="known") == 2
    assert _sample(metrics, "monitor_http_responses_total", kind="feed", status="200") == 2
    assert _sample(metrics, "monitor_http_responses_total", kind="page", status="200") == 1
    assert _sample(metrics, "monitor_http_responses_total", kind="page", status="404") == 1
    assert _sample(metrics, "monitor_extraction_failures_total") == 1
    assert _sample(metrics, "monitor_extraction_duration_seconds_count") == 1
    assert _sample(metrics, "monitor_poll_duration_seconds_count") == 2
    assert b"monitor_oldest_due_feed_lag_seconds" in metrics.render()


def test_json_logs_carry_feed_url_and_outcome(server: FeedServer, database_url: str, tmp_path: Path) -> None:
    config = write_feeds(tmp_path / "config", [{"name": "wire", "url": _feed(server)}])

    result = run_cli("poll", "--log-format", "json", "-v", database_url=database_url, config_dir=config)

    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stderr.splitlines()]  # every line is one JSON object
    fetch = next(r for r in records if r.get("outcome") == "ok" and r.get("feed") == "wire")
    assert fetch["url"].endswith("/rss.xml")
    assert fetch["level"] == "info"
    assert datetime.fromisoformat(fetch["time"]).tzinfo is not None
    assert any(r.get("extraction") == "feed-summary" and r.get("url", "").endswith("/gone.html") for r in records)


def _service(url: str) -> Service:
    engine = create_engine(url)
    return Service(Database(engine, sessionmaker(engine)), feeds=[], fetcher_options={})


def test_healthz_fails_when_the_database_is_unreachable(tmp_path: Path) -> None:
    healthy = _service(f"sqlite:///{tmp_path / 'ok.db'}")
    assert healthy.healthy() == (True, "ok")
    unreachable = _service("postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=2")
    ok, reason = unreachable.healthy()
    assert not ok
    assert reason.startswith("database unreachable")


def test_healthz_fails_when_the_scheduler_stops_ticking(tmp_path: Path) -> None:
    service = _service(f"sqlite:///{tmp_path / 'ok.db'}")
    service.heartbeat.started = time.monotonic() - 120  # no tick for two minutes
    assert service.healthy() == (False, "scheduler stopped ticking")
    service.heartbeat.beat()
    assert service.healthy() == (True, "ok")
