"""Feed parsing, canonical URLs and extraction, stage by stage."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from pebble import ProcessPool

from conftest import PAGES
from feedbuilders import atom, rss1, rss2
from monitor.model import ExtractedArticle, Extraction, ParsedEntry, ParsedFeed
from monitor.pipeline import extract
from monitor.pipeline.extract import ExtractionError, Extractor, extract_article, html_to_text
from monitor.pipeline.parse import SITEMAP_MAX_ENTRIES, NotAFeedError, SitemapIndex, parse_feed, parse_sitemap
from monitor.pipeline.prepare import Enrichment, PageJob, prepare
from pollkit import kill_worker, worker_pid

ITEMS: list[dict[str, object]] = [
    {
        "title": "One",
        "link": "https://x.org/1",
        "guid": "a",
        "published": datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        "summary": "<p>First</p>",
    },
    {"title": "Two", "link": "https://x.org/2", "guid": "b", "published": datetime(2026, 1, 3, tzinfo=UTC)},
]


@pytest.mark.parametrize("build", [rss2, rss1, atom], ids=["rss2", "rss1", "atom"])
def test_every_format_yields_links_titles_and_utc_dates(build: object) -> None:
    feed = parse_feed(build(ITEMS).encode(), url="https://x.org/feed")  # type: ignore[operator]

    assert [e.link for e in feed.entries] == ["https://x.org/1", "https://x.org/2"]
    assert [e.title for e in feed.entries] == ["One", "Two"]
    assert feed.entries[0].published_at == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)


def test_relative_links_resolve_against_the_feed_url() -> None:
    feed = parse_feed(
        rss2([{"title": "R", "link": "/news/5", "guid": "r"}]).encode(), url="https://x.org/feeds/all.rss"
    )

    assert feed.entries[0].link == "https://x.org/news/5"


def test_repeated_guid_is_kept_once_and_linkless_entries_are_counted() -> None:
    items = [ITEMS[0], {**ITEMS[0], "title": "again"}, {"title": "no link", "guid": "z"}]

    feed = parse_feed(rss2(items).encode(), url="https://x.org/feed")

    assert [e.title for e in feed.entries] == ["One"]
    assert feed.dropped == 1


def test_missing_guid_falls_back_to_link_and_missing_date_to_none() -> None:
    feed = parse_feed(rss2([{"title": "T", "link": "https://x.org/t"}]).encode(), url="https://x.org/feed")

    assert feed.entries[0].guid == "https://x.org/t"
    assert feed.entries[0].published_at is None


def test_malformed_xml_still_yields_entries_with_a_warning() -> None:
    broken = rss2(ITEMS).replace("<title>One</title>", "<title>One & Co</title>")

    feed = parse_feed(broken.encode(), url="https://x.org/feed")

    assert len(feed.entries) == 2
    assert feed.warning


def test_nul_in_a_guid_never_reaches_the_database() -> None:
    document = rss2([{"title": "T", "link": "https://x.org/t", "guid": "id&#0;42"}]).replace("&amp;#0;", "&#0;")
    feed = parse_feed(document.encode(), url="https://x.org/")

    assert feed.entries[0].guid == "id42"


def test_one_guid_on_every_item_falls_back_to_the_links() -> None:
    items = [{"title": f"T{n}", "link": f"https://x.org/{n}", "guid": "https://x.org/"} for n in range(3)]

    feed = parse_feed(rss2(items).encode(), url="https://x.org/feed")

    assert [e.guid for e in feed.entries] == ["https://x.org/0", "https://x.org/1", "https://x.org/2"]


def test_html_page_without_feed_links_says_so() -> None:
    with pytest.raises(NotAFeedError, match="an HTML page, and it links to no feed"):
        parse_feed(b"<!doctype html><html><head><title>Home</title></head><body>Hi</body></html>", url="https://x.org/")


def test_html_page_is_not_a_feed() -> None:
    with pytest.raises(NotAFeedError, match="not an RSS or Atom feed"):
        parse_feed(b"<!doctype html><html><body><p>Home</p></body></html>", url="https://x.org/")


def test_extract_article_from_real_page() -> None:
    article = extract_article((PAGES / "abc7news.com-Napa.html").read_bytes(), "https://abc7news.com/x")

    assert article.title
    assert "Margaritaville" in article.title
    assert "Lake Berryessa" in article.text
    assert article.language == "en"
    assert article.published_at == datetime(2023, 11, 9, tzinfo=UTC)


def test_extract_rejects_a_page_without_article_text() -> None:
    with pytest.raises(ExtractionError):
        extract_article(b"<html><head><title>Login</title></head><body><script>app()</script></body></html>")


def _extract(extractor: Extractor, body: bytes, *, url: str) -> ExtractedArticle:
    return asyncio.run(extractor.extract_async(body, url=url))


def test_extractor_pool_returns_results_and_errors() -> None:
    with Extractor(workers=1, timeout=60) as extractor:
        article = _extract(extractor, (PAGES / "aclu.org-grades.html").read_bytes(), url="https://aclu.org/x")
        assert "grades" in article.text
        with pytest.raises(ExtractionError):
            _extract(extractor, b"", url="https://x.org/empty")


def test_a_page_that_overruns_its_time_is_abandoned_and_the_pool_goes_on() -> None:
    page = (PAGES / "bbc.com.52241221.html").read_bytes()
    with Extractor(workers=1, timeout=2) as extractor:
        _extract(extractor, page, url="https://x.org/warm")  # the worker is up: only the page's time counts
        with pytest.raises(ExtractionError, match="took longer than 2s"):
            asyncio.run(extractor.run_page(time.sleep, 3600))  # no real page hangs on demand
        assert "Hart Island" in _extract(extractor, page, url="https://x.org/ok").text


def test_a_worker_that_dies_costs_its_page_and_is_replaced() -> None:
    page = (PAGES / "bbc.com.52241221.html").read_bytes()
    with Extractor(workers=1) as extractor:
        with pytest.raises(ExtractionError, match="worker died"):
            asyncio.run(extractor.run_page(kill_worker))
        assert "Hart Island" in _extract(extractor, page, url="https://x.org/ok").text


def test_workers_started_ahead_take_the_first_page() -> None:
    page = (PAGES / "abc7news.com-Napa.html").read_bytes()
    with Extractor(workers=1, max_tasks=2) as extractor:
        extractor.start()
        extractor.start()  # again while they start: still one pool
        pids = [asyncio.run(extractor.run_page(worker_pid)) for _ in range(2)]
        assert pids[0] == pids[1]  # starting took none of the worker's two tasks
        assert "Lake Berryessa" in _extract(extractor, page, url="https://x.org/napa").text


def test_a_close_calls_off_a_start_not_yet_under_way(monkeypatch: pytest.MonkeyPatch) -> None:
    held: list[threading.Thread] = []

    class Late(threading.Thread):
        def start(self) -> None:
            held.append(self)  # the start() thread gets going only after the close

    late_threads = SimpleNamespace(Thread=Late, Lock=threading.Lock, Event=threading.Event)
    monkeypatch.setattr(extract, "threading", late_threads)  # in the extraction module only
    extractor = Extractor(workers=1)
    extractor.start()
    extractor.close()
    for thread in held:
        threading.Thread.start(thread)
        thread.join()

    assert held
    assert extractor._pool is None  # no workers started behind the close, to be left running


def test_a_page_waiting_for_the_workers_fails_cleanly_when_the_extractor_closes_meanwhile() -> None:
    entered, proceed = threading.Event(), threading.Event()

    class SlowStart(Extractor):
        def _start(self, generation: int) -> ProcessPool | None:
            entered.set()
            proceed.wait(10)  # the workers are still starting when the close comes
            return super()._start(generation)

    extractor = SlowStart(workers=1)
    outcome: list[BaseException] = []

    def page() -> None:
        try:
            asyncio.run(extractor.run_page(worker_pid))
        except BaseException as exc:  # noqa: BLE001 - the outcome under test
            outcome.append(exc)

    waiting = threading.Thread(target=page)
    waiting.start()
    assert entered.wait(10)
    extractor.close()
    proceed.set()
    waiting.join(10)

    assert len(outcome) == 1
    assert isinstance(outcome[0], ExtractionError)
    assert "stopped" in str(outcome[0])
    assert extractor._pool is None  # no pool started behind the close


def _prepared(entry: ParsedEntry, page: bytes) -> ExtractedArticle:
    job = PageJob(entry, entry.link, 1, None, datetime(2026, 11, 26, tzinfo=UTC), entry.link, page, "text/html")
    draft = prepare(job, Enrichment(None)).draft
    assert draft.extraction is Extraction.PAGE
    return ExtractedArticle(draft.title, draft.text, draft.author, draft.published_at, draft.language)


def test_the_page_fills_in_what_the_feed_item_lacks_and_the_feed_item_wins_otherwise() -> None:
    page = (PAGES / "aclu.org-grades.html").read_bytes()
    link = "https://aclu.org/grades"
    from_page = _prepared(ParsedEntry("g1", link, None, None, None, None), page)
    when = datetime(2026, 11, 20, tzinfo=UTC)
    from_feed = _prepared(ParsedEntry("g2", link, "Feed's headline", None, "Feed Desk", when), page)

    assert from_page.author == "Sarah Hinger; Sylvia Torres-Guillén"
    assert from_page.published_at == datetime(2019, 7, 25, tzinfo=UTC)
    assert "grades" in (from_page.title or "").lower()
    # Title, author and date all from the feed: the page's metadata is not read, and its text is the same.
    assert (from_feed.title, from_feed.author, from_feed.published_at) == ("Feed's headline", "Feed Desk", when)
    assert from_feed.text == from_page.text
    assert from_feed.language == from_page.language == "en"


@pytest.mark.parametrize("page", sorted(PAGES.glob("*.html")), ids=lambda path: path.stem)
def test_title_or_author_read_alone_match_the_whole_metadata_pass(page: Path) -> None:
    body = page.read_bytes()
    whole = extract_article(body, "https://x.org/a")
    author = extract_article(body, "https://x.org/a", fields={"author"})
    title = extract_article(body, "https://x.org/a", fields={"title"})

    assert (author.author, title.title, author.text) == (whole.author, whole.title, whole.text)
    assert author.published_at is None  # the date was not asked for: its pass (htmldate) did not run


def test_summary_html_becomes_plain_text() -> None:
    assert html_to_text("<p>A <b>bold</b> move.</p><p>Second para</p>") == "A bold move. Second para"
    assert html_to_text("plain   text") == "plain text"


NEWS_SITEMAP = """<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
  <url><loc>https://caspiannews.com/news-detail/old</loc><lastmod>2026-11-01T10:00:00+04:00</lastmod></url>
  <url><loc>https://caspiannews.com/news-detail/new</loc>
    <news:news><news:publication><news:name>Caspian News</news:name><news:language>en</news:language></news:publication>
      <news:publication_date>2026-11-24T08:00:00Z</news:publication_date>
      <news:title>Starlink reaches the Caspian</news:title></news:news></url>
  <url><loc>/news-detail/relative</loc></url>
  <url><loc>https://caspiannews.com/news-detail/new</loc></url>
