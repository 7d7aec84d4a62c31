"""Politeness towards outlets, measured by the server: concurrency per host, spacing, robots.txt, User-Agent;
and adaptive polling: when a feed is polled next, after success and after failure.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from conftest import PAGES, FeedServer, Route
from feedbuilders import rss2
from monitor.model import FetchOutcome, FetchResult
from monitor.pipeline.fetch import Fetcher, FetchLimits, PerHostTransport
from monitor.store.db import Database
from monitor.store.schema import Article
from pollkit import LOOPBACK, RSS, USER_AGENT, Poll, feed, state

ARTICLE = "<html><head><title>Story</title></head><body><article><p>A story from Bishkek.</p></article></body></html>"


def fetch_all(limits: FetchLimits, *urls: str, pages: bool = False) -> list[FetchResult]:
    """Fetch urls concurrently through one Fetcher, as one poll pass would."""

    async def run() -> list[FetchResult]:
        async with Fetcher(user_agent=USER_AGENT, policy=LOOPBACK, limits=limits) as fetcher:
            fetch = fetcher.fetch_page if pages else fetcher.fetch_feed
            return list(await asyncio.gather(*(fetch(url) for url in urls)))

    return asyncio.run(run())


def gaps(starts: list[float]) -> list[float]:
    ordered = sorted(starts)
    return [later - earlier for earlier, later in itertools.pairwise(ordered)]


@pytest.mark.parametrize("per_host", [1, 3])
def test_requests_in_flight_to_one_host_never_exceed_per_host(server: FeedServer, per_host: int) -> None:
    urls = [server.add(f"/feed/{n}.xml", rss2([]), content_type=RSS, delay=0.15) for n in range(6)]

    started = time.monotonic()
    results = fetch_all(FetchLimits(per_host=per_host, host_delay=0), *urls)
    elapsed = time.monotonic() - started

    assert [r.outcome for r in results] == [FetchOutcome.OK] * 6
    assert server.max_in_flight == per_host
    assert elapsed >= 0.15 * (6 / per_host) - 0.02
    assert len(server.requests) == 6


def test_host_delay_spaces_request_starts_to_one_host(server: FeedServer) -> None:
    urls = [server.add(f"/feed/{n}.xml", rss2([]), content_type=RSS) for n in range(4)]

    results = fetch_all(FetchLimits(per_host=2, host_delay=0.25), *urls)

    assert [r.outcome for r in results] == [FetchOutcome.OK] * 4
    spacing = gaps(server.starts("/feed/"))
    assert len(spacing) == 3
    # Starts are spaced by the client; the server sees them a little later, each by its own latency.
    assert min(spacing) >= 0.25 * 0.8, spacing


def test_different_hosts_are_not_serialised_behind_each_other(server: FeedServer) -> None:
    other = FeedServer(host="127.0.0.2")
    try:
        urls = [s.add(f"/feed/{n}.xml", rss2([]), content_type=RSS) for s in (server, other) for n in range(2)]

        started = time.monotonic()
        results = fetch_all(FetchLimits(per_host=1, host_delay=0.5), *urls)
        elapsed = time.monotonic() - started

        assert [r.outcome for r in results] == [FetchOutcome.OK] * 4
        here, there = sorted(server.starts("/feed/")), sorted(other.starts("/feed/"))
        # Each host sees its two requests 0.5 s apart; the hosts run side by side, not one after the other
        # (which would put all four starts 0.5 s apart and take 1.5 s).
        assert min(gaps(here) + gaps(there)) >= 0.5 * 0.8, (here, there)
        assert max(abs(here[0] - there[0]), abs(here[1] - there[1])) < 0.25, (here, there)
        assert elapsed < 1.25
    finally:
        other.close()


def test_each_host_is_asked_over_at_most_per_host_connections_kept_alive(server: FeedServer) -> None:
    other = FeedServer(host="127.0.0.2")
    try:
        urls = [s.add(f"/feed/{n}.xml", rss2([]), content_type=RSS) for n in range(8) for s in (server, other)]

        results = fetch_all(FetchLimits(per_host=2, host_delay=0), *urls)

        assert [r.outcome for r in results] == [FetchOutcome.OK] * 16
        for host in (server, other):
            connections = {request.client_port for request in host.requests}
            assert len(host.requests) == 8
            assert 1 <= len(connections) <= 2, connections  # eight requests, over one or two reused connections
    finally:
        other.close()


def test_a_long_lived_fetcher_keeps_few_hosts_pools_and_never_closes_one_in_use() -> None:
    servers = [FeedServer() for _ in range(8)]  # eight origins (ports)
    try:
        big = b"x" * (4 * 1024 * 1024)  # more than the sockets buffer: still being read when the others run
        urls = [s.add("/page.html", big) for s in servers]

        async def run() -> tuple[list[int], int, bytes]:
            transport = PerHostTransport(policy=LOOPBACK, per_host=2, max_pools=3)
            async with httpx.AsyncClient(transport=transport) as client:
                # A response left open on the first host while seven others are asked for.
                async with client.stream("GET", urls[0]) as held:
                    statuses = [(await client.get(url)).status_code for url in urls[1:] + urls[1:]]
                    body = await held.aread()
                return statuses, transport.pools, body

        statuses, pools, body = asyncio.run(run())

        assert statuses == [200] * 14
        assert body == big  # its pool was not closed under it
        assert pools <= 3  # the other hosts' pools, and their sockets, were closed as new hosts came
        for server in servers[1:]:
            assert server.hits("/page.html") == 2
    finally:
        for server in servers:
            server.close()


def test_pools_made_and_closed_side_by_side_never_fail_a_request() -> None:
    servers = [FeedServer() for _ in range(24)]  # many more origins than pools kept
    try:
        urls = [s.add("/small.html", ARTICLE) for s in servers]

        async def run() -> list[object]:
            transport = PerHostTransport(policy=LOOPBACK, per_host=2, max_pools=4)
            outcomes: list[object] = []
            async with httpx.AsyncClient(transport=transport) as client:
                for wave in range(5):  # each wave meets hosts whose pools the last one left idle, and new ones
                    wave_urls = urls[wave % 3 :: 2] * 2
                    outcomes += await asyncio.gather(*(client.get(url) for url in wave_urls), return_exceptions=True)
            return outcomes

        outcomes = asyncio.run(run())

        failures = [o for o in outcomes if not isinstance(o, httpx.Response) or o.status_code != 200]
        assert not failures, failures[:3]
    finally:
        for server in servers:
            server.close()


def next_poll_after(database: Database, name: str) -> timedelta:
    """How long after its last poll started the feed is due again."""
    recorded = state(database, name)
    assert recorded.next_poll_at is not None
    assert recorded.last_attempt_at is not None
    return recorded.next_poll_at - recorded.last_attempt_at


def test_robots_disallow_refuses_the_page_and_stores_the_feed_summary(
    server: FeedServer, database: Database, poll: Poll
) -> None:
    server.add("/robots.txt", "User-agent: *\nDisallow: /private/\n", content_type="text/plain")
    server.add("/private/leak.html", (PAGES / "abc13.com-Copperfield.html").read_bytes())
    allowed = server.add("/public/napa.html", (PAGES / "abc7news.com-Napa.html").read_bytes())
    items = [
        {"title": "Leak", "link": server.url("/private/leak.html"), "guid": "leak", "summary": "Summary only."},
        {"title": "Napa", "link": allowed, "guid": "napa", "summary": "Napa County."},
    ]
    url = server.add("/rss.xml", rss2(items), content_type=RSS)

    (summary,) = poll(feed("robots", url))

    assert (summary.outcome, summary.new, summary.from_summary) == (FetchOutcome.OK, 2, 1)
    with database.session() as session:
        stored = {a.guid: a for a in session.scalars(select(Article))}
    assert (stored["leak"].extraction, stored["leak"].text) == ("feed-summary", "Summary only.")
    assert stored["leak"].extraction_error == "page refused: disallowed by robots.txt"
    assert (stored["napa"].extraction, stored["napa"].extraction_error) == ("page", None)
    assert server.hits("/private/leak.html") == 0
    assert server.hits("/public/napa.html") == 1
    assert server.hits("/robots.txt") == 1
    assert state(database, "robots").last_outcome == "ok"


def test_robots_txt_is_fetched_once_per_host_per_pass(server: FeedServer) -> None:
    other = FeedServer(host="127.0.0.2")
    try:
        for site in (server, other):
            site.add("/robots.txt", "User-agent: *\nDisallow: /private/\n", content_type="text/plain")
        urls = [server.add(f"/news/{n}.html", ARTICLE) for n in range(5)]
        urls += [other.add(f"/news/{n}.html", ARTICLE) for n in range(3)]

        results = fetch_all(FetchLimits(per_host=4, host_delay=0), *urls, pages=True)

        assert [r.outcome for r in results] == [FetchOutcome.OK] * 8
        assert (server.hits("/robots.txt"), other.hits("/robots.txt")) == (1, 1)
        assert (len(server.requests), len(other.requests)) == (6, 4)
        # robots.txt comes before any page of its host.
        assert (server.requests[0].path, other.requests[0].path) == ("/robots.txt", "/robots.txt")
    finally:
        other.close()


@pytest.mark.parametrize("failure", ["500", "reset"])
def test_unreachable_robots_txt_means_every_page_is_disallowed(server: FeedServer, failure: str) -> None:
    # RFC 9309 2.3.1.4: a server error or no answer at all means "assume complete disallow".
    if failure == "reset":
        server.add_reset("/robots.txt")
    else:
        server.add("/robots.txt", "oops", status=500, content_type="text/plain")
    urls = [server.add(f"/news/{n}.html", ARTICLE) for n in range(3)]

    results = fetch_all(FetchLimits(host_delay=0, retry_base=0.01), *urls, pages=True)

    assert [r.outcome for r in results] == [FetchOutcome.REFUSED] * 3
    assert {r.error for r in results} == {"robots.txt could not be read (RFC 9309: assume disallowed)"}
    assert [r.path for r in server.requests] == ["/robots.txt"]


@pytest.mark.parametrize("status", [404, 403])
def test_robots_txt_answering_4xx_means_every_page_is_allowed(server: FeedServer, status: int) -> None:
    # RFC 9309 2.3.1.3: "unavailable" (any 4xx) means no restrictions.
    server.add("/robots.txt", "no", status=status, content_type="text/plain")
    urls = [server.add(f"/news/{n}.html", ARTICLE) for n in range(3)]

    results = fetch_all(FetchLimits(host_delay=0), *urls, pages=True)

    assert [(r.outcome, r.status) for r in results] == [(FetchOutcome.OK, 200)] * 3
    assert server.hits("/robots.txt") == 1
    assert sorted(r.path for r in server.requests if r.path != "/robots.txt") == [f"/news/{n}.html" for n in range(3)]


def test_crawl_delay_spaces_page_requests(server: FeedServer) -> None:
    server.add("/robots.txt", "User-agent: *\nCrawl-delay: 0.25\nDisallow: /private/\n", content_type="text/plain")
    urls = [server.add(f"/news/{n}.html", ARTICLE) for n in range(4)]

    results = fetch_all(FetchLimits(per_host=2, host_delay=0), *urls, pages=True)

    assert [r.outcome for r in results] == [FetchOutcome.OK] * 4
    spacing = gaps(server.starts("/news/"))
    assert len(spacing) == 3
    assert min(spacing) >= 0.25 * 0.8, spacing


def test_user_agent_header_is_the_configured_one(server: FeedServer) -> None:
    server.add("/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")
    feed_url = server.add("/rss.xml", rss2([]), content_type=RSS)
    page_url = server.add("/news/1.html", ARTICLE)

    async def run() -> tuple[FetchResult, FetchResult]:
        async with Fetcher(user_agent=USER_AGENT, policy=LOOPBACK, limits=FetchLimits(host_delay=0)) as fetcher:
            return await fetcher.fetch_feed(feed_url), await fetcher.fetch_page(page_url)

    fetched_feed, fetched_page = asyncio.run(run())

    assert (fetched_feed.outcome, fetched_page.outcome) == (FetchOutcome.OK, FetchOutcome.OK)
    assert [(r.path, r.headers.get("user-agent")) for r in server.requests] == [
        ("/rss.xml", USER_AGENT),
        ("/robots.txt", USER_AGENT),
        ("/news/1.html", USER_AGENT),
    ]


def test_robots_txt_group_for_our_user_agent_applies_to_us(server: FeedServer) -> None:
    server.add(
        "/robots.txt",
        "User-agent: monitor-tests\nDisallow: /\n\nUser-agent: *\nAllow: /\n",
        content_type="text/plain",
    )
    url = server.add("/news/1.html", ARTICLE)

    (result,) = fetch_all(FetchLimits(host_delay=0), url, pages=True)

    assert (result.outcome, result.error) == (FetchOutcome.REFUSED, "disallowed by robots.txt")
    assert server.hits("/news/1.html") == 0


def dated_items(server: FeedServer, name: str, count: int, spacing: timedelta) -> list[dict[str, object]]:
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    return [
        {
            "title": f"{name} {n}",
            "link": server.url(f"/{name}/{n}.html"),
            "guid": f"{name}-{n}",
            "published": newest - n * spacing,
            "summary": f"Story {n} of {name}.",
        }
        for n in range(count)
    ]


def test_feed_with_items_hours_apart_is_polled_later_than_one_with_items_minutes_apart(
    server: FeedServer, database: Database, poll: Poll
) -> None:
    options = {"interval": "5m", "max_interval": "6h"}
    hourly = server.add("/hourly.xml", rss2(dated_items(server, "hourly", 10, timedelta(hours=3))), content_type=RSS)
    busy = server.add("/busy.xml", rss2(dated_items(server, "busy", 10, timedelta(minutes=5))), content_type=RSS)

    poll(feed("hourly", hourly, **options), feed("busy", busy, **options))

    slow, fast = next_poll_after(database, "hourly"), next_poll_after(database, "busy")
    assert timedelta(minutes=5) <= fast < slow <= timedelta(hours=6)
    # Ten items in 45 minutes: polling every few hours would miss most of the next ones.
    assert fast <= timedelta(minutes=30)


def test_learnt_interval_follows_the_publishing_rate_within_its_bounds(
    server: FeedServer, database: Database, poll: Poll
) -> None:
    options = {"interval": "15m", "max_interval": "6h"}
    # 21 items 8 hours apart fill the 7-day window: polled twice per gap, every 4 hours.
    steady = server.add("/steady.xml", rss2(dated_items(server, "steady", 21, timedelta(hours=8))), content_type=RSS)
    quiet = server.add("/quiet.xml", rss2(dated_items(server, "quiet", 2, timedelta(days=3))), content_type=RSS)
    undated = server.add("/undated.xml", rss2([{"title": "Undated", "link": server.url("/u.html")}]), content_type=RSS)

    summaries = poll(feed("steady", steady, **options), feed("quiet", quiet, **options), feed("undated", undated))

    assert [(s.name, s.outcome, s.new) for s in summaries] == [
        ("quiet", FetchOutcome.OK, 2),
        ("steady", FetchOutcome.OK, 21),
        ("undated", FetchOutcome.OK, 1),
    ]
    steady_wait = next_poll_after(database, "steady")
    assert timedelta(hours=3.5) <= steady_wait <= timedelta(hours=4)
    assert next_poll_after(database, "quiet") == timedelta(hours=6)
    assert next_poll_after(database, "undated") == timedelta(minutes=15)
    assert [state(database, name).poll_interval_seconds for name in ("steady", "quiet", "undated")] == [
        int(steady_wait.total_seconds()),
        6 * 3600,
        15 * 60,
    ]


def test_consecutive_failures_back_off_exponentially_and_success_resets_them(
    server: FeedServer, database: Database, poll: Poll
) -> None:
    failure = Route(b"down", 503)
    recovered = Route(rss2(dated_items(server, "back", 3, timedelta(hours=1))).encode(), headers={"Content-Type": RSS})
    url = server.add_sequence("/flaky.xml", failure, failure, failure, recovered)
    config = feed("flaky", url)
    once = FetchLimits(retries=0, host_delay=0)

    waits, failures = [], []
    for _ in range(3):
        (summary,) = poll(config, limits=once)
        assert summary.outcome is FetchOutcome.SOFT_ERROR
        waits.append(next_poll_after(database, "flaky"))
        failures.append(state(database, "flaky").consecutive_failures)

    assert failures == [1, 2, 3]
    # 15 min, then 30, then 60, each within the 10 % jitter.
    for wait, expected in zip(waits, (15, 30, 60), strict=True):
        assert timedelta(minutes=expected * 0.9) <= wait <= timedelta(minutes=expected * 1.1), waits

    (summary,) = poll(config, limits=once)

    assert (summary.outcome, summary.new) == (FetchOutcome.OK, 3)
    recovered_state = state(database, "flaky")
    assert (recovered_state.consecutive_failures, recovered_state.last_outcome) == (0, "ok")
    assert recovered_state.last_success_at == recovered_state.last_attempt_at
    assert next_poll_after(database, "flaky") <= timedelta(hours=6)
    assert server.hits("/flaky.xml") == 4
