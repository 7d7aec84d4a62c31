"""Fault injection: a loopback server misbehaving one way per test, on SQLite and PostgreSQL.

Each test checks three things: what was stored, what was recorded for the feed (fetch_state and fetch_log),
and that the server saw no more requests than allowed.
"""

from __future__ import annotations

import gzip
import io
import re
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from conftest import PAGES, FeedServer, Route, run_cli, write_feeds
from feedbuilders import rss2
from monitor.model import FetchOutcome
from monitor.pipeline import refresh
from monitor.pipeline.extract import Extractor
from monitor.pipeline.fetch import FetchLimits
from monitor.pipeline.guard import AddressPolicy
from monitor.store.db import Database, open_database, upgrade
from monitor.store.schema import Article, Base, FetchLog, Source
from pollkit import FAST, RSS, Poll, feed, state

# No politeness delay and near-instant retry backoff: the faults, not the waiting, are under test.
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def migrated_postgres(postgres_admin: sa.Engine) -> Iterator[str]:
    """One migrated PostgreSQL database for the module."""
    name = f"monitor_test_{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = postgres_admin.url.set(database=name).render_as_string(hide_password=False)
    database = open_database(url, migrate=False)
    upgrade(database)
    database.dispose()
    yield url
    with postgres_admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """conftest's database_url, except that PostgreSQL tests share one database, emptied before each test.

    Creating a database per test cost more than the tests themselves here (0.5-0.7 s each, 30-odd tests).
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'monitor.db'}"
    url: str = request.getfixturevalue("migrated_postgres")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
            connection.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()
    return url


def fetch_log(database: Database, name: str) -> list[FetchLog]:
    with database.session() as session:
        query = select(FetchLog).join(Source, Source.id == FetchLog.source_id).where(Source.name == name)
        return list(session.scalars(query.order_by(FetchLog.id)))


def next_poll_after(database: Database, name: str) -> timedelta:
    """How long after its last poll started the feed is due again."""
    recorded = state(database, name)
    assert recorded.next_poll_at is not None
    assert recorded.last_attempt_at is not None
    return recorded.next_poll_at - recorded.last_attempt_at


def articles(database: Database) -> list[Article]:
    with database.session() as session:
        return list(session.scalars(select(Article).order_by(Article.guid)))


def stories(server: FeedServer, count: int, *, prefix: str = "story") -> list[dict[str, object]]:
    """Items whose pages the server does not serve: they are stored from the feed's summary."""
    return [
        {
            "title": f"Headline {index}",
            "link": server.url(f"/{prefix}/{index}.html"),
            "guid": f"{prefix}-{index}",
            "published": NOW - timedelta(hours=index),
            "summary": f"Summary of story {index} from Almaty.",
        }
        for index in range(1, count + 1)
    ]


def feed_answer(items: list[dict[str, object]], **headers: str) -> Route:
    return Route(rss2(items).encode(), headers={"Content-Type": RSS, **headers})


def assert_failure_recorded(database: Database, name: str, outcome: FetchOutcome, error: str, *, attempts: int) -> None:
    """The feed's one fetch failed with outcome and an error containing `error`, after `attempts` tries."""
    recorded = state(database, name)
    assert recorded.last_outcome == outcome.value
    assert recorded.last_error
    assert error in recorded.last_error
    assert not recorded.last_error.startswith("internal error")
    assert recorded.consecutive_failures == 1
    assert recorded.last_success_at is None
    assert recorded.etag is None
    assert recorded.last_modified is None
    (entry,) = fetch_log(database, name)
    assert (entry.outcome, entry.attempts, entry.new_items) == (outcome.value, attempts, 0)
    assert error in (entry.error or "")


def test_slow_body_hits_the_total_timeout_and_is_recorded(server: FeedServer, database: Database, poll: Poll) -> None:
    body = rss2(stories(server, 3)).encode().ljust(8000)
    url = server.add("/slow.xml", body, content_type=RSS, chunk=400, trickle=0.25)  # 20 chunks: 5 s

    started = time.monotonic()
    (summary,) = poll(feed("slow", url), limits=FetchLimits(total_timeout=1, retries=0, host_delay=0))

    assert time.monotonic() - started < 3
    assert (summary.outcome, summary.error) == (FetchOutcome.SOFT_ERROR, "took longer than 1s")
    assert articles(database) == []
    assert_failure_recorded(database, "slow", FetchOutcome.SOFT_ERROR, "took longer than 1s", attempts=1)
    assert server.hits("/slow.xml") == 1
    assert server.hits("/robots.txt") == 0


