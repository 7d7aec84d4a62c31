"""Benchmark the per-article cost of story dedup as the archive grows: 10k, 100k and 1M stored articles.

    cd /work/main && .venv/bin/python bench/bench_dedupe.py [--sizes 10000,100000,1000000] [--postgres]

The issue's target: storing one new article (repository.add_article in its own transaction: the story
lock, the text fingerprint check, the insert, the candidates from the story_keys index within the 7-day
window, their scoring, the story, the index keys) costs at 1M stored articles at most twice what it costs at
10k. The archive is synthetic and published at a constant rate (1,500 articles a day), so the 7-day window
holds about as many articles at every size and only the history before it grows. One database is seeded in
bulk up to each size in turn, then new articles published at the end of the archive (rewrites of recent
archive articles, and new events) are stored one by one with add_article and timed. The baseline is a second
database seeded to the smallest size once, whose new articles are timed in rounds alternating with the
growing one's, so drift on the machine affects both alike; the smallest size's own figure, measured earlier
in the run, is reported beside it. Vectoriser.features, whose cost does not depend on the archive, is timed
at every size as a control.

Exit status: 0 when the target is met, 1 when it is missed, 2 when the run found a correctness problem.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import cProfile
import ctypes
import gc
import itertools
import json
import os
import random
import re
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from benchkit import Figure, Target, add_json_option, peak_rss, source_revision, write_result

from monitor.errors import MonitorError
from monitor.model import ArticleDraft, Extraction, Stored, StoryFeatures
from monitor.pipeline.dedupe import canonical_url, text_fingerprint
from monitor.pipeline.prepare import story_vectoriser
from monitor.pipeline.similarity import Vectoriser
from monitor.settings import FeedConfig
from monitor.store import repository, stories
from monitor.store.db import Database, open_database, upgrade
from monitor.store.schema import Article, Source, Story, StoryKey

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
TARGET_RATIO = 2.0  # each size's median per-article cost, against the reference archive's (the smallest size)
RATE_PER_DAY = 1500  # articles published per day: 10k articles span a week, 1M about 22 months
POOL = 20_000  # distinct synthetic articles, reused in order; more than one window's worth (see Archive)
ARCHIVE_REWRITES = 0.35  # share of archive articles that rewrite an article of the past day (stories form)
SOURCES = 200
START = datetime(2024, 1, 1, tzinfo=UTC)
WINDOW = stories.DEFAULT_WINDOW
BATCH = 20_000  # archive articles per seeding transaction
JOINED_AT_LEAST = 0.9  # rewrites that must join their original's story; new events that must start their own
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
FUNCTION_TEXT = (  # stopwords, a third of real text: the vectoriser drops them
    "the of and to in a that for on with was as at by from it is be has have were its after but not this an are "
    "which will"
)
ARTICLE_COLUMNS = tuple(column.name for column in Article.__table__.columns)  # the order of bulk rows
TIME_COLUMNS = (ARTICLE_COLUMNS.index("published_at"), ARTICLE_COLUMNS.index("fetched_at"))


class BenchError(Exception):
    """The run did not store or group articles as it must; its figures mean nothing."""


# --- Synthetic text ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """What one story is about: its names, figures and content words."""

    names: tuple[str, ...]
    figures: tuple[str, ...]
    words: tuple[str, ...]


class Corpus:
    """Generated English-like text: Zipf-distributed content words and names, function words, figures.

    50,000 pseudo-words with Zipf–Mandelbrot frequencies (rank r weighs 1/(r+10)) and 20,000 capitalised
    names (1/(r+3)). An event has two names of its topic (300 topics, each with 10 names and 20 words),
    2-4 names of its own, 2-4 figures and 12-18 content words. An article about it has 150-300 words in
    sentences of 8-20: 38 % function words (stopwords), 8 % the event's names, 2 % figures, 3 % other names,
    13 % the event's words and the rest background words. A rewrite keeps about half of its original's
    sentences (a third of their words replaced), adds new ones and shuffles them: it scores 0.53-0.68 against
    its original with the real Vectoriser, where two unrelated articles score 0.02-0.07.
    """

    FUNCTION_WORDS = tuple(FUNCTION_TEXT.split())

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.vocab = self._unique(lambda: self._word(2, 4), 50_000)
        self.names = [name.capitalize() for name in self._unique(lambda: self._word(2, 3), 20_000)]
        self._vocab_cum = list(itertools.accumulate(1 / (rank + 10) for rank in range(len(self.vocab))))
        self._name_cum = list(itertools.accumulate(1 / (rank + 3) for rank in range(len(self.names))))
        self.topics = [
            (tuple(self.name() for _ in range(10)), tuple(self.word() for _ in range(20))) for _ in range(300)
        ]

    def _word(self, low: int, high: int) -> str:
        rng = self.rng
        return "".join(
            rng.choice("bcdfghjklmnprstvz") + rng.choice("aeiou") + (rng.choice("nrsl") if rng.random() < 0.3 else "")
            for _ in range(rng.randint(low, high))
        )

    def _unique(self, make: Callable[[], str], count: int) -> list[str]:
        words: dict[str, None] = {}
        function_words = set(self.FUNCTION_WORDS)
        while len(words) < count:
            word = make()
            if word not in function_words:
                words[word] = None
        return list(words)

    def word(self) -> str:
        """A background word, by its Zipf frequency."""
        return self.vocab[bisect.bisect(self._vocab_cum, self.rng.random() * self._vocab_cum[-1])]

    def name(self) -> str:
        """A name, by its Zipf frequency (a few people and places are in the news every day)."""
        return self.names[bisect.bisect(self._name_cum, self.rng.random() * self._name_cum[-1])]

    def event(self) -> Event:
        """A new event on a random topic."""
        rng = self.rng
        topic_names, topic_words = rng.choice(self.topics)
        figures = tuple(
            rng.choice(
                (
                    f"{rng.randint(10, 999)}",
                    f"{rng.randint(1, 99)},{rng.randint(0, 999):03d}",
                    f"{rng.randint(1, 99)}.{rng.randint(1, 9)}",
                )
            )
            for _ in range(rng.randint(2, 4))
        )
        return Event(
            names=(*rng.sample(topic_names, 2), *(rng.choice(self.names) for _ in range(rng.randint(2, 4)))),
            figures=figures,
            words=(
                *rng.sample(topic_words, 4),
                *(self.vocab[rng.randrange(300, len(self.vocab))] for _ in range(rng.randint(8, 14))),
            ),
        )

    def _token(self, event: Event) -> str:
        rng, draw = self.rng, self.rng.random()
        if draw < 0.38:
            return rng.choice(self.FUNCTION_WORDS)
        if draw < 0.46:
            return rng.choice(event.names)
        if draw < 0.48:
            return rng.choice(event.figures) if rng.random() < 0.8 else str(rng.randint(10, 500))
        if draw < 0.51:
            return self.name()
        if draw < 0.64:
            return rng.choice(event.words)
        return self.word()

    def _sentence(self, event: Event) -> str:
        words = [self._token(event) for _ in range(self.rng.randint(8, 20))]
        return " ".join([words[0][0].upper() + words[0][1:], *words[1:]]) + "."

    def title(self, event: Event) -> str:
        """A headline: a name of the event, then its words and background words."""
        rng = self.rng
        words = [rng.choice(event.words) if rng.random() < 0.5 else self.word() for _ in range(rng.randint(5, 9))]
        return " ".join([rng.choice(event.names), *words])

    def article(self, event: Event) -> tuple[str, str]:
        """(title, text) of a report of event: 150-300 words."""
        sentences, words = [], self.rng.randint(150, 300)
        while words > 0:
            sentences.append(self._sentence(event))
            words -= sentences[-1].count(" ") + 1
        return self.title(event), " ".join(sentences)

    def rewrite(self, event: Event, text: str) -> tuple[str, str]:
        """(title, text) of another outlet's report of the same event, rewritten from text."""
        rng, sentences = self.rng, []
        for sentence in re.findall(r"[^.]+\.", text):
            if rng.random() < 0.55:
                words = [word if rng.random() < 0.7 else self._token(event) for word in sentence.strip()[:-1].split()]
                sentences.append(" ".join(words) + ".")
            if rng.random() < 0.35:
                sentences.append(self._sentence(event))
        rng.shuffle(sentences)
        return self.title(event), " ".join(sentences or [self._sentence(event)])


