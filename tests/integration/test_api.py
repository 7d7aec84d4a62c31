"""`monitor serve` over real HTTP: the JSON API, exports, the Atom feed, pages, token, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator

import feedparser
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from archivekit import CONTRACT_FIELDS, XSS_TITLE, Seed, draft, seed_archive
from monitor.model import ArticleView
from monitor.store import repository
from monitor.store.schema import Source
from monitor.store.search import ArticleQuery
from monitor.web import api
from webkit import serving


@pytest.fixture
def site(database_url: str) -> Iterator[tuple[httpx.Client, dict[str, int]]]:
    ids = seed_archive(database_url)
    with serving(database_url) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield client, ids


def _titles(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["title"] for item in response.json()["items"]]


def test_articles_answer_items_and_total_with_the_contract_fields(site: tuple[httpx.Client, dict[str, int]]) -> None:
    client, _ = site
    body = client.get("/api/articles", params={"limit": 3}).json()
    assert body["total"] == 11
    assert len(body["items"]) == 3
    assert all(set(item) >= CONTRACT_FIELDS for item in body["items"])
    assert body["items"][0]["title"] == "Starlink talks in Ashgabat"  # newest first without q
    assert body["items"][0]["also_reported_by"] == ["trend"]


def test_filters_or_within_a_name_and_across_names(site: tuple[httpx.Client, dict[str, int]]) -> None:
    client, _ = site
    both = client.get("/api/articles", params=[("country", "UZ"), ("country", "kz"), ("limit", 100)])
    assert len(_titles(both)) == 4
    narrowed = client.get(
        "/api/articles", params=[("country", "UZ"), ("country", "KZ"), ("language", "ru"), ("q", "starlink")]
    )
    assert sorted(_titles(narrowed)) == [
        "Казахстан расширяет спутниковый интернет",
        "Узбекистан выдал лицензию Starlink",
    ]
    dated = client.get("/api/articles", params={"source": "kazinform", "since": "2026-11-11", "until": "2026-11-11"})
    assert _titles(dated) == ["В Казахстане запустили наземную станцию"]


def test_paging_walks_every_match_once(site: tuple[httpx.Client, dict[str, int]]) -> None:
    client, _ = site
    pages = [
        client.get("/api/articles", params={"q": "starlink", "limit": 2, "offset": offset}) for offset in (0, 2, 4)
    ]
    ids = [item["id"] for page in pages for item in page.json()["items"]]
    assert len(ids) == len(set(ids)) == pages[0].json()["total"] == 6


def test_bad_requests_are_clear_400s_and_422s(site: tuple[httpx.Client, dict[str, int]]) -> None:
    client, _ = site
    unclosed = client.get("/api/articles", params={"q": '"ground station'})
    assert unclosed.status_code == 400
    assert unclosed.json() == {"detail": 'q: the query has an unclosed quote (")'}
    assert client.get("/api/articles", params={"since": "last tuesday"}).status_code == 400
    assert "since:" in client.get("/api/articles", params={"since": "last tuesday"}).json()["detail"]
    assert client.get("/api/articles", params={"limit": 101}).status_code == 422
    assert client.get("/api/articles", params={"q": "x" * 501}).status_code == 422
    assert client.get("/api/articles/999999").status_code == 404
    assert client.get("/api/articles/999999").json()["detail"].startswith("no article with id 999999")


def test_one_article_stories_sources_and_stats(site: tuple[httpx.Client, dict[str, int]]) -> None:
    client, ids = site
    article = client.get(f"/api/articles/{ids['tm-licence']}").json()
    assert article["text"].startswith("Ashgabat hosted talks")
    assert [m["source"] for m in article["story_members"]] == ["nca"]

    stories = client.get("/api/stories", params={"q": "ashgabat talks"}).json()
    assert stories["total"] == 1
    assert stories["items"][0]["sources"] == ["nca", "trend"]

    sources = client.get("/api/sources").json()["items"]
    assert {s["name"] for s in sources} == {"akipress", "asiaplus", "kazinform", "kun", "nca", "trend"}
    assert all("consecutive_failures" in s and "last_success_at" in s for s in sources)

    stats = client.get("/api/stats", params={"since": "2026-11-01"}).json()
    assert stats["articles"] == 11
    assert {row["label"]: row["articles"] for row in stats["by_tag"]}["starlink"] == 5
    assert {row["label"]: row["articles"] for row in stats["by_day"]}["2026-11-20"] == 1
    assert sum(row["articles"] for row in stats["by_source"]) == 11


def test_openapi_describes_the_api(site: tuple[httpx.Client, dict[str, int]]) -> None:
    client, _ = site
    spec = client.get("/openapi.json").json()
    assert {"/api/articles", "/api/articles/{article_id}", "/api/stories", "/api/sources", "/api/stats"} <= set(
        spec["paths"]
    )
    assert "/feeds/search.atom" in spec["paths"]
    names = {p["name"] for p in spec["paths"]["/api/articles"]["get"]["parameters"]}
    assert names >= {"q", "tag", "country", "source", "language", "since", "until", "limit", "offset"}


def test_exports_stream_every_match(site: tuple[httpx.Client, dict[str, int]], monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = site
    monkeypatch.setattr(api, "EXPORT_BATCH", 2)  # several batches, so the stream's joints are exercised
    exported = client.get("/api/articles.csv", params={"q": "starlink"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 6
    assert len({row["id"] for row in rows}) == 6
    assert set(rows[0]) >= CONTRACT_FIELDS

    lines = client.get("/api/articles.jsonl", params={"country": "KZ"}).text.splitlines()
    assert sorted(json.loads(line)["title"] for line in lines) == [
        "В Казахстане запустили наземную станцию",
        "Казахстан расширяет спутниковый интернет",
    ]
    assert client.get("/api/articles.csv", params={"q": "(starlink"}).status_code == 400


def test_an_export_neither_repeats_nor_skips_while_articles_arrive(
    site: tuple[httpx.Client, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = site
    monkeypatch.setattr(api, "EXPORT_BATCH", 3)
    calls = []
    real_search = api.search_articles

    def search_then_a_poll_stores_news(session: Session, *, query: ArticleQuery) -> list[ArticleView]:
        calls.append(query)
        if len(calls) == 2:  # between two batches: a newer article, which would shift every offset by one
            late = Seed("late", "trend", 24, "Late Starlink news", "Starlink again.")
            trend = session.scalars(sa.select(Source.id).where(Source.name == "trend")).one()
            with session.begin_nested():
                repository.add_article(session, draft=draft(late, trend, 100))
            session.commit()
        return real_search(session, query=query)

    monkeypatch.setattr(api, "search_articles", search_then_a_poll_stores_news)
    rows = list(csv.DictReader(io.StringIO(client.get("/api/articles.csv", params={"q": "starlink"}).text)))
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) == 6  # the late article is newer than the export's first batch
    assert len(calls) == 3  # two full batches, then an empty one
    dates = [row["published_at"] for row in rows]
    assert dates == sorted(dates, reverse=True)


def test_odd_inputs_are_refused_not_crashed_on(site: tuple[httpx.Client, dict[str, int]]) -> None:
    client, _ = site
    assert client.get("/api/articles/99999999999999999999").status_code == 422
    assert client.get("/articles/99999999999999999999").status_code == 422
    assert client.get("/api/articles", params={"story": 2**40}).status_code == 422
    assert client.get("/api/articles", params={"source": "trend\x00"}).status_code == 400
    assert client.get("/feeds/search.atom", params={"tag": "\x00"}).status_code == 400
    assert client.get("/api/articles", params={"until": "9999-12-31"}).json()["total"] == 11
    assert client.get("/api/articles", params={"since": "99999999999d"}).status_code == 400
    assert client.get("/api/articles", params={"q": "   "}).json()["total"] == 11


def test_atom_feed_of_a_search_parses_back(site: tuple[httpx.Client, dict[str, int]]) -> None:
    client, _ = site
    response = client.get("/feeds/search.atom", params={"tag": "starlink", "country": "TM"})
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.bozo_exception
    assert [entry.title for entry in feed.entries] == [
        "Starlink talks in Ashgabat",
        "Turkmenistan and SpaceX discuss Starlink licence",
    ]
    assert feed.entries[0].link == "https://nca.example/1?utm_source=rss"
    assert feed.entries[0].id == "https://nca.example/1"
    assert {tag.term for tag in feed.entries[0].tags} == {"TM", "starlink", "spacex"}
    assert feed.feed.title == "monitor: starlink · TM"


def test_stored_markup_is_text_on_every_surface(site: tuple[httpx.Client, dict[str, int]]) -> None:
    client, ids = site
    story_id = client.get(f"/api/articles/{ids['kg-xss']}").json()["story_id"]
    for path, params in [
        ("/", {"q": "ground station"}),
        (f"/articles/{ids['kg-xss']}", {}),
        (f"/stories/{story_id}", {}),
    ]:
        page = client.get(path, params=params)
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "<img src=x" not in page.text
        assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
    atom = client.get("/feeds/search.atom", params={"q": "ground station"})
    assert "<script>" not in atom.text
    assert XSS_TITLE in [entry.title for entry in feedparser.parse(atom.content).entries]
    assert XSS_TITLE in [item["title"] for item in client.get("/api/articles", params={"q": "bishkek"}).json()["items"]]


def test_search_page_highlights_matches_and_reports_bad_queries(site: tuple[httpx.Client, dict[str, int]]) -> None:
    client, _ = site
    page = client.get("/", params={"q": "Казахстан"})
    assert "<mark>Казахстан</mark>" in page.text
    assert "<mark>Казахстане</mark>" in page.text
    bad = client.get("/", params={"q": "starlink)"})
    assert bad.status_code == 400
    assert "without a matching" in bad.text


def test_health_and_metrics(site: tuple[httpx.Client, dict[str, int]]) -> None:
    client, _ = site
    assert client.get("/healthz").json() == {"status": "ok"}
    client.get("/api/articles")
    metrics = client.get("/metrics").text
    assert 'monitor_http_requests_total{route="/api/articles",status="200"}' in metrics


def test_token_guards_everything_but_healthz(database_url: str) -> None:
    seed_archive(database_url)
    with serving(database_url, token="s3cret") as base, httpx.Client(base_url=base) as client:
        refused = client.get("/api/articles")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert client.get("/api/articles", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/articles", headers={"Authorization": "Bearer s3cret"}).json()["total"] == 11
        assert client.get("/").status_code == 401
        basic = base64.b64encode(b"reader:s3cret").decode()
        assert client.get("/feeds/search.atom", headers={"Authorization": f"Basic {basic}"}).status_code == 200
        assert client.get("/", headers={"Authorization": f"Basic {basic}"}).status_code == 200
        assert client.get("/metrics").status_code == 401
        assert client.get("/healthz").status_code == 200
