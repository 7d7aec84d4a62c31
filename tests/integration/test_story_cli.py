"""Stories end to end: three outlets on loopback carry one event (a report, a rewrite, a verbatim mirror) and
a different event on the same dam; `monitor poll`, `search`, `search --stories` and `show` on both databases."""

from __future__ import annotations

import html
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import FeedServer, run_cli, write_feeds
from feedbuilders import rss2

DATA = Path(__file__).parent.parent / "data"


def _event(name: str) -> list[dict[str, Any]]:
    events = yaml.safe_load((DATA / "stories_heldout.yaml").read_text(encoding="utf-8"))["events"]
    return next(e["articles"] for e in events if e["id"] == name)


def _page(server: FeedServer, path: str, article: dict[str, Any]) -> str:
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in article["text"].split("\n\n") if p.strip())
    body = (
        f"<html><head><title>{html.escape(article['title'])}</title></head><body><nav>Home | News</nav>"
        f"<article><h1>{html.escape(article['title'])}</h1>{paragraphs}</article><footer>© 2026</footer></body></html>"
    )
    return server.add(path, body)


def _item(link: str, article: dict[str, Any], guid: str) -> dict[str, Any]:
    published = datetime.fromisoformat(article["published_at"].replace("Z", "+00:00"))
    return {"title": article["title"], "link": link, "guid": guid, "published": published}


@pytest.fixture
def outlets(server: FeedServer, tmp_path: Path) -> Path:
    financing = _event("kg-kambarata-financing-deal")  # original, light rewrite, ...
    tender = _event("kg-kambarata-dam-tender")  # same dam, five days later: another event
    original, rewrite = financing[0], financing[1]
    akipress = [
        _item(_page(server, "/akipress/1.html", original), original, "aki-1"),
        _item(_page(server, "/akipress/2.html", tender[0]), tender[0], "aki-2"),
    ]
    trend = [_item(_page(server, "/trend/77.html", rewrite), rewrite, "trend-77")]
    # A mirror: the same page under another host name, with the same headline.
    mirror = [_item(_page(server, "/mirror/kambarata.html", original), original, "mirror-1")]
    server.add("/akipress/rss.xml", rss2(akipress), content_type="application/rss+xml")
    server.add("/trend/rss.xml", rss2(trend), content_type="application/rss+xml")
    server.add("/mirror/rss.xml", rss2(mirror), content_type="application/rss+xml")
    return write_feeds(
        tmp_path / "config",
        [
            {"name": name, "url": server.url(f"/{name}/rss.xml"), "language": "en"}
            for name in ("akipress", "trend", "mirror")
        ],
    )


def _json(*args: str, database_url: str) -> Any:
    result = run_cli(*args, "--format", "json", database_url=database_url)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_one_event_from_three_outlets_is_one_story(outlets: Path, database_url: str) -> None:
    # The mirror is polled last, so it finds the original already stored.
    for name in ("akipress", "trend", "mirror"):
        result = run_cli("poll", "--feed", name, database_url=database_url, config_dir=outlets)
        assert result.exit_code == 0, result.output
    assert "1 copy of stored articles linked" in result.stdout

    articles = {
        a["source"] + ":" + a["title"][:20]: a for a in _json("search", "--limit", "0", database_url=database_url)
    }
    assert len(articles) == 3  # the mirror's copy is linked, not stored again
    by_source = {a["source"]: a for a in articles.values() if "tender" not in a["title"].lower()}
    report, rewrite = by_source["akipress"], by_source["trend"]
    (tender,) = [a for a in articles.values() if "tender" in a["title"].lower()]
    assert report["story_id"] == rewrite["story_id"] != tender["story_id"]
    assert report["also_reported_by"] == ["mirror", "trend"]
    assert rewrite["also_reported_by"] == ["akipress", "mirror"]
    assert tender["also_reported_by"] == []

    stories = _json("search", "--stories", database_url=database_url)
    assert [(s["articles"], s["sources"]) for s in stories] == [
        (1, ["akipress"]),  # the tender, reported last
        (2, ["akipress", "mirror", "trend"]),
    ]
    assert stories[1]["representative_id"] == report["id"]  # the earliest full text
    assert _json("search", "--stories", "--source", "mirror", database_url=database_url) == [stories[1]]
    assert [a["id"] for a in _json("search", "--story", str(report["story_id"]), database_url=database_url)] == [
        rewrite["id"],
        report["id"],
    ]

    shown = run_cli("show", str(report["id"]), database_url=database_url)
    assert shown.exit_code == 0, shown.output
    assert "same story:" in shown.stdout
    assert f"#{rewrite['id']}" in shown.stdout
    assert "/mirror/kambarata.html" in shown.stdout
    table = run_cli("search", "--stories", database_url=database_url)
    assert "2 stories" in table.stdout


def test_polling_again_stores_nothing_twice(outlets: Path, database_url: str) -> None:
    for _ in range(2):
        result = run_cli("poll", "--all", database_url=database_url, config_dir=outlets)
        assert result.exit_code == 0, result.output
    assert "0 new articles" in result.stdout
    assert len(_json("search", "--limit", "0", database_url=database_url)) == 3
    assert len(_json("search", "--stories", database_url=database_url)) == 2


def _unindexed(database_url: str) -> int:
    from monitor.store.db import open_database
    from monitor.store.stories import count_unindexed

    database = open_database(database_url)
    try:
        with database.session() as session:
            return count_unindexed(session)
    finally:
        database.dispose()


def test_a_lost_index_is_rebuilt_by_the_next_poll_and_by_the_command(
    outlets: Path, database_url: str, server: FeedServer
) -> None:
    result = run_cli("poll", "--feed", "akipress", database_url=database_url, config_dir=outlets)
    assert result.exit_code == 0, result.output
    assert _unindexed(database_url) == 0

    rebuilt = run_cli("stories", "rebuild", database_url=database_url, config_dir=outlets)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "story index rebuilt: 2 articles" in rebuilt.stdout

    from monitor.store.db import open_database
    from monitor.store.stories import clear_index

    database = open_database(database_url)
    with database.session() as session:
        clear_index(session)  # as after an upgrade from a version without the index
    database.dispose()
    assert _unindexed(database_url) == 2
    # The next poll indexes the stored articles first, so the rewrite still finds its story.
    result = run_cli("poll", "--feed", "trend", database_url=database_url, config_dir=outlets)
    assert result.exit_code == 0, result.output
    assert _unindexed(database_url) == 0
    stories = _json("search", "--stories", database_url=database_url)
    assert sorted(s["articles"] for s in stories) == [1, 2]