@dataclass(frozen=True)
class PoolArticle:
    """One synthetic article with its real features, ready to be stored many times over."""

    event: int  # index into Pool.events
    event_key: int  # the pool article that started the event: its story is the story of this one
    title: str
    text: str
    features: StoryFeatures
    vector_json: str
    keys: tuple[int, ...]  # what index_article writes, in its order


@dataclass
class Pool:
    """Synthetic articles in publication order; ARCHIVE_REWRITES of them rewrite one of the past day's."""

    corpus: Corpus
    events: list[Event]
    articles: list[PoolArticle]
    seconds: float  # to generate and vectorise


def build_pool(corpus: Corpus, vectoriser: Vectoriser, *, size: int, per_day: int) -> Pool:
    """Generate the pool with the real Vectoriser (about 1.3 ms an article: 1M would take 20 minutes)."""
    started, rng = time.perf_counter(), corpus.rng
    events: list[Event] = []
    articles: list[PoolArticle] = []
    for index in range(size):
        if articles and rng.random() < ARCHIVE_REWRITES:
            original = articles[rng.randrange(max(0, index - per_day), index)]
            event, event_key = original.event, original.event_key
            title, text = corpus.rewrite(events[event], original.text)
        else:
            events.append(corpus.event())
            event, event_key = len(events) - 1, index
            title, text = corpus.article(events[event])
        features = vectoriser.features(title, text)
        if not features.comparable:
            raise BenchError(f"synthetic article {index} has only {len(features.vector)} terms")
        articles.append(
            PoolArticle(
                event,
                event_key,
                title,
                text,
                features,
                json.dumps(features.vector),
                tuple(dict.fromkeys(features.keys)),
            )
        )
    return Pool(corpus, events, articles, time.perf_counter() - started)


# --- The archive ------------------------------------------------------------------------------------------


