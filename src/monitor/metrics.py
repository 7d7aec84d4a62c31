"""Prometheus metrics of a worker (the only prometheus_client user). Each Service owns a registry, so
nothing is registered at import and tests can build as many as they like."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from monitor.model import FeedSummary, FetchOutcome

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """The counters, histograms and gauges `monitor run` serves at /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.feeds_polled = Counter("monitor_feeds_polled", "Feed polls by outcome.", ["outcome"], registry=registry)
        self.http_responses = Counter(
            "monitor_http_responses",
            "HTTP answers by kind of request (feed, page) and status (none: no answer).",
            ["kind", "status"],
            registry=registry,
        )
        self.articles_stored = Counter("monitor_articles_stored", "New articles stored.", registry=registry)
        self.duplicates = Counter(
            "monitor_duplicates",
            "Entries recognised as already stored: known URL or GUID (not downloaded), or a copy of a stored text.",
            ["kind"],
            registry=registry,
        )
        self.extraction_failures = Counter(
            "monitor_extraction_failures",
            "Article pages that gave no text (stored from the feed summary, or title only).",
            registry=registry,
        )
        self.poll_duration = Histogram(
            "monitor_poll_duration_seconds", "Time to refresh one feed.", buckets=_SECONDS, registry=registry
        )
        self.extraction_duration = Histogram(
            "monitor_extraction_duration_seconds", "Time to extract one page.", buckets=_SECONDS, registry=registry
        )
        self.due_feeds = Gauge("monitor_due_feeds", "Due feeds no worker is polling yet.", registry=registry)
        self.in_flight = Gauge("monitor_feeds_in_flight", "Feeds this worker is polling now.", registry=registry)
        self.oldest_due_lag = Gauge(
            "monitor_oldest_due_feed_lag_seconds",
            "How long the most overdue unclaimed feed has been due.",
            registry=registry,
        )
        self.last_tick = Gauge(
            "monitor_scheduler_last_tick_timestamp_seconds", "When the scheduler last claimed work.", registry=registry
        )

    def feed_polled(self, summary: FeedSummary, *, status: int | None, seconds: float) -> None:
        """One feed refresh ended."""
        self.feeds_polled.labels(summary.outcome.value).inc()
        if summary.outcome is not FetchOutcome.REFUSED:
            self.http_responses.labels("feed", str(status) if status else "none").inc()
        self.poll_duration.observe(seconds)
        self.articles_stored.inc(summary.new)
        self.duplicates.labels("known").inc(summary.skipped)
        self.duplicates.labels("copy").inc(summary.copies)

    def page_fetched(self, *, status: int | None, extraction_seconds: float | None, failed: bool) -> None:
        """One article page was fetched (or refused) and extracted (or not)."""
        self.http_responses.labels("page", str(status) if status else "none").inc()
        if extraction_seconds is not None:
            self.extraction_duration.observe(extraction_seconds)
        if failed:
            self.extraction_failures.inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class WebMetrics:
    """What `monitor serve` counts: requests by route and status, and their duration."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "monitor_http_requests",
            "Requests served, by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "monitor_http_request_duration_seconds",
            "Time to answer a request, by route.",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
