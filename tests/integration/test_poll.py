"""`monitor poll` end to end: loopback outlets serving RSS 2.0, RSS 1.0 and Atom, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import PAGES, FeedServer, run_cli, write_feeds
from feedbuilders import atom, rss1, rss2

TASHKENT = timezone(timedelta(hours=5))


def _page(server: FeedServer, name: str) -> str:
    return server.add(f"/pages/{name}", (PAGES / name).read_bytes())


@pytest.fixture
def outlets(server: FeedServer, tmp_path: Path) -> Path:
    """Three outlets, one per feed format; one article page is missing."""
    wire = [
        {
            "title": "Salon chain bans men",
            "link": _page(server, "abc13.com-Copperfield.html") + "?utm_source=rss&utm_medium=feed",
            "guid": "wire-1",
            "published": datetime(2026, 11, 20, 9, 30, tzinfo=TASHKENT),
            "summary": "<p>A Houston-area beauty business is taking <b>drastic</b> measures.</p>",
            "author": "Wire Desk",
        },
        {
            "title": "Margaritaville resort for Lake Berryessa",
            "link": _page(server, "abc7news.com-Napa.html"),
            "guid": "wire-2",
            "published": datetime(2026, 11, 21, 8, 0, tzinfo=UTC),
            "summary": "Napa County enters an exclusive agreement.",
        },
    ]
    rdf = [
        {
            "title": "County stops criminalising bad grades",
            "link": _page(server, "aclu.org-grades.html"),
            "published": datetime(2026, 11, 19, 12, 0, tzinfo=UTC),
            "summary": "Students were sent to court for bad grades.",
        },
        {
            "title": "New York ramps up mass burials",
            "link": _page(server, "bbc.com.52241221.html"),
            "published": datetime(2026, 11, 18, 6, 15, tzinfo=UTC),
            "summary": "Coffins buried in a mass grave.",
        },
    ]
    feed = [
        {
            "title": "Loriot 100",
            "link": _page(server, "Ostbelgiendirekt.be-ARD-Doku.html"),
            "guid": "urn:atom:1",
            "published": datetime(2026, 11, 22, 18, 0, tzinfo=UTC),
            "summary": "Eine Hommage an Vicco von Bülow.",
        },
        {
            "title": "Ferry line opens between Turkmenbashi and Baku",
            "link": server.url("/pages/gone.html"),
            "guid": "urn:atom:2",
            "published": datetime(2026, 11, 23, 7, 0, tzinfo=UTC),
            "summary": "A new ferry line links Turkmenbashi and Baku, cutting transit times for containers.",
        },
    ]
    server.add("/wire/rss.xml", rss2(wire), content_type="application/rss+xml", headers={"ETag": '"w1"'})
    server.add("/rdf/feed.rdf", rss1(rdf), content_type="application/rdf+xml")
    server.add("/atom/feed.xml", atom(feed), content_type="application/atom+xml")
    return write_feeds(
        tmp_path / "config",
        [
            {"name": "wire", "url": server.url("/wire/rss.xml"), "language": "en", "interval": "15m"},
            {"name": "rdf", "url": server.url("/rdf/feed.rdf"), "language": "en"},
            {"name": "atomic", "url": server.url("/atom/feed.xml"), "kind": "atom", "language": "de"},
        ],
    )


def _articles(database_url: str) -> list[dict[str, object]]:
    result = run_cli("search", "--limit", "0", "--format", "json", database_url=database_url)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _fetch_state(database_url: str, name: str) -> dict[str, object]:
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            row = (
                connection.execute(
                    sa.text(
                        "select s.name, f.etag, f.last_outcome, f.last_error, f.consecutive_failures, f.next_poll_at "
                        "from sources s join fetch_state f on f.source_id = s.id where s.name = :name"
                    ),
                    {"name": name},
                )
                .mappings()
                .one()
            )
            return dict(row)
    finally:
        engine.dispose()


def test_poll_stores_every_format_with_page_text(outlets: Path, database_url: str, server: FeedServer) -> None:
    result = run_cli("poll", database_url=database_url, config_dir=outlets)

    assert result.exit_code == 0, result.output
    assert "3 feeds polled, 6 new articles" in result.stdout
    articles = {a["title"]: a for a in _articles(database_url)}
    assert len(articles) == 6
    salon = articles["Salon chain bans men"]
    assert salon["source"] == "wire"
    assert salon["canonical_url"] == server.url("/pages/abc13.com-Copperfield.html").replace("http:", "https:")
    assert "utm_source" in str(salon["url"])
    # Feed dates in +05:00 are stored and shown in UTC.
    assert salon["published_at"] == "2026-11-20T04:30:00Z"
    assert salon["extraction"] == "page"
    assert salon["language"] == "en"
    assert "Houston-area beauty business" in str(salon["snippet"])
    assert articles["Loriot 100"]["language"] == "de"
    assert {a["source"] for a in articles.values()} == {"wire", "rdf", "atomic"}


def test_page_text_comes_from_the_article_not_the_navigation(outlets: Path, database_url: str) -> None:
    run_cli("poll", database_url=database_url, config_dir=outlets)
    bbc = next(a for a in _articles(database_url) if a["title"] == "New York ramps up mass burials")

    shown = run_cli("show", str(bbc["id"]), "--format", "json", database_url=database_url)

    assert shown.exit_code == 0, shown.output
    article = json.loads(shown.stdout)
    assert "Hart Island" in article["text"]
    assert "Cookie" not in article["text"]
    assert article["extraction"] == "page"


def test_unreachable_page_falls_back_to_feed_summary(outlets: Path, database_url: str) -> None:
    result = run_cli("poll", database_url=database_url, config_dir=outlets)

    assert "1 from the feed's summary" in result.stdout
    ferry = next(a for a in _articles(database_url) if a["title"].startswith("Ferry line"))  # type: ignore[union-attr]
    shown = json.loads(run_cli("show", str(ferry["id"]), "--format", "json", database_url=database_url).stdout)
    assert shown["extraction"] == "feed-summary"
    assert "cutting transit times" in shown["text"]
    assert "404" in shown["extraction_error"]


def test_second_poll_fetches_no_page_and_stores_nothing_twice(
    outlets: Path, database_url: str, server: FeedServer
) -> None:
    run_cli("poll", database_url=database_url, config_dir=outlets)
    pages_before = sum(1 for r in server.requests if r.path.startswith("/pages/"))

    again = run_cli("poll", "--all", database_url=database_url, config_dir=outlets)

    assert again.exit_code == 0, again.output
    assert "0 new articles" in again.stdout
    assert sum(1 for r in server.requests if r.path.startswith("/pages/")) == pages_before
    assert len(_articles(database_url)) == 6


def test_conditional_get_uses_stored_etag(outlets: Path, database_url: str, server: FeedServer) -> None:
    run_cli("poll", database_url=database_url, config_dir=outlets)
    assert _fetch_state(database_url, "wire")["etag"] == '"w1"'

    result = run_cli("poll", "--feed", "wire", database_url=database_url, config_dir=outlets)

    assert "not-modified" in result.stdout
    wire_requests = [r for r in server.requests if r.path == "/wire/rss.xml"]
    assert wire_requests[-1].headers.get("if-none-match") == '"w1"'
    assert _fetch_state(database_url, "wire")["last_outcome"] == "not-modified"


def test_feeds_are_polled_only_when_due(outlets: Path, database_url: str, server: FeedServer) -> None:
    run_cli("poll", database_url=database_url, config_dir=outlets)

    result = run_cli("poll", database_url=database_url, config_dir=outlets)

    assert result.exit_code == 0
    assert "no feeds are due" in result.stdout
    assert server.hits("/wire/rss.xml") == 1
    state = _fetch_state(database_url, "wire")
    assert state["next_poll_at"] is not None


def test_failing_feed_is_recorded_and_the_others_still_land(
    outlets: Path, database_url: str, server: FeedServer, tmp_path: Path
) -> None:
    server.add("/broken.xml", "oops", status=500)
    server.add("/html.xml", "<html><head><title>Home</title></head><body><p>Welcome</p></body></html>")
    feeds = outlets / "feeds.yaml"
    feeds.write_text(
        feeds.read_text()
        + f"- name: broken\n  url: {server.url('/broken.xml')}\n"
        + f"- name: homepage\n  url: {server.url('/html.xml')}\n"
        + "- name: nowhere\n  url: http://127.0.0.1:9/feed\n"
    )

    result = run_cli("poll", database_url=database_url, config_dir=outlets)

    assert result.exit_code == 0, result.output
    assert "6 new articles, 3 feeds failed" in result.stdout
    assert len(_articles(database_url)) == 6
    broken = _fetch_state(database_url, "broken")
    assert broken["last_outcome"] == "soft-error"
    assert broken["consecutive_failures"] == 1
    assert "HTTP 500" in str(broken["last_error"])
    assert _fetch_state(database_url, "homepage")["last_outcome"] == "hard-error"
    assert "not an RSS or Atom feed" in str(_fetch_state(database_url, "homepage")["last_error"])
    assert "cannot connect" in str(_fetch_state(database_url, "nowhere")["last_error"])


def test_same_article_in_two_feeds_is_stored_once(database_url: str, server: FeedServer, tmp_path: Path) -> None:
    page = _page(server, "abc13.com-Copperfield.html")
    item = {"title": "Salon", "link": page, "guid": "g1", "published": datetime(2026, 11, 20, tzinfo=UTC)}
    server.add("/a.xml", rss2([item]), content_type="application/rss+xml")
    server.add("/b.xml", rss2([{**item, "link": page + "#comments", "guid": "other"}]), content_type="text/xml")
    config = write_feeds(
        tmp_path / "config",
        [{"name": "a", "url": server.url("/a.xml")}, {"name": "b", "url": server.url("/b.xml")}],
    )

    result = run_cli("poll", database_url=database_url, config_dir=config)

    assert "2 feeds polled, 1 new article" in result.stdout
    assert server.hits("/pages/abc13.com-Copperfield.html") == 1
    assert len(_articles(database_url)) == 1


def test_unknown_feed_name_is_a_one_line_error(outlets: Path, database_url: str) -> None:
    result = run_cli("poll", "--feed", "trned", database_url=database_url, config_dir=outlets)

    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "monitor: error: unknown feed 'trned' (configured: atomic, rdf, wire)"
    ]


def test_sitemap_source_follows_its_index_to_the_articles(
    database_url: str, server: FeedServer, tmp_path: Path
) -> None:
    page = _page(server, "abc7news.com-Napa.html")
    server.add(
        "/sitemap.xml",
        '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        "<sitemap><loc>/sitemap-news.xml</loc><lastmod>2026-11-24</lastmod></sitemap></sitemapindex>",
        content_type="application/xml",
    )
    server.add(
        "/sitemap-news.xml",
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{page}</loc><lastmod>2026-11-24T10:00:00Z</lastmod></url></urlset>",
        content_type="application/xml",
    )
    config = write_feeds(
        tmp_path / "config", [{"name": "caspian-news", "url": server.url("/sitemap.xml"), "kind": "sitemap"}]
    )

    result = run_cli("poll", database_url=database_url, config_dir=config)

    assert "1 new article" in result.stdout, result.output
    (article,) = _articles(database_url)
    # A sitemap has no titles: the page's own title is used.
    assert "Margaritaville" in str(article["title"])
    assert article["published_at"] == "2026-11-24T10:00:00Z"


def test_counts_add_up_for_linkless_and_repeated_items(database_url: str, server: FeedServer, tmp_path: Path) -> None:
    items = [
        {"title": "Linked", "link": _page(server, "abc7news.com-Napa.html"), "guid": "l1"},
        {"title": "No link at all", "guid": "nolink", "summary": "Nothing to fetch."},
    ]
    server.add("/f.xml", rss2(items), content_type="application/rss+xml")
    config = write_feeds(tmp_path / "config", [{"name": "f", "url": server.url("/f.xml")}])

    first = run_cli("poll", database_url=database_url, config_dir=config)
    again = run_cli("poll", "--all", database_url=database_url, config_dir=config)

    assert first.stdout.splitlines()[1].split()[:5] == ["f", "ok", "1", "0", "1"]
    assert again.stdout.splitlines()[1].split()[:5] == ["f", "ok", "0", "1", "1"]


def test_broken_page_encoding_costs_one_page_not_the_feed(
    database_url: str, server: FeedServer, tmp_path: Path
) -> None:
    bad = server.add("/pages/bad.html", b"this is not gzip", headers={"Content-Encoding": "gzip"})
    items = [
        {"title": "Bad gzip", "link": bad, "guid": "b1", "summary": "The summary survives a broken page."},
        {"title": "Good after", "link": _page(server, "abc7news.com-Napa.html"), "guid": "b2"},
    ]
    server.add("/f.xml", rss2(items), content_type="application/rss+xml")
    config = write_feeds(tmp_path / "config", [{"name": "f", "url": server.url("/f.xml")}])

    result = run_cli("poll", database_url=database_url, config_dir=config)

    assert "1 feed polled, 2 new articles" in result.stdout, result.output
    bad_article = next(a for a in _articles(database_url) if a["title"] == "Bad gzip")
    assert bad_article["extraction"] == "feed-summary"
    assert _fetch_state(database_url, "f")["last_outcome"] == "ok"


def test_malformed_urls_are_skipped_not_fatal(database_url: str, server: FeedServer, tmp_path: Path) -> None:
    page = _page(server, "abc7news.com-Napa.html")
    server.add(
        "/sitemap.xml",
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>http://[broken/x</loc></url><url><loc>{page}</loc></url></urlset>",
        content_type="application/xml",
    )
    config = write_feeds(tmp_path / "config", [{"name": "sm", "url": server.url("/sitemap.xml"), "kind": "sitemap"}])

    result = run_cli("poll", database_url=database_url, config_dir=config)

    assert "1 feed polled, 1 new article" in result.stdout, result.output
    assert _fetch_state(database_url, "sm")["last_outcome"] == "ok"


def test_unchanged_sitemap_index_still_yields_new_child_entries(
    database_url: str, server: FeedServer, tmp_path: Path
) -> None:
    index = (
        '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        "<sitemap><loc>/child.xml</loc></sitemap></sitemapindex>"
    )
    server.add("/index.xml", index, content_type="application/xml", headers={"ETag": '"same"'})

    def child(*names: str) -> str:
        urls = "".join(f"<url><loc>{_page(server, name)}</loc></url>" for name in names)
        return f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'

    server.add("/child.xml", child("abc7news.com-Napa.html"), content_type="application/xml")
    config = write_feeds(tmp_path / "config", [{"name": "smi", "url": server.url("/index.xml"), "kind": "sitemap"}])
    run_cli("poll", database_url=database_url, config_dir=config)
    server.add("/child.xml", child("abc7news.com-Napa.html", "aclu.org-grades.html"), content_type="application/xml")

    again = run_cli("poll", "--all", database_url=database_url, config_dir=config)

    assert "1 new article" in again.stdout, again.output
    assert len(_articles(database_url)) == 2


def test_nul_characters_never_block_an_item(database_url: str, server: FeedServer, tmp_path: Path) -> None:
    items = [{"title": "Ashgabat&#0; talks", "link": _page(server, "abc7news.com-Napa.html"), "guid": "n1"}]
    server.add("/f.xml", rss2(items).replace("&amp;#0;", "&#0;"), content_type="application/rss+xml")
    config = write_feeds(tmp_path / "config", [{"name": "f", "url": server.url("/f.xml")}])

    result = run_cli("poll", database_url=database_url, config_dir=config)

    assert "1 new article" in result.stdout, result.output
    assert [a["title"] for a in _articles(database_url)] == ["Ashgabat talks"]


def test_editing_a_feed_url_starts_afresh(outlets: Path, database_url: str, server: FeedServer) -> None:
    run_cli("poll", database_url=database_url, config_dir=outlets)
    server.add("/wire/v2.xml", rss2([]), content_type="application/rss+xml")
    feeds = outlets / "feeds.yaml"
    feeds.write_text(feeds.read_text().replace("/wire/rss.xml", "/wire/v2.xml"))

    result = run_cli("poll", database_url=database_url, config_dir=outlets)

    # Due at once although the old URL was polled a moment ago, and without the old URL's ETag.
    assert result.stdout.splitlines()[1].startswith("wire")
    (request,) = [r for r in server.requests if r.path == "/wire/v2.xml"]
    assert "if-none-match" not in request.headers