@dataclass
class Archive:
    """The database and what has been stored in it: archive article n is pool article n % POOL.

    Each article takes the next publication slot, 86,400 / per_day seconds after the previous one. Reusing
    the pool in order keeps every term's history growing with the archive as real words' do, while any
    window of less than POOL articles holds each pool article at most once, so the window's index entries
    are the same at every size. Story ids are per pass over the pool: a rewrite joins the story of its
    original in the same pass.
    """

    database: Database
    backend: str  # "sqlite" or "postgresql"
    pool: Pool
    per_day: int
    source_ids: list[int]
    rng: random.Random
    path: Path | None = None  # the SQLite file
    count: int = 0  # archive articles stored
    slots: int = 0  # publication slots used (archive and measured articles)
    keys: int = 0  # story_keys rows written for the archive
    measured_keys: int = 0  # story_keys rows written by the measured add_article calls
    last_id: int = 0  # the newest archive article's id
    stories: dict[tuple[int, int], int] = field(default_factory=dict)  # (pass, event_key) -> story id
    archive_story: dict[int, int] = field(default_factory=dict)  # archive article n -> story id, the last day

    def at(self, slot: int) -> datetime:
        """The publication time of a slot."""
        return START + timedelta(seconds=slot * 86_400 / self.per_day)

    def grow(self, size: int, *, analyze: bool) -> tuple[float, float]:
        """Bulk-store archive articles up to size; return (seconds to store, seconds of ANALYZE)."""
        started = time.perf_counter()
        with self.database.session() as session:
            next_article = (session.scalar(sa.select(sa.func.max(Article.id))) or 0) + 1
            next_story = (session.scalar(sa.select(sa.func.max(Story.id))) or 0) + 1
        self.database.dispose()  # the measurement after this starts on fresh connections
        writer = SqliteWriter(self.path) if self.backend == "sqlite" else PostgresWriter(self.database)
        try:
            while self.count < size:
                batch = min(BATCH, size - self.count)
                story_rows, article_rows, key_rows = [], [], []
                for number in range(self.count, self.count + batch):
                    lap, index = divmod(number, len(self.pool.articles))
                    item = self.pool.articles[index]
                    at = self.at(self.slots)
                    self.slots += 1
                    story = self.stories.get((lap, item.event_key))
                    if story is None:
                        story = self.stories[lap, item.event_key] = next_story
                        next_story += 1
                        story_rows.append((story, at, next_article))
                    if number >= size - self.per_day:
                        self.archive_story[number] = story
                    source = self.source_ids[number % len(self.source_ids)]
                    link = f"https://outlet-{source}.example/news/{number}"
                    values = {
                        "id": next_article,
                        "source_id": source,
                        "guid": link,
                        "url": link,
                        "canonical_url": link,
                        "title": item.title,
                        "summary": item.text[:200],
                        "text": item.text,
                        "author": None,
                        "language": "en",
                        "published_at": at,
                        "fetched_at": at + timedelta(minutes=5),
                        "extraction": Extraction.PAGE.value,
                        "extraction_error": None,
                        "story_id": story,
                        "watchlist_version": "bench",
                        "content_hash": f"{self.rng.getrandbits(256):064x}",
                        "story_vector": item.vector_json,
                        # Marked as in the full-text index, as add_article leaves every article it stores;
                        # the index itself is not seeded, dedup does not read it.
                        "search_indexed": True,
                    }
                    article_rows.append(tuple(values[column] for column in ARTICLE_COLUMNS))
                    key_rows.extend((key, at, next_article) for key in item.keys)
                    next_article += 1
                key_rows.sort()  # each key's new entries go to the end of its range, as they do one by one
                writer.write(story_rows, article_rows, key_rows)
                self.count += batch
                self.keys += len(key_rows)
                lap = self.count // len(self.pool.articles)
                self.stories = {key: value for key, value in self.stories.items() if key[0] >= lap - 1}
            self.archive_story = {n: s for n, s in self.archive_story.items() if n >= size - self.per_day}
            self.last_id = next_article - 1
            seeded = time.perf_counter()
            writer.finish(next_article=next_article, next_story=next_story, analyze=analyze)
        finally:
            writer.close()
            self.database.dispose()
        finished = time.perf_counter()
        return finished - started, finished - seeded

    def size_on_disk(self) -> int:
        """Bytes: the SQLite file and its WAL, or the PostgreSQL database."""
        if self.path is not None:
            return sum(
                p.stat().st_size for p in (self.path, self.path.with_name(self.path.name + "-wal")) if p.exists()
            )
        with self.database.session() as session:
            return int(session.scalar(sa.text("SELECT pg_database_size(current_database())")) or 0)


