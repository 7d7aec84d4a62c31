"""A small seeded archive, English and Russian, for the search, API, export and web tests.

Each article has a key; seed_archive() returns {key: article id}. What each query should find is written
in the tests next to the query, from these texts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from monitor.model import ArticleDraft, Extraction, TagMatch
from monitor.settings import FeedConfig
from monitor.store import repository
from monitor.store.db import open_database
from monitor.store.schema import Article, Source, Tag

# The article fields of DESIGN.md's contract, spelled out here on purpose, not imported from monitor.output.
CONTRACT_FIELDS = {
    "id",
    "url",
    "canonical_url",
    "source",
    "title",
    "published_at",
    "fetched_at",
    "language",
    "tags",
    "story_id",
    "also_reported_by",
    "snippet",
}
XSS_TITLE = "<script>alert('xss')</script><img src=x onerror=alert(1)> Ground station opens"
FILLER = "The weather in the region stayed mild and markets were calm during the week. " * 12


@dataclass(frozen=True)
class Seed:
    key: str
    source: str
    day: int
    title: str
    text: str
    language: str = "en"
    tags: tuple[str, ...] = ()
    same_story_as: str | None = None
    tag_snippet: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    published_at: datetime | None = None  # instead of 9:00 on the day of November 2026
    stored_undated: bool = False  # the feed gave no date: the fetch time counts


SEEDS = [
    Seed(
        "tm-licence",
        "trend",
        20,
        "Turkmenistan and SpaceX discuss Starlink licence",
        "Ashgabat hosted talks on a Starlink licence for the country. The ground station would be built near Ashgabat.",
        tags=("TM", "starlink", "spacex"),
        tag_snippet="talks on a Starlink licence",
    ),
    Seed(
        "tm-talks",
        "nca",
        21,
        "Starlink talks in Ashgabat",
        "Officials met SpaceX representatives in Ashgabat to discuss satellite internet.",
        tags=("TM", "starlink", "spacex"),
        same_story_as="tm-licence",
    ),
    Seed(
        "uz-licence",
        "kun",
        18,
        "Uzbekistan grants Starlink a licence",
        "The Uzbek ministry issued licences to Starlink for satellite internet across Uzbekistan.",
        tags=("UZ", "starlink"),
    ),
    Seed(
        "uz-licence-ru",
        "kun",
        12,
        "Узбекистан выдал лицензию Starlink",
        "Министерство выдало лицензии на спутниковый интернет в Узбекистане.",
        language="ru",
        tags=("UZ", "starlink"),
    ),
    Seed(
        "kz-schools",
        "kazinform",
        10,
        "Казахстан расширяет спутниковый интернет",
        "Сельские школы Казахстана получат связь через Starlink.",
        language="ru",
        tags=("KZ", "starlink"),
    ),
    Seed(
        "kz-station",
        "kazinform",
        11,
        "В Казахстане запустили наземную станцию",
        "Наземная станция спутниковой связи заработала под Астаной.",
        language="ru",
        tags=("KZ",),
    ),
    Seed(
        "kg-hydro",
        "akipress",
        15,
        "Kyrgyzstan builds hydropower plants",
        "Three small plants join the grid.",
        tags=("KG",),
    ),
    Seed(
        "tj-launch",
        "asiaplus",
        16,
        "SpaceX launch watched in Dushanbe",
        "Students in Dushanbe watched a SpaceX rocket launch; no Starlink deal is planned.",
        tags=("TJ", "spacex"),
    ),
    Seed(
        "kg-xss",
        "akipress",
        17,
        XSS_TITLE,
        "A ground station for satellite internet opened in Bishkek. <b>bold</b> & <i>more</i>",
        tags=("KG",),
    ),
    Seed(
        "tm-crew",
        "trend",
        19,
        "Station ground crew in Ashgabat",
        "Crew members of the station worked on the ground all week.",
        tags=("TM",),
    ),
    Seed(
        "tm-deep",
        "nca",
        14,
        "Weekly regional roundup",
        FILLER + "Roscosmos sent a delegation to Ashgabat.",
        tags=("TM",),
    ),
]
TAGS = [
    ("KZ", "country", "Kazakhstan"),
    ("KG", "country", "Kyrgyzstan"),
    ("TJ", "country", "Tajikistan"),
    ("TM", "country", "Turkmenistan"),
    ("UZ", "country", "Uzbekistan"),
    ("starlink", "topic", "Starlink"),
    ("spacex", "topic", "SpaceX"),
]
FETCHED_AT = datetime(2026, 11, 25, tzinfo=UTC)


def seed_archive(database_url: str, seeds: list[Seed] = SEEDS) -> dict[str, int]:
    """Store the seeds through the repository (as a poll does) and return {key: article id}."""
    database = open_database(database_url)
    ids: dict[str, int] = {}
    with database.session() as session:
        repository.sync_sources(
            session,
            feeds=[FeedConfig(name=name, url=f"https://{name}.example/feed") for name in _sources(seeds)],
            now=FETCHED_AT,
        )
        source_ids = {row.name: row.id for row in session.execute(sa.select(Source.name, Source.id))}
        for tag_id, kind, name in TAGS:
            session.add(Tag(id=tag_id, kind=kind, name=name))
        session.flush()
        kinds = {tag_id: (kind, name) for tag_id, kind, name in TAGS}
        for number, seed in enumerate(seeds):
            # Tags come with the draft, as a poll stores them: the search index files the article under them.
            tags = tuple(
                TagMatch(tag_id, *kinds[tag_id], count=1, score=3.0 - rank, mentions=(), snippet=seed.tag_snippet or "")
                for rank, tag_id in enumerate(seed.tags)
            )
            _, article_id = repository.add_article(session, draft=draft(seed, source_ids[seed.source], number, tags))
            assert article_id is not None
            ids[seed.key] = article_id
        for seed in seeds:
            if seed.same_story_as is not None:
                story = session.scalar(sa.select(Article.story_id).where(Article.id == ids[seed.same_story_as]))
                session.execute(sa.update(Article).where(Article.id == ids[seed.key]).values(story_id=story))
    database.dispose()
    return ids


def _sources(seeds: list[Seed]) -> list[str]:
    return sorted({seed.source for seed in seeds})


def draft(seed: Seed, source_id: int, number: int, tags: tuple[TagMatch, ...] = ()) -> ArticleDraft:
    """The ArticleDraft a poll would make of a seed."""
    return ArticleDraft(
        source_id=source_id,
        guid=f"g{number}",
        url=f"https://{seed.source}.example/{number}?utm_source=rss",
        canonical_url=f"https://{seed.source}.example/{number}",
        title=seed.title,
        text=seed.text,
        summary=None,
        author=None,
        published_at=None
        if seed.stored_undated
        else seed.published_at or datetime(2026, 11, seed.day, 9, 0, tzinfo=UTC),
        fetched_at=FETCHED_AT,
        language=seed.language,
        extraction=Extraction.PAGE,
        tags=tags,
    )