def test_reset_connection_is_retried_then_recorded_as_soft_error(
    server: FeedServer, database: Database, poll: Poll
) -> None:
    url = server.add_reset("/reset.xml")
    limits = FetchLimits(retries=2, retry_base=0.01, host_delay=0)

    (summary,) = poll(feed("flaky", url), limits=limits)

    assert summary.outcome is FetchOutcome.SOFT_ERROR
    assert articles(database) == []
    # Any wording will do (httpx calls it "ReadError"), as long as one is recorded.
    assert_failure_recorded(database, "flaky", FetchOutcome.SOFT_ERROR, "", attempts=3)
    assert next_poll_after(database, "flaky") >= timedelta(minutes=15) * 0.9
    assert server.hits("/reset.xml") == 1 + limits.retries


def test_503_with_retry_after_is_retried_after_the_wait_and_stored(
    server: FeedServer, database: Database, poll: Poll
) -> None:
    url = server.add_sequence("/busy.xml", Route(b"busy", 503, {"Retry-After": "1"}), feed_answer(stories(server, 2)))

    (summary,) = poll(feed("busy", url))

    assert (summary.outcome, summary.new, summary.from_summary) == (FetchOutcome.OK, 2, 2)
    assert [a.guid for a in articles(database)] == ["story-1", "story-2"]
    first, second = server.seen("/busy.xml")
    assert (first.status, second.status) == (503, 200)
    assert second.started - first.started >= 0.9
    recorded = state(database, "busy")
    assert (recorded.last_outcome, recorded.consecutive_failures, recorded.last_error) == ("ok", 0, None)
    (entry,) = fetch_log(database, "busy")
    assert (entry.outcome, entry.status, entry.attempts, entry.new_items) == ("ok", 200, 2, 2)


def test_503_with_retry_after_beyond_retry_max_wait_waits_for_the_next_poll(
    server: FeedServer, database: Database, poll: Poll
) -> None:
    url = server.add("/maintenance.xml", "down for maintenance", status=503, headers={"Retry-After": "7200"})
    assert FAST.retry_max_wait < 7200

    (summary,) = poll(feed("maintenance", url))

    assert summary.outcome is FetchOutcome.SOFT_ERROR
    assert articles(database) == []
    assert_failure_recorded(
        database, "maintenance", FetchOutcome.SOFT_ERROR, "HTTP 503 Service Unavailable", attempts=1
    )
    assert next_poll_after(database, "maintenance") >= timedelta(seconds=7200)
    assert server.hits("/maintenance.xml") == 1


def test_429_is_retried_with_backoff_then_recorded(server: FeedServer, database: Database, poll: Poll) -> None:
    url = server.add("/limited.xml", "slow down", status=429)

    (summary,) = poll(feed("limited", url))

    assert (summary.outcome, summary.error) == (FetchOutcome.SOFT_ERROR, "HTTP 429 Too Many Requests")
    assert articles(database) == []
    assert_failure_recorded(database, "limited", FetchOutcome.SOFT_ERROR, "HTTP 429 Too Many Requests", attempts=3)
    assert server.hits("/limited.xml") == 1 + FAST.retries


def test_500_then_success_retries_once_and_stores_the_items(server: FeedServer, database: Database, poll: Poll) -> None:
    url = server.add_sequence("/wobbly.xml", Route(b"oops", 500), feed_answer(stories(server, 3)))

    (summary,) = poll(feed("wobbly", url))

    assert (summary.outcome, summary.new, summary.failed) == (FetchOutcome.OK, 3, 0)
    assert [a.title for a in articles(database)] == ["Headline 1", "Headline 2", "Headline 3"]
    assert [r.status for r in server.seen("/wobbly.xml")] == [500, 200]
    recorded = state(database, "wobbly")
    assert (recorded.last_outcome, recorded.consecutive_failures, recorded.last_error) == ("ok", 0, None)
    (entry,) = fetch_log(database, "wobbly")
    assert (entry.outcome, entry.attempts, entry.new_items, entry.error) == ("ok", 2, 3, None)