class SqliteWriter:
    """Bulk inserts through a connection of its own with a large page cache, so the app's connections keep
    their defaults; values rendered as SQLAlchemy's SQLite dialect stores them."""

    def __init__(self, path: Path | None) -> None:
        assert path is not None
        self.connection = sqlite3.connect(path, isolation_level=None)
        for pragma in ("cache_size=-1000000", "synchronous=OFF", "temp_store=MEMORY"):
            self.connection.execute(f"PRAGMA {pragma}")
        dialect = sa.create_engine("sqlite://").dialect
        self.render_time = Article.__table__.c.published_at.type.bind_processor(dialect)

    def write(
        self, story_rows: list[tuple[Any, ...]], article_rows: list[tuple[Any, ...]], key_rows: list[Any]
    ) -> None:
        render = self.render_time
        cursor = self.connection.cursor()
        cursor.execute("BEGIN")
        cursor.executemany(
            "INSERT INTO stories (id, created_at, representative_id) VALUES (?, ?, ?)",
            [(story, render(at), rep) for story, at, rep in story_rows],
        )
        rendered: dict[datetime, str] = {}
        rows = []
        for row in article_rows:
            values = list(row)
            for index in TIME_COLUMNS:
                values[index] = rendered.setdefault(row[index], render(row[index]))
            rows.append(values)
        cursor.executemany(
            f"INSERT INTO articles ({', '.join(ARTICLE_COLUMNS)}) VALUES ({', '.join('?' * len(ARTICLE_COLUMNS))})",
            rows,
        )
        cursor.executemany(
            "INSERT INTO story_keys (key, at, article_id) VALUES (?, ?, ?)",
            [(key, rendered[at], article) for key, at, article in key_rows],
        )
        cursor.execute("COMMIT")

    def finish(self, *, next_article: int, next_story: int, analyze: bool) -> None:
        if analyze:
            self.connection.execute("ANALYZE")
        self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self.connection.close()


class PostgresWriter:
    """Bulk COPY in one connection; then the id sequences, VACUUM ANALYZE and a CHECKPOINT, so neither
    autovacuum nor a checkpoint of the seed's writes runs while the new articles are timed."""

    def __init__(self, database: Database) -> None:
        self.connection = database.engine.raw_connection()
        self.dbapi: Any = self.connection.driver_connection

    def write(
        self, story_rows: list[tuple[Any, ...]], article_rows: list[tuple[Any, ...]], key_rows: list[Any]
    ) -> None:
        with self.dbapi.cursor() as cursor:
            for table, columns, rows in (
                ("stories", "id, created_at, representative_id", story_rows),
                ("articles", ", ".join(ARTICLE_COLUMNS), article_rows),
                ("story_keys", "key, at, article_id", key_rows),
            ):
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        self.dbapi.commit()

    def finish(self, *, next_article: int, next_story: int, analyze: bool) -> None:
        self.dbapi.autocommit = True
        with self.dbapi.cursor() as cursor:
            for table, following in (("articles", next_article), ("stories", next_story)):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {following - 1})")
            cursor.execute("VACUUM ANALYZE" if analyze else "VACUUM")
            cursor.execute("CHECKPOINT")
        self.dbapi.autocommit = False

    def close(self) -> None:
        self.connection.close()


def check_seed(archive: Archive) -> None:
    """The bulk rows read back through the ORM as add_article would have written them, and the candidate
    query finds the newest archive article under its own features and time."""
    number = archive.count - 1
    item = archive.pool.articles[number % len(archive.pool.articles)]
    with archive.database.session() as session:
        stored = session.get(Article, archive.last_id)
        if stored is None or stored.story_vector != item.features.vector or stored.title != item.title:
            raise BenchError(f"archive article {number} does not read back as written")
        at = stored.published_at
        if at is None or stored.story_id != archive.archive_story[number]:
            raise BenchError(f"archive article {number} has no publication time or the wrong story")
        found = stories._candidates(session, features=item.features, at=at, window=WINDOW)
        if not any(story == stored.story_id and when == at for story, _, when in found):
            raise BenchError(f"the candidate query does not find archive article {number} under its own keys")
        rows = session.scalar(sa.select(sa.func.count()).select_from(StoryKey))
    if rows != archive.keys + archive.measured_keys:
        raise BenchError(f"story_keys holds {rows} rows, expected {archive.keys + archive.measured_keys}")


# --- The measured articles --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """A new article to store, and the story it must end in."""

    draft: ArticleDraft
    rewrite_of: int | None  # the story of its original, for a rewrite of an archive article
    features_ms: float


@dataclass
class SizeResult:
    """What storing the new articles cost at one archive size."""

    size: int
    span_days: float
    in_window: int
    story_keys: int
    disk_bytes: int
    seed_s: float
    analyze_s: float
    add_ms: list[float]
    round_medians: list[float]
    reference_ms: list[float]  # the reference archive's, in rounds alternating with these
    candidates_ms: list[float]
    candidates: list[int]
    rows_read: list[int]
    features_ms: list[float]
    rewrites_joined: tuple[int, int]
    new_alone: tuple[int, int]
    rss_mb: float  # peak of the process so far (the seeding's SQLite page cache is 1 GB of it)
    timed_rss_mb: float | None  # peak while the new articles were stored (None where it cannot be reset)
    plan: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def probes(archive: Archive, vectoriser: Vectoriser, count: int, *, label: str) -> list[Probe]:
    """count new articles at the next slots: half rewrites of an article of the archive's last day."""
    corpus, pool, rng = archive.pool.corpus, archive.pool, archive.rng
    made = []
    for index in range(count):
        rewrite = index % 2 == 0
        if rewrite:
            number = rng.randrange(archive.count - min(archive.per_day, archive.count), archive.count)
            item = pool.articles[number % len(pool.articles)]
            title, text = corpus.rewrite(pool.events[item.event], item.text)
        else:
            title, text = corpus.article(corpus.event())
        started = time.perf_counter()
        features = vectoriser.features(title, text)
        features_ms = (time.perf_counter() - started) * 1000
        at = archive.at(archive.slots)
        archive.slots += 1
        source = archive.source_ids[rng.randrange(len(archive.source_ids))]
        url = f"https://www.outlet-{source}.example/news/{label}-{index}?utm_source=rss"
        link = canonical_url(url)
        if link is None:
            raise BenchError(f"canonical_url refused {url}")
        draft = ArticleDraft(
            source_id=source,
            guid=url,
            url=url,
            canonical_url=link,
            title=title,
            text=text,
            summary=text[:200],
            author=None,
            published_at=at,
            fetched_at=at + timedelta(minutes=5),
            language="en",
            extraction=Extraction.PAGE,
            watchlist_version="bench",
            fingerprint=text_fingerprint(text),
            features=features,
        )
        made.append(Probe(draft, archive.archive_story[number] if rewrite else None, features_ms))
    return made