</urlset>"""


def test_news_sitemap_yields_newest_first_with_titles() -> None:
    feed = parse_sitemap(NEWS_SITEMAP.encode(), url="https://caspiannews.com/sitemap.xml")

    assert isinstance(feed, ParsedFeed)
    assert [e.link for e in feed.entries] == [
        "https://caspiannews.com/news-detail/new",
        "https://caspiannews.com/news-detail/old",
        "https://caspiannews.com/news-detail/relative",
    ]
    assert feed.entries[0].title == "Starlink reaches the Caspian"
    assert feed.entries[0].published_at == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert feed.entries[1].published_at == datetime(2026, 11, 1, 6, 0, tzinfo=UTC)


def test_gzipped_sitemap_is_read() -> None:
    feed = parse_sitemap(gzip.compress(NEWS_SITEMAP.encode()), url="https://caspiannews.com/sitemap.xml.gz")

    assert isinstance(feed, ParsedFeed)
    assert len(feed.entries) == 3


def test_sitemap_index_lists_newest_children() -> None:
    index = b"""<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
      <sitemap><loc>/sitemap-2026-09.xml</loc><lastmod>2026-09-30</lastmod></sitemap>
      <sitemap><loc>/sitemap-2026-11.xml</loc><lastmod>2026-11-24</lastmod></sitemap>
      <sitemap><loc>/sitemap-2026-10.xml</loc><lastmod>2026-10-31</lastmod></sitemap>
    </sitemapindex>"""

    parsed = parse_sitemap(index, url="https://x.tm/sitemap.xml")

    assert parsed == SitemapIndex(("https://x.tm/sitemap-2026-11.xml", "https://x.tm/sitemap-2026-10.xml"))


def test_a_big_sitemap_is_cut_to_the_newest_entries() -> None:
    urls = "".join(
        f"<url><loc>https://x.tm/{n}</loc><lastmod>2026-{1 + n // 28:02d}-{1 + n % 28:02d}</lastmod></url>"
        for n in range(300)
    )
    feed = parse_sitemap(
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'.encode(),
        url="https://x.tm/s.xml",
    )

    assert isinstance(feed, ParsedFeed)
    assert len(feed.entries) == SITEMAP_MAX_ENTRIES
    assert feed.entries[0].link == "https://x.tm/299"


def test_html_is_not_a_sitemap() -> None:
    with pytest.raises(NotAFeedError, match="not an XML sitemap"):
        parse_sitemap(b"<html><body>hi</body></html>", url="https://x.tm/")


def test_summary_text_drops_scripts_and_styles() -> None:
    fragment = "<p>Talks in <b>Ashgabat</b>.</p><script>track('x')</script><style>p{}</style><p>More.</p>"

    assert html_to_text(fragment) == "Talks in Ashgabat. More."