def test_404_is_not_retried(server: FeedServer, database: Database, poll: Poll) -> None:
    url = server.url("/gone.xml")

    (summary,) = poll(feed("gone", url))

    assert (summary.outcome, summary.error) == (FetchOutcome.HARD_ERROR, "HTTP 404 Not Found")
    assert articles(database) == []
    assert_failure_recorded(database, "gone", FetchOutcome.HARD_ERROR, "HTTP 404 Not Found", attempts=1)
    assert len(server.requests) == 1


def test_redirect_loop_is_a_hard_error_after_one_request_per_hop(
    server: FeedServer, database: Database, poll: Poll
) -> None:
    url = server.add_redirect("/loop/a.xml", "/loop/b.xml", status=302)
    server.add_redirect("/loop/b.xml", server.url("/loop/a.xml"), status=307)

    (summary,) = poll(feed("loop", url))

    assert (summary.outcome, summary.error) == (FetchOutcome.HARD_ERROR, "redirect loop")
    assert articles(database) == []
    assert_failure_recorded(database, "loop", FetchOutcome.HARD_ERROR, "redirect loop", attempts=1)
    assert [r.path for r in server.requests] == ["/loop/a.xml", "/loop/b.xml"]


def test_endless_redirect_chain_stops_at_max_redirects(server: FeedServer, database: Database, poll: Poll) -> None:
    for hop in range(20):
        server.add_redirect(f"/hop/{hop}.xml", f"/hop/{hop + 1}.xml", status=302)

    (summary,) = poll(feed("chain", server.url("/hop/0.xml")))

    assert summary.outcome is FetchOutcome.HARD_ERROR
    assert articles(database) == []
    assert_failure_recorded(database, "chain", FetchOutcome.HARD_ERROR, "more than 5 redirects", attempts=1)
    assert len(server.requests) == FAST.max_redirects + 1


def test_redirect_to_a_non_http_scheme_is_refused(server: FeedServer, database: Database, poll: Poll) -> None:
    url = server.add_redirect("/sneaky.xml", "file:///etc/passwd", status=302)

    (summary,) = poll(feed("sneaky", url))

    assert (summary.outcome, summary.error) == (FetchOutcome.REFUSED, "only http(s) URLs are fetched")
    assert articles(database) == []
    assert_failure_recorded(database, "sneaky", FetchOutcome.REFUSED, "only http(s) URLs are fetched", attempts=1)
    assert len(server.requests) == 1


def test_feed_on_a_refused_address_is_recorded_and_never_requested(
    server: FeedServer, database: Database, poll: Poll
) -> None:
    url = server.add("/rss.xml", rss2(stories(server, 1)), content_type=RSS)

    (summary,) = poll(feed("internal", url), policy=AddressPolicy())

    expected = "refused: 127.0.0.1 is 127.0.0.1, a loopback address"
    assert (summary.outcome, summary.error) == (FetchOutcome.REFUSED, expected)
    assert articles(database) == []
    assert_failure_recorded(database, "internal", FetchOutcome.REFUSED, expected, attempts=1)
    assert server.requests == []