@contextmanager
def timed_candidates(into_ms: list[float], into_count: list[int]) -> Iterator[None]:
    """Time stories._candidates inside add_article (assign_story looks it up in the module at each call)."""
    original = stories._candidates

    def candidates(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        found = original(*args, **kwargs)
        into_ms.append((time.perf_counter() - started) * 1000)
        into_count.append(len(found))
        return found

    stories._candidates = candidates
    try:
        yield
    finally:
        stories._candidates = original


@contextmanager
def captured_candidate_sql(engine: sa.Engine, into: list[tuple[str, Any]]) -> Iterator[None]:
    """Record the SQL and parameters of the candidate query as the driver receives them."""

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "story_keys" in statement and "GROUP BY" in statement and not into:
            into.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def explain(database: Database, statement: str, parameters: Any) -> list[str]:
    """The plan of the candidate query: EXPLAIN QUERY PLAN on SQLite. On PostgreSQL, EXPLAIN (ANALYZE, BUFFERS)
    of the plan for these values, then of the generic plan: psycopg prepares a statement on its fifth use, and
    the server may then plan it once for any values."""
    connection = database.engine.raw_connection()
    try:
        cursor = connection.cursor()
        if database.engine.dialect.name == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            return [row[-1] for row in cursor.fetchall()]
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        lines = ["custom plan (for these values):", *(row[0] for row in cursor.fetchall())]
        names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))  # psycopg's %(name)s to $1, $2, ...
        numbered = re.sub(r"%\((\w+)\)s", lambda match: f"${names.index(match[1]) + 1}", statement)
        cursor.execute("PREPARE bench_candidates AS " + numbered)
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        values = psycopg.ClientCursor(connection.driver_connection).mogrify(
            ", ".join(["%s"] * len(names)), [parameters[name] for name in names]
        )
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_candidates({values})")
        return [*lines, "generic plan:", *(row[0] for row in cursor.fetchall())]
    finally:
        connection.rollback()
        connection.close()


def peak_rss_mb() -> float:
    """The process's peak resident set size since it started, or since reset_peak_rss()."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Linux: restart the peak resident set size from the current one (`5` to /proc/self/clear_refs), after
    handing the memory the seeding freed (the SQLite writer's page cache) back to the system."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def store(database: Database, probe: Probe) -> tuple[float, int]:
    """add_article in its own transaction; (milliseconds, article id)."""
    started = time.perf_counter()
    with database.session() as session:
        stored, article_id = repository.add_article(session, draft=probe.draft)
    elapsed = (time.perf_counter() - started) * 1000
    if stored is not Stored.NEW or article_id is None:
        raise BenchError(f"add_article stored {probe.draft.url} as {stored.value}, expected a new article")
    return elapsed, article_id


@dataclass
class Runs:
    """The new articles stored in one archive at one size: timings, and what to check afterwards."""

    add_ms: list[float] = field(default_factory=list)
    round_medians: list[float] = field(default_factory=list)
    candidates_ms: list[float] = field(default_factory=list)
    candidates: list[int] = field(default_factory=list)
    features_ms: list[float] = field(default_factory=list)
    done: list[tuple[Probe, int]] = field(default_factory=list)
    sql: list[tuple[str, Any]] = field(default_factory=list)  # the first candidate query, for EXPLAIN


def timed_round(archive: Archive, vectoriser: Vectoriser, runs: Runs, *, articles: int, label: str) -> None:
    """Store articles new articles one by one, each timed."""
    batch = probes(archive, vectoriser, articles, label=label)
    runs.features_ms.extend(probe.features_ms for probe in batch)
    gc.collect()  # the previous round's garbage is not collected on this one's clock
    timings = []
    with (
        timed_candidates(runs.candidates_ms, runs.candidates),
        captured_candidate_sql(archive.database.engine, runs.sql),
    ):
        for probe in batch:
            elapsed, article_id = store(archive.database, probe)
            timings.append(elapsed)
            runs.done.append((probe, article_id))
    runs.add_ms.extend(timings)
    runs.round_medians.append(statistics.median(timings))


def check_stories(archive: Archive, runs: Runs) -> tuple[tuple[int, int], tuple[int, int], list[int]]:
    """(rewrites that joined their original's story, of all), (new events that started a story of their own,
    of all), and the index rows each article's candidate query had to read."""
    joined, alone, rows_read = [0, 0], [0, 0], []
    ids = [article_id for _, article_id in runs.done]
    with archive.database.session() as session:
        story_of = dict(session.execute(sa.select(Article.id, Article.story_id).where(Article.id.in_(ids))).all())
        taken = set(
            session.scalars(
                sa.select(Article.story_id).where(Article.story_id.in_(set(story_of.values())), Article.id.not_in(ids))
            )
        )
        for probe, article_id in runs.done:
            features, at = probe.draft.features, probe.draft.published_at
            assert features is not None
            assert at is not None
            rows_read.append(
                session.scalar(
                    sa.select(sa.func.count())
                    .select_from(StoryKey)
                    .where(StoryKey.key.in_(features.keys), StoryKey.at >= at - WINDOW, StoryKey.at < at)
                )
                or 0
            )
            if probe.rewrite_of is not None:
                joined[0] += story_of[article_id] == probe.rewrite_of
                joined[1] += 1
            else:
                # A new event must start a story of its own: one no archive article and no other probe is in.
                others = sum(1 for _, other in runs.done if story_of[other] == story_of[article_id])
                alone[0] += story_of[article_id] not in taken and others == 1
                alone[1] += 1
    if joined[0] < JOINED_AT_LEAST * joined[1] or alone[0] < JOINED_AT_LEAST * alone[1]:
        raise BenchError(
            f"at {archive.count} articles, {joined[0]}/{joined[1]} rewrites joined their original's story and "
            f"{alone[0]}/{alone[1]} new events started their own (need {JOINED_AT_LEAST:.0%} of each)"
        )
    return (joined[0], joined[1]), (alone[0], alone[1]), rows_read


