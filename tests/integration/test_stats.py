"""`monitor stats` on SQLite and PostgreSQL: articles and stories per source, per tag and per week."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from conftest import run_cli
from monitor.model import ArticleDraft, Extraction
from monitor.pipeline.prepare import story_vectoriser
from monitor.pipeline.tag import Tagger
from monitor.settings import FeedConfig, load_tags
from monitor.store import repository
from monitor.store.db import open_database
from monitor.store.schema import Source

REPORT = (
    "Officials of Turkmenistan's communications ministry met a SpaceX delegation in Ashgabat to discuss a "
    "licence for the Starlink satellite internet service. The talks covered frequencies, a ground station "
    "near Mary and terminals for 240 schools in Lebap and Dashoguz provinces, the ministry said."
)
OTHER = (
    "Kyrgyzstan signed a financing agreement for the Kambarata-1 hydropower plant in Bishkek. The World Bank "
    "and three other lenders will provide 2.1 billion dollars for the first phase on the Naryn river."
)


def _seed(database_url: str) -> None:
    tagger = Tagger(load_tags(Path("/nonexistent")))
    vectoriser = story_vectoriser(tagger)
    database = open_database(database_url)
    rows = [
        ("ncanews", "Turkmenistan, SpaceX discuss Starlink", REPORT, datetime(2026, 3, 10, 9, tzinfo=UTC)),
        (
            "trend",
            "Ashgabat hosts Starlink talks",
            REPORT.replace("met", "received"),
            datetime(2026, 3, 11, 6, tzinfo=UTC),
        ),
        ("akipress", "Kambarata-1 financing signed", OTHER, datetime(2026, 3, 17, 8, tzinfo=UTC)),
        ("akipress", "Old news", OTHER.replace("Bishkek", "Osh city"), datetime(2025, 1, 5, 8, tzinfo=UTC)),
    ]
    with database.session() as session:
        repository.sync_sources(
            session,
            feeds=[FeedConfig(name=n, url=f"https://{n}.example/rss") for n in ("ncanews", "trend", "akipress")],
            now=datetime.now(UTC),
        )
        repository.sync_tags(session, tags=tagger.tags)
    for n, (source, title, text, when) in enumerate(rows):
        with database.session() as session:
            source_id = session.scalars(sa.select(Source.id).where(Source.name == source)).one()
            repository.add_article(
                session,
                draft=ArticleDraft(
                    source_id=source_id,
                    guid=str(n),
                    url=f"https://{source}.example/{n}",
                    canonical_url=f"https://{source}.example/{n}",
                    title=title,
                    text=text,
                    summary=None,
                    author=None,
                    published_at=when,
                    fetched_at=when + timedelta(minutes=5),
                    language="en",
                    extraction=Extraction.PAGE,
                    tags=tuple(tagger.tag(text, title=title)),
                    features=vectoriser.features(title, text),
                ),
            )
    database.dispose()


def test_stats_count_articles_and_stories_per_source_tag_and_week(database_url: str) -> None:
    _seed(database_url)

    result = run_cli("stats", "--since", "2026-01-01", "--format", "json", database_url=database_url)

    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert (stats["articles"], stats["stories"]) == (3, 2)  # the 2025 article is before --since
    by_source = {row["label"]: (row["articles"], row["stories"]) for row in stats["by_source"]}
    assert by_source == {"ncanews": (1, 1), "trend": (1, 1), "akipress": (1, 1)}
    by_tag = {row["label"]: (row["articles"], row["stories"]) for row in stats["by_tag"]}
    assert by_tag["TM"] == (2, 1)  # two outlets, one story
    assert by_tag["KG"] == (1, 1)
    assert [(row["label"], row["articles"], row["stories"]) for row in stats["by_week"]] == [
        ("2026-03-09", 2, 1),  # Tuesday and Wednesday of one week, one story
        ("2026-03-16", 1, 1),
    ]
    table = run_cli("stats", "--since", "2026-01-01", database_url=database_url)
    assert "since 2026-01-01: 3 articles in 2 stories" in table.stdout
    assert "2026-03-09" in table.stdout
