"""The ingest path under load and faults: pages that kill or hang their worker, the batched writer, worker
recycling; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from conftest import PAGES, FeedServer
from feedbuilders import rss2
from monitor.model import ArticleDraft, FetchOutcome, ParsedEntry, Stored
from monitor.pipeline.extract import Extractor
from monitor.pipeline.prepare import Enrichment, PageJob, Watchlist, prepare, prepare_in_worker
from monitor.pipeline.tag import Tagger
from monitor.pipeline.writer import ArticleWriter
from monitor.settings import TagConfig
from monitor.store import repository
from monitor.store.db import Database
from monitor.store.schema import Article, Source
from pollkit import FaultyExtractor, feed, make_poll, worker_pid

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def _stored(database: Database) -> dict[str, Article]:
    with database.session() as session:
        return {article.title: article for article in session.scalars(select(Article))}


def test_a_page_that_kills_or_hangs_its_worker_costs_that_page_only(
    database: Database, server: FeedServer, tmp_path: Path
) -> None:
    def page(name: str) -> str:
        return server.add(f"/pages/{name}", (PAGES / name).read_bytes())

    items = [
        {"title": "Crashes its worker", "link": server.add("/crash/1.html", b"<html>x</html>"), "guid": "c",
         "summary": "The parser died on this page; the feed's summary is kept instead."},
        {"title": "Hangs its worker", "link": server.add("/hang/1.html", b"<html>y</html>"), "guid": "h",
         "summary": "The parser never finished this page; the feed's summary is kept instead."},
        {"title": "Resort for Lake Berryessa", "link": page("abc7news.com-Napa.html"), "guid": "n"},
        {"title": "Mass burials in New York", "link": page("bbc.com.52241221.html"), "guid": "b"},
    ]  # fmt: skip
    server.add("/wire.xml", rss2(items), content_type="application/rss+xml")
    with FaultyExtractor(workers=1, timeout=3) as extractor:
        poll = make_poll(database, extractor)
        [summary] = poll(feed("wire", server.url("/wire.xml")))

        assert summary.outcome is FetchOutcome.OK
        assert (summary.new, summary.from_summary, summary.failed) == (4, 2, 0)
        stored = _stored(database)
        crashed, hung = stored["Crashes its worker"], stored["Hangs its worker"]
        assert crashed.extraction == "feed-summary"
        assert "worker died" in (crashed.extraction_error or "")
        assert crashed.text.startswith("The parser died on this page")
        assert hung.extraction == "feed-summary"
        assert "took longer than 3s" in (hung.extraction_error or "")
        # The one worker was killed twice, and replaced each time: the other pages were extracted.
        assert stored["Resort for Lake Berryessa"].extraction == "page"
        assert "Lake Berryessa" in stored["Resort for Lake Berryessa"].text
        assert stored["Mass burials in New York"].extraction == "page"

        # The pool is still whole for the next pass.
        later = [{"title": "Salon bans men", "link": page("abc13.com-Copperfield.html"), "guid": "s"}]
        server.add("/later.xml", rss2(later), content_type="application/rss+xml")
        [again] = poll(feed("later", server.url("/later.xml")))
        assert (again.new, again.from_summary) == (1, 0)
        assert _stored(database)["Salon bans men"].extraction == "page"


def _source(database: Database, name: str) -> int:
    with database.session() as session:
        repository.sync_sources(session, feeds=[feed(name, f"https://{name}.example/rss")], now=NOW)
        return session.scalars(select(Source.id).where(Source.name == name)).one()


def _draft(source_id: int, number: int) -> ArticleDraft:
    entry = ParsedEntry(
        guid=f"g{number}",
        link=f"https://wire.example/{number}",
        title=f"Report {number}: a {['ferry', 'railway', 'pipeline', 'bridge'][number % 4]} line opens {number}",
        summary_html=f"<p>Report number {number} about transport corridor {number * 7} and its {number} partners.</p>",
        author=None,
        published_at=NOW,
    )
    job = PageJob(entry, entry.link, source_id, "en", NOW, entry.link, body=None, page_error="page not fetched")
    return prepare(job, Enrichment(None)).draft


def _store_together(database: Database, drafts: list[ArticleDraft]) -> list[Stored | BaseException]:
    """Hand every draft to one writer at once, as the feeds of a pass do; each draft's outcome."""

    async def store_all() -> list[Stored | BaseException]:
        async with ArticleWriter(database) as writer:
            return await asyncio.gather(*(writer.store(d) for d in drafts), return_exceptions=True)

    return asyncio.run(store_all())