def count_keys(archive: Archive) -> int:
    """story_keys rows; remembers how many the measured add_article calls wrote."""
    with archive.database.session() as session:
        rows = session.scalar(sa.select(sa.func.count()).select_from(StoryKey)) or 0
    archive.measured_keys = rows - archive.keys
    return rows


def measure(
    archive: Archive,
    reference: Archive,
    vectoriser: Vectoriser,
    *,
    articles: int,
    rounds: int,
    warmup: int,
    seed_s: float,
    analyze_s: float,
    profile_dir: Path | None = None,
) -> SizeResult:
    """Store warmup, then rounds x articles new articles one by one, timed, in archive and in the reference
    archive by turns; check where each one went."""
    label = f"s{archive.count}"
    process_peak = peak_rss_mb()
    reset = reset_peak_rss()
    for which in (archive, reference):
        for probe in probes(which, vectoriser, warmup, label=f"{label}w"):
            store(which.database, probe)  # fresh connections, SQLite's page cache, psycopg's prepared statements
    runs, reference_runs = Runs(), Runs()
    for round_ in range(rounds):
        turns = ((reference, reference_runs), (archive, runs))
        for which, into in turns if round_ % 2 == 0 else reversed(turns):
            timed_round(which, vectoriser, into, articles=articles, label=f"{label}r{round_}")
    notes = prepared_plans(archive.database)  # on the connection that stored them, before anything else
    joined, alone, rows_read = check_stories(archive, runs)
    check_stories(reference, reference_runs)
    with archive.database.session() as session:
        end = archive.at(archive.slots)
        in_window = session.scalar(
            sa.select(sa.func.count()).select_from(Article).where(Article.published_at >= end - WINDOW)
        )
    if profile_dir is not None:  # one more round, untimed, under cProfile
        profiler = cProfile.Profile()
        batch = probes(archive, vectoriser, articles, label=f"{label}p")
        profiler.enable()
        for probe in batch:
            store(archive.database, probe)
        profiler.disable()
        profiler.dump_stats(profile_dir / f"add_article-{archive.count}.prof")
    count_keys(reference)
    return SizeResult(
        size=archive.count,
        span_days=archive.count / archive.per_day,
        in_window=in_window or 0,
        story_keys=count_keys(archive),
        disk_bytes=archive.size_on_disk(),
        seed_s=seed_s,
        analyze_s=analyze_s,
        add_ms=runs.add_ms,
        round_medians=runs.round_medians,
        reference_ms=reference_runs.add_ms,
        candidates_ms=runs.candidates_ms,
        candidates=runs.candidates,
        rows_read=rows_read,
        features_ms=runs.features_ms,
        rewrites_joined=joined,
        new_alone=alone,
        rss_mb=max(process_peak, peak_rss_mb()),
        timed_rss_mb=peak_rss_mb() if reset else None,
        plan=explain(archive.database, *runs.sql[0]) if runs.sql else [],
        notes=notes,
    )


def prepared_plans(database: Database) -> list[str]:
    """PostgreSQL: how the server planned the candidate query psycopg prepared (generic or custom plans)."""
    if database.engine.dialect.name != "postgresql":
        return []
    with database.session() as session:
        rows = session.execute(
            sa.text(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE statement LIKE '%story_keys%GROUP BY%'"
            )
        ).all()
    return [
        f"prepared candidate query: {row.generic_plans} generic plans, {row.custom_plans} custom plans" for row in rows
    ]


# --- Set-up and report ------------------------------------------------------------------------------------