def test_permanent_redirect_chain_is_followed_and_moves_the_feed_after_three_polls(
    server: FeedServer, database: Database, poll: Poll
) -> None:
    old = server.add_redirect("/old/rss.xml", "/mid/rss.xml", status=301)
    server.add_redirect("/mid/rss.xml", "/new/rss.xml", status=308)
    new = server.add("/new/rss.xml", rss2(stories(server, 2)), content_type=RSS)
    config = feed("moving", old)

    first = poll(config)
    second = poll(config)
    third = poll(config)

    assert [s.new for s in (*first, *second, *third)] == [2, 0, 0]
    assert [s.note for s in (*first, *second)] == [None, None]
    (moved,) = third
    assert moved.outcome is FetchOutcome.OK
    assert f"moved permanently to {new}" in (moved.note or "")
    assert len(articles(database)) == 2
    recorded = state(database, "moving")
    assert (recorded.moved_to, recorded.last_outcome, recorded.consecutive_failures) == (new, "ok", 0)
    assert [e.url for e in fetch_log(database, "moving")] == [new, new, new]
    assert [server.hits(p) for p in ("/old/rss.xml", "/mid/rss.xml", "/new/rss.xml")] == [3, 3, 3]

    (fourth,) = poll(config)

    assert (fourth.outcome, fourth.note) == (FetchOutcome.OK, None)
    assert [server.hits(p) for p in ("/old/rss.xml", "/mid/rss.xml", "/new/rss.xml")] == [3, 3, 4]


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed"])
def test_oversize_feed_is_a_hard_error(server: FeedServer, database: Database, poll: Poll, declared: bool) -> None:
    limits = FetchLimits(feed_max_bytes=64 * 1024, retry_base=0.01, host_delay=0)
    items = stories(server, 1)
    items[0]["summary"] = "Almaty " * 30_000  # 210 kB
    url = server.add("/huge.xml", rss2(items), content_type=RSS, content_length=declared)

    (summary,) = poll(feed("huge", url), limits=limits)

    assert (summary.outcome, summary.error) == (FetchOutcome.HARD_ERROR, "body larger than 0.0625 MB")
    assert articles(database) == []
    assert_failure_recorded(database, "huge", FetchOutcome.HARD_ERROR, "body larger than 0.0625 MB", attempts=1)
    assert server.hits("/huge.xml") == 1
    assert server.hits("/story/1.html") == 0