def test_the_writer_stores_many_feeds_articles_in_few_transactions(database: Database) -> None:
    source_id = _source(database, "wire")
    drafts = [_draft(source_id, number) for number in range(120)]

    async def store_all() -> tuple[list[Stored | BaseException], int]:
        async with ArticleWriter(database) as writer:
            outcomes = await asyncio.gather(*(writer.store(d) for d in drafts), return_exceptions=True)
            again = await writer.store(drafts[0])
            return [*outcomes, again], writer.batches

    outcomes, batches = asyncio.run(store_all())

    assert outcomes == [Stored.NEW] * 120 + [Stored.KNOWN]
    assert batches <= 120 // 64 + 2  # batches of up to 64 while the previous one is written, and the last one
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Article)) == 120


def test_drafts_arriving_one_by_one_share_transactions(database: Database) -> None:
    source_id = _source(database, "wire")
    drafts = [_draft(source_id, number) for number in range(30)]

    async def store_all() -> tuple[list[Stored], int]:
        async with ArticleWriter(database) as writer:

            async def arrive(draft: ArticleDraft, after: float) -> Stored:
                await asyncio.sleep(after)  # pages come back from the workers a few milliseconds apart
                return await writer.store(draft)

            outcomes = await asyncio.gather(*(arrive(d, 0.005 * n) for n, d in enumerate(drafts)))
            return outcomes, writer.batches

    outcomes, batches = asyncio.run(store_all())

    assert outcomes == [Stored.NEW] * 30
    assert batches <= 4  # a transaction each would be 30: the first draft of a batch waits for the next ones


def test_a_draft_the_database_refuses_costs_only_itself(database: Database) -> None:
    source_id = _source(database, "wire")
    good = [_draft(source_id, number) for number in range(10)]
    orphan = _draft(source_id + 1000, 99)  # no such source: the foreign key refuses it

    outcomes = _store_together(database, [*good[:5], orphan, *good[5:]])

    assert isinstance(outcomes[5], SQLAlchemyError)
    assert outcomes[:5] + outcomes[6:] == [Stored.NEW] * 10
    with database.session() as session:
        titles = set(session.scalars(select(Article.title)))
    assert titles == {draft.title for draft in good}


def test_a_draft_that_trips_a_bug_in_storing_costs_only_itself(database: Database) -> None:
    source_id = _source(database, "wire")
    good = [_draft(source_id, number) for number in range(6)]
    broken = replace(_draft(source_id, 99), tags=(None,))  # type: ignore[arg-type]  # no TagMatch: an AttributeError

    outcomes = _store_together(database, [*good[:3], broken, *good[3:]])

    assert isinstance(outcomes[3], AttributeError)
    assert outcomes[:3] + outcomes[4:] == [Stored.NEW] * 6
    with database.session() as session:
        assert set(session.scalars(select(Article.title))) == {draft.title for draft in good}


def test_workers_follow_a_change_of_watchlist(tmp_path: Path) -> None:
    starlink = TagConfig.model_validate(
        {"id": "starlink", "kind": "topic", "name": "Starlink", "aliases": {"en": ["Starlink"]}}
    )
    ferry = TagConfig.model_validate({"id": "ferry", "kind": "topic", "name": "Ferries", "aliases": {"en": ["ferry"]}})
    entry = ParsedEntry(
        "g", "https://x.org/1", "Starlink ferry", "<p>A Starlink terminal on every ferry.</p>", None, NOW
    )
    job = PageJob(entry, entry.link, 1, "en", NOW, entry.link, body=None, page_error="page not fetched")

    async def tags_with(*watchlists: Watchlist) -> list[set[str]]:
        with Extractor(workers=1) as extractor:
            found = []
            for watchlist in watchlists:
                prepared = await extractor.run_page(prepare_in_worker, job, watchlist)
                found.append({tag.id for tag in prepared.draft.tags})
            return found

    first, second, first_again = asyncio.run(
        tags_with(*(Enrichment(Tagger(tags)).watchlist for tags in ([starlink], [ferry], [starlink])))
    )

    assert (first, second, first_again) == ({"starlink"}, {"ferry"}, {"starlink"})


def test_workers_are_replaced_after_max_tasks_pages_and_go_on_extracting() -> None:
    page = (PAGES / "abc7news.com-Napa.html").read_bytes()

    async def run() -> tuple[set[int], list[str]]:
        with Extractor(workers=1, max_tasks=2) as extractor:
            pids = {await extractor.run_page(worker_pid) for _ in range(6)}
            texts = [(await extractor.extract_async(page, url="https://x.org/napa")).text for _ in range(3)]
            return pids, texts

    pids, texts = asyncio.run(run())

    assert len(pids) == 3  # six tasks, two per worker
    assert all("Lake Berryessa" in text for text in texts)