@contextmanager
def database_urls(args: argparse.Namespace, workdir: Path) -> Iterator[tuple[str, str, str]]:
    """(backend label, URL of the growing archive, URL of the reference archive): two SQLite files, or two
    temporary PostgreSQL databases on one server."""
    if not args.postgres:
        yield (
            f"SQLite {sqlite3.sqlite_version} (WAL files)",
            f"sqlite:///{workdir / 'monitor.db'}",
            f"sqlite:///{workdir / 'reference.db'}",
        )
        return
    admin = sa.create_engine(args.postgres_admin_url, isolation_level="AUTOCOMMIT")
    names = [f"monitor_bench_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    try:
        with admin.connect() as connection:
            version = connection.scalar(sa.text("show server_version"))
        try:
            for name in names:
                with admin.connect() as connection:
                    connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
            urls = [admin.url.set(database=name).render_as_string(hide_password=False) for name in names]
            yield f"PostgreSQL {version}", urls[0], urls[1]
        finally:
            for name in names:
                with admin.connect() as connection:
                    connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def open_archive(opened: ExitStack, url: str, pool: Pool, args: argparse.Namespace, *, seed: int) -> Archive:
    """An empty archive at url, disposed of when opened closes."""
    database, source_ids = open_empty(url)
    opened.callback(database.dispose)
    path = Path(database.engine.url.database or "") if database.engine.dialect.name == "sqlite" else None
    return Archive(
        database, database.engine.dialect.name, pool, args.per_day, source_ids, random.Random(seed), path=path
    )


def open_empty(url: str) -> tuple[Database, list[int]]:
    """Open and migrate url, refuse one that already holds articles, and store the outlets."""
    database = open_database(url, migrate=False)
    upgrade(database)
    with database.session() as session:
        if session.scalar(sa.select(sa.func.count()).select_from(Article)):
            database.dispose()
            raise BenchError(f"{database.display_url} already has articles; give an empty database")
        feeds = [
            FeedConfig.model_validate({"name": f"outlet-{index:03d}", "url": f"https://outlet-{index}.example/rss"})
            for index in range(SOURCES)
        ]
        repository.sync_sources(session, feeds=feeds, now=datetime.now(UTC))
    with database.session() as session:
        return database, list(session.scalars(sa.select(Source.id).order_by(Source.id)))


def p95(values: Sequence[float]) -> float:
    """The 95th percentile."""
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def report(results: Sequence[SizeResult]) -> tuple[str, list[str]]:
    """A Markdown table, one row per size, and the targets missed.

    The target is judged on the ratio to the reference archive (as large as the smallest size, timed in rounds
    alternating with the archive's), which drift on the machine affects alike; the ratio to the smallest
    size's own median, measured minutes earlier, is shown beside it.
    """
    first = results[0]
    base, base_features = statistics.median(first.add_ms), statistics.median(first.features_ms)
    lines = [
        "| stored articles | span days | in 7-day window | story_keys rows | DB size MB | seed s (ANALYZE) "
        "| add_article median ms | p95 ms | round medians ms | reference median ms | × reference "
        f"| × {first.size:,} | candidate query median ms | index rows read (median / p95) "
        "| features median ms (× first) | rewrites joined | new events alone | peak RSS MB (process / while timed) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    missed = []
    for result in results:
        median, reference = statistics.median(result.add_ms), statistics.median(result.reference_ms)
        ratio = median / reference
        features = statistics.median(result.features_ms)
        if ratio > TARGET_RATIO:
            missed.append(
                f"{result.size:,} articles: {median:.2f} ms, {ratio:.2f} × the {first.size:,}-article reference"
            )
        timed_rss = "?" if result.timed_rss_mb is None else f"{result.timed_rss_mb:.0f}"
        lines.append(
            f"| {result.size:,} | {result.span_days:.0f} | {result.in_window:,} | {result.story_keys:,} "
            f"| {result.disk_bytes / 1e6:,.0f} | {result.seed_s:.0f} ({result.analyze_s:.0f}) | {median:.2f} "
            f"| {p95(result.add_ms):.2f} | {min(result.round_medians):.2f}–{max(result.round_medians):.2f} "
            f"| {reference:.2f} | {ratio:.2f} | {median / base:.2f} | {statistics.median(result.candidates_ms):.2f} "
            f"| {statistics.median(result.rows_read):.0f} / {p95(result.rows_read):.0f} "
            f"| {features:.2f} ({features / base_features:.2f}) "
            f"| {result.rewrites_joined[0]}/{result.rewrites_joined[1]} | {result.new_alone[0]}/{result.new_alone[1]} "
            f"| {result.rss_mb:.0f} / {timed_rss} |"
        )
    return "\n".join(lines), missed


def parse_sizes(text: str) -> list[int]:
    """--sizes: increasing article counts."""
    sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    if not sizes or sizes != sorted(set(sizes)) or sizes[0] < 1:
        raise argparse.ArgumentTypeError("give increasing positive counts, e.g. 10000,100000")
    return sizes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=(
            "Time repository.add_article (story dedup) for new articles at growing archive sizes, seeded in bulk "
            "with synthetic articles published at a constant rate. Exits 1 when a size's median costs "
            f"more than {TARGET_RATIO:g} × a reference archive of the smallest size timed by turns with it, 2 when the "
            "run finds a correctness problem."
        ),
        epilog="example: .venv/bin/python bench/bench_dedupe.py --sizes 10000,100000 --postgres",
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=list(DEFAULT_SIZES),
        help="archive sizes to measure at, in order, in one database (default 10000,100000,1000000)",
    )
    parser.add_argument("--articles", type=int, default=100, help="new articles stored per round (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per size (default 3)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed new articles stored first at each size")
    parser.add_argument("--per-day", type=int, default=RATE_PER_DAY, help=f"publishing rate (default {RATE_PER_DAY})")
    parser.add_argument("--pool", type=int, default=POOL, help=f"distinct synthetic articles (default {POOL})")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the synthetic text")
    parser.add_argument("--no-analyze", action="store_true", help="skip ANALYZE after seeding (the app never runs it)")
    parser.add_argument("--explain", action="store_true", help="print the candidate query's plan at each size")
    parser.add_argument("--postgres", action="store_true", help="use temporary PostgreSQL databases, then drop them")
    parser.add_argument(
        "--postgres-admin-url",
        default=POSTGRES_ADMIN_URL,
        help=f"server where --postgres creates its database (default {POSTGRES_ADMIN_URL})",
    )
    parser.add_argument(
        "--profile", type=Path, help="store one more round per size under cProfile, untimed; write its stats here"
    )
    parser.add_argument("--keep", action="store_true", help="keep the working folder (the SQLite files)")
    add_json_option(parser)
    args = parser.parse_args(argv)
    if args.articles < 2 or args.rounds < 1 or args.warmup < 0 or args.per_day < 1:
        parser.error("--articles must be at least 2, --rounds 1, --warmup 0 and --per-day 1")
    window_articles = args.per_day * WINDOW.days
    if args.pool <= window_articles + args.per_day:
        parser.error(f"--pool must exceed a window and a day of articles ({window_articles + args.per_day})")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its table; the exit status says whether the target was met."""
    args = parse_args(argv)
    revision = source_revision()  # before src/ can change under a run that lasts minutes
    workdir = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    results: list[SizeResult] = []
    started = time.perf_counter()
    try:
        with database_urls(args, workdir) as (backend, url, reference_url), ExitStack() as opened:
            vectoriser = story_vectoriser(None)
            pool = build_pool(Corpus(rng), vectoriser, size=args.pool, per_day=args.per_day)
            print(
                f"{backend}; {args.pool:,} synthetic articles generated and vectorised in {pool.seconds:.0f} s "
                f"({len(pool.events):,} events); {args.per_day:,} articles a day; code at {revision}",
                flush=True,
            )
            archive, reference = (
                open_archive(opened, address, pool, args, seed=args.seed + offset)
                for offset, address in enumerate((url, reference_url), start=1)
            )
            reference.grow(args.sizes[0], analyze=not args.no_analyze)
            check_seed(reference)
            for size in args.sizes:
                seed_s, analyze_s = archive.grow(size, analyze=not args.no_analyze)
                check_seed(archive)
                result = measure(
                    archive,
                    reference,
                    vectoriser,
                    articles=args.articles,
                    rounds=args.rounds,
                    warmup=args.warmup,
                    seed_s=seed_s,
                    analyze_s=analyze_s,
                    profile_dir=args.profile,
                )
                results.append(result)
                print(
                    f"{size:,} articles: seeded in {seed_s:.0f} s; add_article median "
                    f"{statistics.median(result.add_ms):.2f} ms (reference {statistics.median(result.reference_ms):.2f}"
                    f" ms), p95 {p95(result.add_ms):.2f} ms",
                    flush=True,
                )
                if args.explain:
                    print("\n".join(f"    {line}" for line in result.plan), flush=True)
    except (BenchError, MonitorError, sa.exc.SQLAlchemyError, sqlite3.Error) as exc:
        print(f"FAILED: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return write_result(args.json, benchmark="dedupe", status=2, revision=revision, error=str(exc).strip())
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    table, missed = report(results)
    print(table)
    for result in results:
        for note in result.notes:
            print(f"{result.size:,} articles: {note}")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{time.perf_counter() - started:.0f} s in all; {args.rounds} × {args.articles} new articles per size "
        f"and as many in the {results[0].size:,}-article reference, by turns, after {args.warmup} untimed; half "
        f"rewrites of the archive's last day; target: median at most {TARGET_RATIO:g} × the reference's"
    )
    for problem in missed:
        print(f"TARGET MISSED: {problem}", file=sys.stderr)
    return write_result(
        args.json,
        benchmark="dedupe",
        status=1 if missed else 0,
        revision=revision,
        figures=headline_figures(results, backend="postgresql" if args.postgres else "sqlite"),
        memory=peak_rss(children=False),
        notes=missed,
    )


def headline_figures(results: Sequence[SizeResult], *, backend: str) -> list[Figure]:
    """The largest size's add_article median against the reference archive's, the ratio the target is judged
    on; met only when every size's ratio is within the target, as report() judges."""
    largest, smallest = results[-1], results[0]
    median, reference = statistics.median(largest.add_ms), statistics.median(largest.reference_ms)
    met = all(statistics.median(r.add_ms) / statistics.median(r.reference_ms) <= TARGET_RATIO for r in results)
    return [
        Figure(
            name=f"add_article at {largest.size:,} articles",
            backend=backend,
            value=median,
            unit="ms",
            statistic=f"median of {len(largest.add_ms)} new articles",
            target=Target(f"<= {TARGET_RATIO:g}x the reference, every size", TARGET_RATIO, "x", met),
            baseline=reference,
            baseline_name=f"a {smallest.size:,}-article reference archive, timed by turns",
            ratio=median / reference,
        )
    ]


if __name__ == "__main__":
    sys.exit(main())