def gzip_bomb(size: int) -> bytes:
    """size zero bytes, gzip-compressed, without ever holding them in memory at once."""
    out = io.BytesIO()
    block = b"\0" * (1024 * 1024)
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as stream:
        for _ in range(size // len(block)):
            stream.write(block)
    return out.getvalue()


def test_gzip_bomb_is_cut_off_and_recorded(server: FeedServer, database: Database, poll: Poll) -> None:
    bomb = gzip_bomb(60 * 1024 * 1024)
    assert len(bomb) < 100 * 1024
    url = server.add("/bomb.xml", bomb, content_type=RSS, headers={"Content-Encoding": "gzip"})

    tracemalloc.start()
    try:
        (summary,) = poll(feed("bomb", url))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (summary.outcome, summary.error) == (FetchOutcome.HARD_ERROR, "body larger than 10 MB")
    # The cap is 10 MB (about 20 MB at peak with the copy); holding the whole 60 MB would show here.
    assert peak < 32 * 1024 * 1024, f"peak {peak / 2**20:.0f} MB"
    assert articles(database) == []
    assert_failure_recorded(database, "bomb", FetchOutcome.HARD_ERROR, "body larger than 10 MB", attempts=1)
    assert server.hits("/bomb.xml") == 1


def test_malformed_xml_that_feedparser_reads_is_stored(server: FeedServer, database: Database, poll: Poll) -> None:
    # Unescaped ampersands, an unclosed <b>, a missing </item> and no </rss>: seen on small regional sites.
    broken = (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>Wire & Co</title>'
        f"<item><title>Tashkent & Almaty sign a rail deal</title><link>{server.url('/story/1.html')}</link>"
        "<description>Unescaped <b>bold & brave</description></item>"
        f"<item><title>Dushanbe opens a new bridge</title><link>{server.url('/story/2.html')}</link>"
        "<description>The bridge links two districts.</description>\n</channel>"
    )
    url = server.add("/broken.xml", broken, content_type=RSS)

    (summary,) = poll(feed("broken", url))

    assert (summary.outcome, summary.new, summary.failed) == (FetchOutcome.OK, 2, 0)
    stored = {a.url: a for a in articles(database)}
    assert set(stored) == {server.url("/story/1.html"), server.url("/story/2.html")}
    assert stored[server.url("/story/1.html")].title == "Tashkent & Almaty sign a rail deal"
    assert stored[server.url("/story/2.html")].text == "The bridge links two districts."
    recorded = state(database, "broken")
    assert (recorded.last_outcome, recorded.consecutive_failures, recorded.last_error) == ("ok", 0, None)
    assert [(e.outcome, e.new_items) for e in fetch_log(database, "broken")] == [("ok", 2)]
    assert server.hits("/broken.xml") == 1


def test_html_instead_of_feed_names_the_feeds_the_page_advertises(
    server: FeedServer, database: Database, poll: Poll
) -> None:
    # A real news home page; it advertises its feed as <link rel="alternate" href="//abc13.com/feed/">.
    # With an ETag: a document that is no feed must not leave validators that would turn into a 304 later.
    url = server.add("/news", (PAGES / "abc13.com-Copperfield.html").read_bytes(), headers={"ETag": '"home-1"'})

    (summary,) = poll(feed("homepage", url))

    assert summary.outcome is FetchOutcome.HARD_ERROR
    expected = "not an RSS or Atom feed but an HTML page; it links to the feeds http://abc13.com/feed/"
    assert summary.error == expected
    assert articles(database) == []
    assert_failure_recorded(database, "homepage", FetchOutcome.HARD_ERROR, expected, attempts=1)
    assert [r.path for r in server.requests] == ["/news"]


RUSSIAN_PAGE = "kazakhstan-sputnikovyy-internet-shkoly.html"
RUSSIAN_TITLE = "Казахстан расширяет спутниковый интернет для сельских школ"
RUSSIAN_SUMMARY = "Ещё 600 сельских школ подключат к спутниковому интернету."
RUSSIAN_TEXT = "Министерство цифрового развития Казахстана объявило о расширении программы"


@pytest.mark.parametrize("label", ["wrong", "missing"])
def test_windows_1251_feed_and_page_are_stored_as_russian(
    server: FeedServer, database: Database, poll: Poll, label: str
) -> None:
    # The project's own Russian demo article, served the way old Central Asian CMSs do: windows-1251 bytes.
    page = (files("monitor") / "data" / "demo" / "site" / "steppe" / RUSSIAN_PAGE).read_text("utf-8")
    page_bytes = page.replace("{{BASE}}", server.base).encode("cp1251", "xmlcharrefreplace")
    document = rss2(
        [
            {
                "title": RUSSIAN_TITLE,
                "link": server.url(f"/steppe/{RUSSIAN_PAGE}"),
                "guid": "steppe-1",
                "published": NOW,
                "summary": RUSSIAN_SUMMARY,
                "author": "Айгерим Сарсенова",
            }
        ],
        title="Степной вестник",
    )
    if label == "wrong":
        # Both claim UTF-8 (the XML declaration and the page's <meta charset="utf-8"> stay), and the page's
        # HTTP header claims Latin-1.
        feed_type, page_type = f"{RSS}; charset=utf-8", "text/html; charset=iso-8859-1"
    else:
        document = document.replace(' encoding="UTF-8"', "")
        page_bytes = re.sub(rb"<meta charset=[^>]*>", b"", page_bytes)
        assert b"charset" not in page_bytes
        feed_type, page_type = RSS, "text/html"
    url = server.add("/steppe/rss.xml", document.encode("cp1251"), content_type=feed_type)
    server.add(f"/steppe/{RUSSIAN_PAGE}", page_bytes, content_type=page_type)

    (summary,) = poll(feed("steppe", url, language="ru"))

    assert (summary.outcome, summary.new, summary.from_summary) == (FetchOutcome.OK, 1, 0)
    (article,) = articles(database)
    assert article.title == RUSSIAN_TITLE
    assert article.summary == RUSSIAN_SUMMARY
    assert article.author == "Айгерим Сарсенова"
    assert article.extraction == "page", article.extraction_error
    assert RUSSIAN_TEXT in article.text
    assert not {"Ð", "Ã", "\ufffd"} & set(article.text), "mojibake"
    assert state(database, "steppe").last_outcome == "ok"
    assert (server.hits("/steppe/rss.xml"), server.hits(f"/steppe/{RUSSIAN_PAGE}")) == (1, 1)


def test_page_with_unsupported_content_encoding_costs_that_page_not_the_feed(
    server: FeedServer, database: Database, poll: Poll
) -> None:
    items = stories(server, 3)
    # We send Accept-Encoding: gzip, deflate; some servers answer with Brotli anyway.
    server.add("/story/2.html", b"\x1b\x03\x00\xf8\xa5\x0c", headers={"Content-Encoding": "br"})
    url = server.add("/rss.xml", rss2(items), content_type=RSS)

    (summary,) = poll(feed("brotli", url))

    assert (summary.outcome, summary.new, summary.error) == (FetchOutcome.OK, 3, None)
    stored = {a.guid: a for a in articles(database)}
    assert set(stored) == {"story-1", "story-2", "story-3"}
    assert stored["story-2"].extraction == "feed-summary"
    assert "unsupported Content-Encoding 'br'" in (stored["story-2"].extraction_error or "")
    assert state(database, "brotli").last_outcome == "ok"
    assert server.hits("/story/2.html") == 1


METADATA = "http://169.254.169.254/latest/meta-data/"


@pytest.fixture
def private_links(server: FeedServer) -> Iterator[tuple[FeedServer, FeedServer]]:
    """An outlet on 127.0.0.2 whose items point at cloud metadata and at a service on 127.0.0.1.

    `server` (127.0.0.1) plays the internal service: it must never see a request.
    """
    outlet = FeedServer(host="127.0.0.2")
    admin = server.add("/admin", "internal admin console")
    outlet.add_redirect("/go", admin, status=302)
    items = [
        {"title": "Metadata", "link": METADATA, "guid": "m", "summary": "Item pointing at cloud metadata."},
        {"title": "Admin", "link": admin, "guid": "a", "summary": "Item pointing at a loopback service."},
        {"title": "Detour", "link": outlet.url("/go"), "guid": "d", "summary": "Item redirecting to it."},
    ]
    outlet.add("/rss.xml", rss2(items), content_type=RSS)
    yield outlet, server
    outlet.close()


def assert_refused_and_stored_from_summary(database: Database, outlet: FeedServer, internal: FeedServer) -> None:
    stored = {a.guid: a for a in articles(database)}
    assert set(stored) == {"m", "a", "d"}
    for article in stored.values():
        assert article.extraction == "feed-summary"
        assert article.text.startswith("Item ")
        assert "refused" in (article.extraction_error or "")
    assert internal.requests == []
    assert [r.path for r in outlet.requests if r.path != "/robots.txt"] == ["/rss.xml", "/go"]


def test_items_linking_to_private_addresses_are_refused_never_requested(
    private_links: tuple[FeedServer, FeedServer], database: Database, poll: Poll
) -> None:
    outlet, internal = private_links

    (summary,) = poll(feed("outlet", outlet.url("/rss.xml")), policy=AddressPolicy.from_setting("127.0.0.2/32"))

    assert (summary.outcome, summary.new, summary.from_summary) == (FetchOutcome.OK, 3, 3)
    assert_refused_and_stored_from_summary(database, outlet, internal)
    recorded = state(database, "outlet")
    assert (recorded.last_outcome, recorded.consecutive_failures) == ("ok", 0)


def test_refused_item_address_is_named_in_the_extraction_error(
    private_links: tuple[FeedServer, FeedServer], database: Database, poll: Poll
) -> None:
    outlet, _internal = private_links

    poll(feed("outlet", outlet.url("/rss.xml")), policy=AddressPolicy.from_setting("127.0.0.2/32"))

    errors = {a.guid: a.extraction_error or "" for a in articles(database)}
    assert "169.254.169.254, a link-local address" in errors["m"]
    assert "127.0.0.1, a loopback address" in errors["a"]
    assert "127.0.0.1, a loopback address" in errors["d"]
    assert not any("robots.txt" in error for error in errors.values())


def test_private_networks_setting_allows_only_the_listed_network_through_the_cli(
    private_links: tuple[FeedServer, FeedServer],
    database_url: str,
    database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outlet, internal = private_links
    monkeypatch.setenv("MONITOR_ALLOW_PRIVATE_NETWORKS", "127.0.0.2/32")
    config = write_feeds(tmp_path / "config", [{"name": "outlet", "url": outlet.url("/rss.xml")}])

    result = run_cli("poll", database_url=database_url, config_dir=config)

    assert result.exit_code == 0, result.output
    assert "1 feed polled, 3 new articles" in result.stdout
    assert "3 from the feed's summary" in result.stdout
    assert_refused_and_stored_from_summary(database, outlet, internal)


def count_feed_parsing(extractor: Extractor, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs of the feeds parsed from now on (parsing runs on the extraction workers)."""
    parsed: list[str] = []
    call = extractor.call

    async def counting_call(function: Any, *args: Any) -> Any:
        if function is refresh._parse_feed:
            parsed.append(args[1])
        return await call(function, *args)

    monkeypatch.setattr(extractor, "call", counting_call)
    return parsed


def test_304_after_etag_skips_parsing_and_keeps_validators(
    server: FeedServer, database: Database, poll: Poll, extractor: Extractor, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed = count_feed_parsing(extractor, monkeypatch)
    url = server.add("/etag.xml", rss2(stories(server, 2)), content_type=RSS, headers={"ETag": '"v1"'})
    config = feed("etag", url)

    poll(config)
    (again,) = poll(config)

    assert (again.outcome, again.new, again.skipped) == (FetchOutcome.NOT_MODIFIED, 0, 0)
    assert parsed == [url]
    assert len(articles(database)) == 2
    first, second = server.seen("/etag.xml")
    assert "if-none-match" not in first.headers
    assert (second.headers.get("if-none-match"), second.status) == ('"v1"', 304)
    recorded = state(database, "etag")
    assert (recorded.etag, recorded.last_modified, recorded.last_outcome) == ('"v1"', None, "not-modified")
    assert recorded.consecutive_failures == 0
    assert [(e.outcome, e.status, e.new_items) for e in fetch_log(database, "etag")] == [
        ("ok", 200, 2),
        ("not-modified", 304, 0),
    ]
    # Pages are fetched once, on the first poll only.
    assert server.hits("/story/1.html") == 1


def test_304_after_last_modified_skips_parsing_and_keeps_validators(
    server: FeedServer, database: Database, poll: Poll, extractor: Extractor, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed = count_feed_parsing(extractor, monkeypatch)
    modified = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    url = server.add("/lm.xml", rss2(stories(server, 2)), content_type=RSS, headers={"Last-Modified": modified})
    config = feed("lastmod", url)

    poll(config)
    (again,) = poll(config)

    assert (again.outcome, again.new) == (FetchOutcome.NOT_MODIFIED, 0)
    assert parsed == [url]
    assert len(articles(database)) == 2
    first, second = server.seen("/lm.xml")
    assert "if-modified-since" not in first.headers
    assert "if-none-match" not in second.headers
    assert (second.headers.get("if-modified-since"), second.status) == (modified, 304)
    recorded = state(database, "lastmod")
    assert (recorded.etag, recorded.last_modified, recorded.last_outcome) == (None, modified, "not-modified")
    assert [(e.outcome, e.new_items) for e in fetch_log(database, "lastmod")] == [("ok", 2), ("not-modified", 0)]
    assert server.hits("/story/1.html") == 1


def test_empty_feed_is_ok_and_stores_nothing(server: FeedServer, database: Database, poll: Poll) -> None:
    url = server.add("/empty.xml", rss2([]), content_type=RSS)

    (summary,) = poll(feed("empty", url))

    assert (summary.outcome, summary.new, summary.skipped, summary.failed, summary.error) == (
        FetchOutcome.OK,
        0,
        0,
        0,
        None,
    )
    assert articles(database) == []
    recorded = state(database, "empty")
    assert (recorded.last_outcome, recorded.consecutive_failures, recorded.last_error) == ("ok", 0, None)
    # No dates to learn a publishing rate from: the configured interval.
    assert next_poll_after(database, "empty") == timedelta(minutes=15)
    assert [(e.outcome, e.new_items) for e in fetch_log(database, "empty")] == [("ok", 0)]
    assert [r.path for r in server.requests] == ["/empty.xml"]


def test_entries_without_link_date_or_title_are_handled(server: FeedServer, database: Database, poll: Poll) -> None:
    titled_page = server.add("/pages/salon.html", (PAGES / "abc13.com-Copperfield.html").read_bytes())
    items: list[dict[str, object]] = [
        {"title": "No link at all", "guid": "nolink", "published": NOW, "summary": "Nowhere to go."},
        {"title": "No date", "link": server.url("/story/undated.html"), "guid": "nodate", "summary": "Undated."},
        {"link": titled_page, "guid": "notitle", "published": NOW, "summary": "Short."},
        {"link": server.url("/story/bare.html"), "guid": "bare"},
    ]
    url = server.add("/odd.xml", rss2(items), content_type=RSS)

    (summary,) = poll(feed("odd", url))

    assert (summary.outcome, summary.new, summary.failed) == (FetchOutcome.OK, 3, 1)
    stored = {a.guid: a for a in articles(database)}
    assert set(stored) == {"nodate", "notitle", "bare"}
    assert (stored["nodate"].title, stored["nodate"].published_at, stored["nodate"].text) == (
        "No date",
        None,
        "Undated.",
    )
    assert stored["notitle"].title.startswith("Aisha's Salon and Spa chain bans men")
    assert stored["notitle"].extraction == "page"
    assert stored["bare"].title == server.url("/story/bare.html")
    assert (stored["bare"].text, stored["bare"].extraction) == ("", "none")
    recorded = state(database, "odd")
    assert (recorded.last_outcome, recorded.consecutive_failures) == ("ok", 0)
    assert [(e.outcome, e.new_items) for e in fetch_log(database, "odd")] == [("ok", 3)]


def test_a_repeated_item_is_stored_once(server: FeedServer, database: Database, poll: Poll) -> None:
    items = stories(server, 2)
    items.append(dict(items[0]))
    url = server.add("/repeats.xml", rss2(items), content_type=RSS)

    (summary,) = poll(feed("repeats", url))

    assert (summary.outcome, summary.new) == (FetchOutcome.OK, 2)
    assert sorted(a.guid for a in articles(database)) == ["story-1", "story-2"]
    assert server.hits("/story/1.html") == 1
    assert [(e.outcome, e.new_items) for e in fetch_log(database, "repeats")] == [("ok", 2)]


def test_one_guid_on_different_links_keeps_every_story(server: FeedServer, database: Database, poll: Poll) -> None:
    # Some CMSs put the same GUID (often the home page) on every item: the links tell the stories apart.
    items = stories(server, 3)
    for item in items:
        item["guid"] = "https://outlet.example/"
    url = server.add("/same-guid.xml", rss2(items), content_type=RSS)

    (summary,) = poll(feed("same-guid", url))
    (again,) = poll(feed("same-guid", url))

    assert (summary.new, again.new, again.skipped) == (3, 0, 3)
    assert sorted(a.title for a in articles(database)) == ["Headline 1", "Headline 2", "Headline 3"]


def test_relative_links_resolve_against_the_feed_url(server: FeedServer, database: Database, poll: Poll) -> None:
    items: list[dict[str, object]] = [
        {"title": "Root-relative", "link": "/news/2026/rail.html", "guid": "r1", "summary": "Rail."},
        {"title": "Path-relative", "link": "2026/bridge.html", "guid": "r2", "summary": "Bridge."},
        {"title": "Parent", "link": "../archive/dam.html", "guid": "r3", "summary": "Dam."},
    ]
    url = server.add("/feeds/tj/rss.xml", rss2(items), content_type=RSS)

    (summary,) = poll(feed("relative", url))

    assert (summary.outcome, summary.new, summary.failed) == (FetchOutcome.OK, 3, 0)
    expected = {
        "r1": server.url("/news/2026/rail.html"),
        "r2": server.url("/feeds/tj/2026/bridge.html"),
        "r3": server.url("/feeds/archive/dam.html"),
    }
    assert {a.guid: a.url for a in articles(database)} == expected
    # The identity key folds http into https (the page itself keeps its scheme in url).
    assert {a.guid: a.canonical_url for a in articles(database)} == {
        guid: url.replace("http://", "https://") for guid, url in expected.items()
    }
    for link in expected.values():
        assert server.hits(link.removeprefix(server.base)) == 1
    assert state(database, "relative").last_outcome == "ok"
