"""Full-text search over a seeded English and Russian archive, on SQLite FTS5 and PostgreSQL tsvector."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command

from archivekit import Seed, seed_archive
from conftest import run_cli
from monitor.model import TagMatch
from monitor.pipeline.refresh import index_missing_stories
from monitor.pipeline.similarity import Vectoriser
from monitor.store import db, fulltext, repository
from monitor.store.db import Database, open_database
from monitor.store.query_syntax import QuerySyntaxError, parse_query
from monitor.store.schema import Article, ArticleDay, Source
from monitor.store.search import ArticleQuery, Sort, count_articles, search_articles, search_page


@pytest.fixture
def archive(database_url: str) -> tuple[str, dict[str, int]]:
    return database_url, seed_archive(database_url)


def _found(archive: tuple[str, dict[str, int]], text: str, **filters: object) -> set[str]:
    url, ids = archive
    keys = {article_id: key for key, article_id in ids.items()}
    database = open_database(url)
    try:
        with database.session() as session:
            query = ArticleQuery(text=text, limit=None, **filters)  # type: ignore[arg-type]
            found = [keys[view.id] for view in search_articles(session, query=query)]
            assert count_articles(session, query=query) == len(found)
            page, total = search_page(session, query=replace(query, limit=2))
            assert total == len(found)
            assert search_page(session, query=replace(query, limit=2, offset=1000)) == ([], len(found))
            assert [view.id for view in page] == [
                view.id for view in search_articles(session, query=replace(query, limit=2))
            ]
    finally:
        database.dispose()
    return set(found)


def test_words_all_match_in_any_inflection(archive: tuple[str, dict[str, int]]) -> None:
    # "licence" and "licences" share a stem; "Licensing" would not, and no article uses it.
    assert _found(archive, "starlink licence") == {"tm-licence", "uz-licence"}
    assert _found(archive, "STARLINK Licences") == {"tm-licence", "uz-licence"}


def test_russian_inflections_match(archive: tuple[str, dict[str, int]]) -> None:
    # Казахстан / Казахстана / Казахстане stem differently in Snowball; the query still finds all three.
    assert _found(archive, "Казахстан") == {"kz-schools", "kz-station"}
    assert _found(archive, "Казахстане") == {"kz-schools", "kz-station"}
    assert _found(archive, "лицензия") == {"uz-licence-ru"}
    assert _found(archive, "спутниковый") == {"uz-licence-ru", "kz-schools", "kz-station"}
    assert _found(archive, "станция наземная") == {"kz-station"}


def test_phrase_needs_the_words_in_order(archive: tuple[str, dict[str, int]]) -> None:
    assert _found(archive, '"ground station"') == {"tm-licence", "kg-xss"}
    assert _found(archive, "ground station") == {"tm-licence", "kg-xss", "tm-crew"}
    assert _found(archive, '"наземная станция"') == {"kz-station"}
    # The title ends in "licence" and the text starts with "The": a phrase does not run across the two.
    assert _found(archive, '"licence the"') == set()
    assert _found(archive, '"the uzbek ministry"') == {"uz-licence"}


def test_or_and_exclusion(archive: tuple[str, dict[str, int]]) -> None:
    assert _found(archive, "hydropower OR dushanbe") == {"kg-hydro", "tj-launch"}
    assert _found(archive, "hydropower | dushanbe") == {"kg-hydro", "tj-launch"}
    assert _found(archive, "starlink -spacex") == {"uz-licence", "uz-licence-ru", "kz-schools"}
    assert _found(archive, "starlink NOT spacex") == {"uz-licence", "uz-licence-ru", "kz-schools"}
    assert _found(archive, "(hydropower OR roscosmos) -ashgabat") == {"kg-hydro"}
    assert _found(archive, 'station -"ground station"') == {"tm-crew"}


def test_query_combines_with_filters(archive: tuple[str, dict[str, int]]) -> None:
    assert _found(archive, "starlink", countries=("UZ",)) == {"uz-licence", "uz-licence-ru"}
    assert _found(archive, "starlink", countries=("UZ",), languages=("ru",)) == {"uz-licence-ru"}
    assert _found(archive, "starlink", sources=("nca", "kazinform")) == {"tm-talks", "kz-schools"}
    assert _found(archive, "starlink", tags=("spacex",)) == {"tm-licence", "tm-talks", "tj-launch"}
    # The index answers tag filters itself, but not a minimum score, nor a topic given as a country.
    assert _found(archive, "starlink", tags=("starlink",)) == {
        "tm-licence",
        "tm-talks",
        "uz-licence",
        "uz-licence-ru",
        "kz-schools",
    }
    assert _found(archive, "starlink", tags=("starlink",), min_score=2.5) == set()  # starlink scores 2.0 there
    assert _found(archive, "starlink", tags=("TM", "UZ"), min_score=2.5) == {
        "tm-licence",
        "tm-talks",
        "uz-licence",
        "uz-licence-ru",
    }
    assert _found(archive, "starlink", countries=("starlink",)) == set()
    assert _found(archive, "starlink", tags=("Starlink",)) == set()  # tag ids are exact, facets fold case
    assert _found(archive, "starlink", countries=("UZ", "starlink")) == {"uz-licence", "uz-licence-ru"}
    assert _found(archive, "starlink", since=datetime(2026, 11, 15, tzinfo=UTC)) == {
        "tm-licence",
        "tm-talks",
        "uz-licence",
        "tj-launch",
    }


def test_best_matches_come_first_and_pages_follow(archive: tuple[str, dict[str, int]]) -> None:
    url, ids = archive
    database = open_database(url)
    with database.session() as session:
        ranked = [view.id for view in search_articles(session, query=ArticleQuery(text="starlink", limit=None))]
        # Starlink in the title outranks Starlink only in the text.
        in_title = {ids[key] for key in ("tm-licence", "tm-talks", "uz-licence", "uz-licence-ru")}
        assert set(ranked[:4]) == in_title
        pages = [
            view.id
            for offset in (0, 2, 4)
            for view in search_articles(session, query=ArticleQuery(text="starlink", limit=2, offset=offset))
        ]
        assert pages == ranked
        newest = search_articles(session, query=ArticleQuery(text="starlink", sort=Sort.NEWEST, limit=None))
        assert [view.id for view in newest][:2] == [ids["tm-talks"], ids["tm-licence"]]
    database.dispose()


def test_snippet_shows_the_passage_with_the_match(archive: tuple[str, dict[str, int]]) -> None:
    url, _ = archive
    result = run_cli("search", "roscosmos", "--format", "json", database_url=url)
    assert result.exit_code == 0, result.output
    (article,) = json.loads(result.stdout)
    assert "Roscosmos sent a delegation" in article["snippet"]
    assert article["snippet"].startswith("…")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('"ground station', "unclosed quote"),
        ("-spacex", "only excludes"),
        ("(starlink OR", "OR needs a word"),
        ("starlink)", "')' without a matching '('"),
        ("--- ...", "cannot follow"),
    ],
)
def test_malformed_query_is_a_one_line_error(archive: tuple[str, dict[str, int]], query: str, message: str) -> None:
    url, _ = archive
    result = run_cli("search", "--", query, database_url=url)  # "--": a query may start with "-"
    assert result.exit_code != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_punctuation_only_query_is_refused() -> None:
    with pytest.raises(QuerySyntaxError, match="no words"):
        parse_query(" ... ")


def test_reindex_fills_an_index_that_lost_articles(archive: tuple[str, dict[str, int]]) -> None:
    url, _ = archive
    database = open_database(url)
    with database.session() as session:
        fulltext.clear(session)  # what an upgraded archive looks like: articles, no index
        session.execute(sa.delete(ArticleDay))  # and no day ranges: a date filter would find nothing
    database.dispose()

    missing = run_cli("search", "hydropower", "--format", "json", database_url=url)
    assert json.loads(missing.stdout) == []
    assert "not in the search index yet" in missing.stderr

    rebuilt = run_cli("db", "reindex", database_url=url)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "search index rebuilt: 11 articles, 11 days" in rebuilt.stdout
    found = run_cli("search", "hydropower", "--since", "2026-11-01", "--format", "json", database_url=url)
    assert [a["title"] for a in json.loads(found.stdout)] == ["Kyrgyzstan builds hydropower plants"]
    assert "not in the search index" not in found.stderr


def test_stories_listing_takes_the_query(archive: tuple[str, dict[str, int]]) -> None:
    url, _ = archive
    result = run_cli("search", "ashgabat talks", "--stories", "--format", "json", database_url=url)
    assert result.exit_code == 0, result.output
    (story,) = json.loads(result.stdout)
    assert story["sources"] == ["nca", "trend"]


def test_poll_and_service_catch_up_an_upgraded_archive(archive: tuple[str, dict[str, int]]) -> None:
    url, ids = archive
    database = open_database(url)
    try:
        with database.session() as session:
            fulltext.clear(session)
        # What `monitor poll` runs before its pass and `monitor run` beside its polling.
        asyncio.run(index_missing_stories(database, Vectoriser()))
        with database.session() as session:
            assert fulltext.count_unindexed(session) == 0
            found = search_articles(session, query=ArticleQuery(text="hydropower"))
            assert [view.id for view in found] == [ids["kg-hydro"]]
    finally:
        database.dispose()


def test_two_backfills_at_once_index_each_article_once(archive: tuple[str, dict[str, int]]) -> None:
    url, _ = archive
    database = open_database(url)
    with database.session() as session:
        fulltext.clear(session)
    second: list[int] = []
    try:
        with database.session() as first:
            assert fulltext.index_missing(first) == 11
            worker = threading.Thread(target=lambda: second.append(_backfill(database)))
            worker.start()
            worker.join(0.5)
            assert worker.is_alive()  # waiting for the first backfill's lock, not indexing beside it
        worker.join(30)
        assert second == [0]
        with database.session() as session:
            assert count_articles(session, query=ArticleQuery(text="starlink OR hydropower")) == 7
            table = "article_fts" if url.startswith("sqlite") else "article_search"
            assert session.scalar(sa.text(f"SELECT count(*) FROM {table}")) == 11
    finally:
        database.dispose()


def _backfill(database: Database) -> int:
    with database.session() as session:
        return fulltext.index_missing(session)


def test_retagging_moves_an_article_between_country_filters(archive: tuple[str, dict[str, int]]) -> None:
    url, ids = archive
    database = open_database(url)
    try:
        with database.session() as session:
            uzbek = TagMatch("UZ", "country", "Uzbekistan", count=2, score=2.0, mentions=(), snippet="")
            repository.replace_tags(session, article_id=ids["kz-schools"], tags=[uzbek], version="v2")
            if url.startswith("sqlite"):  # the old row was taken out whole: the index is consistent
                session.execute(sa.text("INSERT INTO article_fts (article_fts, rank) VALUES ('integrity-check', 1)"))
    finally:
        database.dispose()
    assert _found(archive, "starlink", countries=("KZ",)) == set()
    assert _found(archive, "starlink", countries=("UZ",)) == {"uz-licence", "uz-licence-ru", "kz-schools"}
    assert _found(archive, "школы") == {"kz-schools"}


def test_facets_never_hide_an_article_with_a_far_future_date(database_url: str) -> None:
    # A feed dated this report four years ahead; it was fetched now, and filed under the next month. Its
    # dates hold a small share of the archive, where PostgreSQL would ask the index for month facets.
    future = datetime(2030, 1, 1, tzinfo=UTC)
    seeds = [Seed(f"now-{n}", "trend", 1 + n, "Starlink tariff", "Starlink tariffs.", tags=("TM",)) for n in range(9)]
    seeds.append(Seed("future", "trend", 1, "Starlink tariff", "Starlink tariffs.", tags=("TM",), published_at=future))
    ids = seed_archive(database_url, seeds)
    database = open_database(database_url)
    try:
        with database.session() as session:
            for since, until in (
                (datetime(2026, 12, 1, tzinfo=UTC), None),
                (datetime(2029, 6, 1, tzinfo=UTC), None),
                (datetime(2029, 12, 1, tzinfo=UTC), datetime(2030, 2, 1, tzinfo=UTC)),
            ):
                query = ArticleQuery(text="tariff", countries=("TM",), since=since, until=until)
                assert [view.id for view in search_articles(session, query=query)] == [ids["future"]]
    finally:
        database.dispose()


def test_articles_stored_behind_the_repository_are_found_by_date(database_url: str) -> None:
    # A writer that knows nothing of article_days (an older worker on an upgraded database, a bulk load):
    # the trigger on articles notes the article's day all the same.
    seed_archive(database_url)
    database = open_database(database_url)
    try:
        with database.session() as session:
            source_id = session.scalar(sa.select(Source.id).limit(1))
            session.execute(
                sa.insert(Article).values(
                    source_id=source_id,
                    guid="behind",
                    url="https://example.org/behind",
                    canonical_url="https://example.org/behind",
                    title="Aral sea reservoir",
                    text="The Aral sea reservoir fills again.",
                    published_at=datetime(2026, 12, 3, 8, tzinfo=UTC),
                    fetched_at=datetime(2026, 12, 3, 9, tzinfo=UTC),
                    extraction="page",
                )
            )
            fulltext.index_missing(session)
        with database.session() as session:
            query = ArticleQuery(text="reservoir", since=datetime(2026, 12, 3, tzinfo=UTC))
            assert [view.title for view in search_articles(session, query=query)] == ["Aral sea reservoir"]
            assert count_articles(session, query=query) == 1
    finally:
        database.dispose()


def test_date_filters_find_articles_whatever_order_they_were_stored_in(database_url: str) -> None:
    # Ids follow the order of storing, dates need not: an old report backfilled last, one stored first
    # but dated later than the rest, one without a date (its fetch time, 25 November, counts).
    seeds = [
        Seed("late", "trend", 28, "Water tariff rises", "Water tariffs rise in Ashgabat."),
        Seed("mid-a", "akipress", 10, "Water reservoir opens", "A water reservoir opens."),
        Seed("undated", "akipress", 1, "Water pipeline", "A water pipeline.", stored_undated=True),
        Seed("mid-b", "kun", 12, "Water talks", "Water talks in Tashkent."),
        Seed(
            "old", "kun", 1, "Water deal of 2024", "An old water deal.", published_at=datetime(2024, 3, 1, tzinfo=UTC)
        ),
    ]
    ids = seed_archive(database_url, seeds)
    keys = {article_id: key for key, article_id in ids.items()}

    def found(**dates: datetime) -> set[str]:
        with database.session() as session:
            query = ArticleQuery(text="water", limit=None, **dates)  # type: ignore[arg-type]
            views = search_articles(session, query=query)
            assert count_articles(session, query=query) == len(views)
            return {keys[view.id] for view in views}

    database = open_database(database_url)
    try:
        november = datetime(2026, 11, 1, tzinfo=UTC)
        assert found(since=november) == {"late", "mid-a", "undated", "mid-b"}
        assert found(until=november) == {"old"}
        assert found(since=datetime(2026, 11, 11, tzinfo=UTC), until=datetime(2026, 11, 26, tzinfo=UTC)) == {
            "mid-b",
            "undated",
        }
        assert found(since=datetime(2026, 11, 28, 9, 0, tzinfo=UTC)) == {"late"}
        assert found(since=datetime(2026, 11, 28, 9, 1, tzinfo=UTC)) == set()
        assert found(until=datetime(2024, 3, 1, 9, 0, tzinfo=UTC)) == {"old"}
        assert found(until=datetime(2024, 3, 1, 0, 0, tzinfo=UTC)) == set()
        assert found(since=datetime(2027, 1, 1, tzinfo=UTC)) == set()
        assert found(since=datetime(2025, 1, 1, tzinfo=UTC), until=datetime(2025, 12, 1, tzinfo=UTC)) == set()
    finally:
        database.dispose()


def test_upgrading_an_archive_notes_the_dates_of_its_articles(database_url: str) -> None:
    # An archive from before article_days (migration 0008): the upgrade fills it in from the articles.
    ids = seed_archive(database_url)
    database = open_database(database_url)
    try:
        config = db._alembic_config()
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0007")
        db.upgrade(database)
        since = datetime(2026, 11, 20, tzinfo=UTC)
        with database.session() as session:
            expected = set(session.scalars(sa.select(Article.id).where(Article.published_at >= since)))
            assert expected
            assert expected != set(ids.values())
            query = ArticleQuery(text="starlink OR Казахстан OR water", since=since, limit=None)
            found = {view.id for view in search_articles(session, query=query)}
            everything = {view.id for view in search_articles(session, query=replace(query, since=None))}
            assert found == expected & everything
            assert found != everything
    finally:
        database.dispose()


@pytest.mark.parametrize("sort", [Sort.NEWEST, Sort.OLDEST])
def test_date_ordered_pages_by_keyset_follow_the_whole_listing(archive: tuple[str, dict[str, int]], sort: Sort) -> None:
    # As an export pages through a search: each page starts after the last (date, id) of the one before.
    url, _ = archive
    database = open_database(url)
    try:
        with database.session() as session:
            query = ArticleQuery(text="starlink OR Казахстан OR hydropower", sort=sort, limit=None)
            whole = [view.id for view in search_articles(session, query=query)]
            assert len(whole) > 4
            assert search_page(session, query=replace(query, limit=2))[1] == len(whole)
            paged: list[int] = []
            after = None
            while page := search_articles(session, query=replace(query, limit=2, after=after)):
                paged += [view.id for view in page]
                after = (page[-1].when, page[-1].id)
            assert paged == whole
    finally:
        database.dispose()
