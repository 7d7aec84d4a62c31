"""Tags on ingested articles, searchable by tag and country, and `monitor retag` after the watchlist changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from conftest import FeedServer, run_cli, write_feeds
from feedbuilders import rss2
from monitor.settings import DEFAULT_TAGS

STORIES = {
    "starlink-ashgabat": (
        "Turkmenistan opens Starlink talks",
        "Officials in Ashgabat met SpaceX representatives on Tuesday to discuss a Starlink licence. "
        "The ministry said the talks would continue in March.",
    ),
    "kazan-forum": (
        "Kazan hosts an industry forum",
        "The Tatarstan capital Kazan welcomed delegations from twenty regions of Russia. "
        "Organisers expect new contracts for the chemical industry.",
    ),
    "tashkent-grid": (
        "Ташкент модернизирует электросети",
        "В Ташкенте начали замену подстанций. Энергетики Узбекистана обещают завершить работы к зиме. "
        "Проект финансирует Азиатский банк развития.",
    ),
}


def _page(title: str, text: str) -> str:
    paragraphs = "".join(f"<p>{sentence}.</p>" for sentence in text.split(". ") * 3)
    return (
        f"<!doctype html><html lang='en'><head><title>{title}</title></head><body>"
        f"<nav><a href='/'>Home</a></nav><article><h1>{title}</h1>{paragraphs}</article></body></html>"
    )


@pytest.fixture
def config(server: FeedServer, tmp_path: Path) -> Path:
    items = []
    for slug, (title, text) in STORIES.items():
        link = server.add(f"/news/{slug}.html", _page(title, text))
        items.append({"title": title, "link": link, "guid": slug, "published": datetime(2026, 11, 20, tzinfo=UTC)})
    server.add("/feed.xml", rss2(items), content_type="application/rss+xml")
    return write_feeds(tmp_path / "config", [{"name": "wire", "url": server.url("/feed.xml")}])


def _search(database_url: str, *args: str) -> list[dict[str, object]]:
    result = run_cli("search", "--limit", "0", "--format", "json", *args, database_url=database_url)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_ingested_articles_carry_their_tags(config: Path, database_url: str) -> None:
    run_cli("poll", database_url=database_url, config_dir=config)

    by_title = {a["title"]: a for a in _search(database_url)}

    assert set(by_title["Turkmenistan opens Starlink talks"]["tags"]) == {"TM", "starlink", "spacex"}  # type: ignore[arg-type]
    assert by_title["Kazan hosts an industry forum"]["tags"] == []
    assert by_title["Ташкент модернизирует электросети"]["tags"] == ["UZ"]
    assert "Ashgabat" in str(by_title["Turkmenistan opens Starlink talks"]["snippet"])
    assert [a["title"] for a in _search(database_url, "--country", "TM")] == ["Turkmenistan opens Starlink talks"]
    assert {a["title"] for a in _search(database_url, "--tag", "UZ", "--tag", "starlink")} == {
        "Ташкент модернизирует электросети",
        "Turkmenistan opens Starlink talks",
    }


def test_retag_applies_a_changed_watchlist_and_resumes(config: Path, database_url: str, tmp_path: Path) -> None:
    run_cli("poll", database_url=database_url, config_dir=config)
    assert run_cli("retag", database_url=database_url, config_dir=config).stdout.startswith("all articles are tagged")
    watchlist = yaml.safe_load(DEFAULT_TAGS.read_text(encoding="utf-8"))
    watchlist["tags"].append(
        {"id": "power", "kind": "topic", "name": "Power grid", "aliases": {"en": ["substation*"], "ru": ["подстанци*"]}}
    )
    (config / "tags.yaml").write_text(yaml.safe_dump(watchlist, allow_unicode=True), encoding="utf-8")
    # Half done already, as if an earlier run had been interrupted after its first batch.
    first = run_cli("retag", "--batch-size", "1", database_url=database_url, config_dir=config)
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        connection.execute(sa.text("update articles set watchlist_version = 'old' where guid = 'kazan-forum'"))
    engine.dispose()

    again = run_cli("retag", "--batch-size", "1", database_url=database_url, config_dir=config)

    assert first.stdout.startswith("re-tagged 3 articles")
    assert again.stdout.startswith("re-tagged 1 articles")
    assert [a["title"] for a in _search(database_url, "--tag", "power")] == ["Ташкент модернизирует электросети"]
