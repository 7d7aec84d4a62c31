"""Benchmark one full poll pass over many feeds served locally, against a bare-httpx baseline.

    cd /work/main && .venv/bin/python bench/bench_poll.py [--feeds 1000] [--postgres]

Issue 3's targets: 1,000 feeds that all answer 304 in under 10 s, and all answering 200 with 30 items that
are already stored in under 60 s. Each feed lives on its own loopback address (127.0.x.y) so the per-host
politeness (2 in flight, 1 s between starts) applies as it would to 1,000 real outlets. The feeds are
served by a small asyncio HTTP/1.1 server in a separate process, so it shares neither event loop nor GIL
with the client under test. The baseline is the same conditional GETs made by a bare httpx.AsyncClient
with the same concurrency and no database: the ratio is what the pipeline costs on top of the network.

Exit status: 0 when both targets are met, 1 when one is missed, 2 when the run found a correctness problem.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import gzip
import http.client
import json
import logging
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import httpx
import sqlalchemy as sa
from benchkit import Figure, Target, add_json_option, peak_rss, serve_connection, source_revision, write_result

from monitor.errors import MonitorError
from monitor.model import ArticleDraft, Extraction, FeedSummary, FetchOutcome, FetchResult, StoryFeatures
from monitor.pipeline.dedupe import canonical_url
from monitor.pipeline.extract import Extractor, html_to_text
from monitor.pipeline.fetch import FEED_ACCEPT, Fetcher, FetchLimits
from monitor.pipeline.guard import AddressPolicy
from monitor.pipeline.refresh import FEED_CONCURRENCY, poll_feeds
from monitor.pipeline.tag import Tagger
from monitor.settings import DEFAULT_USER_AGENT, FeedConfig, load_tags
from monitor.store import repository
from monitor.store.db import Database, open_database, upgrade
from monitor.store.schema import Article, FetchLog, FetchState, Source

# Issue 3: per 1,000 feeds; another --feeds scales them, as a pass is a series of per-feed work.
TARGET_SECONDS = {"poll-304": 10.0, "poll-200": 60.0}
TARGET_FEEDS = 1000
BASELINE_OF = {"poll-304": "bare-304", "poll-200": "bare-200"}
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
HOSTS_PER_OCTET = 250
CONTROL_HOST = "127.0.0.1"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"  # what `monitor run` writes


class BenchError(Exception):
    """The run did not do what a correct poll must do; its figures mean nothing."""


# --- The simulated outlets --------------------------------------------------------------------------------


def feed_host(index: int) -> str:
    """Feed index's own loopback address: all of 127.0.0.0/8 reaches the one server on Linux."""
    return f"127.0.{index // HOSTS_PER_OCTET}.{index % HOSTS_PER_OCTET + 1}"


def feed_url(index: int, port: int) -> str:
    """Where feed index is served."""
    return f"http://{feed_host(index)}:{port}/feeds/{index}.xml"


def item_link(index: int, item: int, port: int) -> str:
    """The article page of one item, on the feed's own host (never requested when the item is stored)."""
    return f"http://{feed_host(index)}:{port}/news/{index}/{item}.html"


def feed_etag(index: int, generation: int) -> str:
    """The feed's ETag; a new generation is the same items with a new ETag, so the feed answers 200."""
    return f'"feed-{index}-g{generation}"'


def item_title(index: int, item: int) -> str:
    """Half the outlets write in Russian, as in the shipped feeds; both go through the same decoding."""
    if index % 2:
        return f"Новости региона {index}: сообщение номер {item} о водных ресурсах и границах"
    return f"Regional news {index}: report number {item} on water resources and border crossings"


def item_summary_html(index: int, item: int) -> str:
    """A summary of a few hundred characters with some markup, like a typical news feed's description."""
    title = item_title(index, item)
    return (
        f"<p>{escape(title)}. Officials met on Tuesday to discuss the <b>allocation</b> of water from the "
        f"upper reaches of the river, the reopening of two border crossings and new rules for seasonal "
        f'workers. <a href="/news/{index}/{item}.html">Read more</a></p><p>Item {item} of outlet {index}.</p>'
    )


def published_at(base: datetime, item: int) -> datetime:
    """Item dates a little under an hour apart, newest first."""
    return base - timedelta(minutes=47 * item)


def render_feed(index: int, *, port: int, items: int, generation: int, base: datetime) -> bytes:
    """An RSS 2.0 feed of `items` items; only lastBuildDate differs between generations."""
    host = feed_host(index)
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
        f"<title>Bench outlet {index}</title><link>http://{host}:{port}/</link>",
        f"<description>Outlet {index} of the poll benchmark</description>",
        f"<language>{'ru' if index % 2 else 'en'}</language>",
        f"<lastBuildDate>{format_datetime(base + timedelta(minutes=generation))}</lastBuildDate>",
    ]
    for item in range(items):
        link = item_link(index, item, port)
        parts.append(
            f"<item><title>{escape(item_title(index, item))}</title><link>{link}</link>"
            f'<guid isPermaLink="true">{link}</guid><pubDate>{format_datetime(published_at(base, item))}</pubDate>'
            f"<description><![CDATA[{item_summary_html(index, item)}]]></description></item>"
        )
    parts.append("</channel></rss>\n")
    return "".join(parts).encode("utf-8")


@dataclass
class FeedSite:
    """Every outlet's answers, rendered ahead so the server spends its time on HTTP, not on XML."""

    port: int
    feeds: int
    items: int
    base: datetime
    generation: int = 1
    counts: Counter[str] = field(default_factory=Counter)
    _ok: list[tuple[bytes, bytes]] = field(default_factory=list)  # per feed: (identity, gzip) response
    _not_modified: list[bytes] = field(default_factory=list)

    def render(self) -> None:
        """Render the current generation's responses (outside any timed phase)."""
        self._ok, self._not_modified = [], []
        for index in range(self.feeds):
            etag = feed_etag(index, self.generation)
            body = render_feed(index, port=self.port, items=self.items, generation=self.generation, base=self.base)
            common = f"ETag: {etag}\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
            packed = gzip.compress(body, compresslevel=6)
            self._ok.append(
                (
                    _response(200, common, body),
                    _response(200, common + "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n", packed),
                )
            )
            self._not_modified.append(_response(304, f"ETag: {etag}\r\n", b""))

    def respond(self, target: str, headers: dict[str, str]) -> bytes:
        """The whole HTTP response to a GET of target."""
        path, _, query = target.partition("?")
        if path.startswith("/feeds/") and path.endswith(".xml"):
            index = int(path[7:-4]) if path[7:-4].isdigit() else -1
            if 0 <= index < self.feeds:
                if headers.get("if-none-match") == feed_etag(index, self.generation):
                    self.counts["feed-304"] += 1
                    return self._not_modified[index]
                self.counts["feed-200"] += 1
                identity, packed = self._ok[index]
                return packed if "gzip" in headers.get("accept-encoding", "") else identity
        if path.startswith("/news/"):
            self.counts["page"] += 1
            return _response(200, "Content-Type: text/html; charset=utf-8\r\n", b"<html><body>page</body></html>")
        if path == "/_bench/stats":
            stats = {"counts": dict(self.counts), "cpu": time.process_time(), "generation": self.generation}
            if query == "reset":
                self.counts.clear()
            return _response(200, "Content-Type: application/json\r\n", json.dumps(stats).encode())
        if path == "/_bench/next-generation":
            self.generation += 1
            self.render()
            return _response(200, "Content-Type: application/json\r\n", json.dumps(self.generation).encode())
        self.counts["other"] += 1
        return _response(404, "Content-Type: text/plain\r\n", b"not found")


def _response(status: int, headers: str, body: bytes) -> bytes:
    reason = {200: "OK", 304: "Not Modified", 404: "Not Found"}[status]
    length = "" if status == 304 else f"Content-Length: {len(body)}\r\n"
    return f"HTTP/1.1 {status} {reason}\r\n{headers}{length}\r\n".encode("latin-1") + body


def serve_feeds(report: Connection, feeds: int, items: int, base: datetime) -> None:
    """Server process entry point: bind 0.0.0.0 on a free port, send the port back, serve until killed."""

    async def main() -> None:
        site = FeedSite(port=0, feeds=feeds, items=items, base=base)
        server = await asyncio.start_server(
            lambda r, w: serve_connection(site.respond, r, w), host="0.0.0.0", port=0, backlog=4096, reuse_address=True
        )
        site.port = server.sockets[0].getsockname()[1]
        site.render()
        report.send(site.port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@contextmanager
def feed_server(feeds: int, items: int, base: datetime) -> Iterator[int]:
    """Run serve_feeds in a child process; yield its port."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=serve_feeds, args=(theirs, feeds, items, base), daemon=True)
    process.start()
    try:
        if not ours.poll(120):
            raise BenchError("the feed server did not start within 120 s")
        yield int(ours.recv())
    finally:
        process.terminate()
        process.join(10)


def control(port: int, path: str) -> Any:
    """Ask the feed server for its counters or a new feed generation."""
    connection = http.client.HTTPConnection(CONTROL_HOST, port, timeout=120)
    try:
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


# --- The phases ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseRun:
    """One timed pass."""

    phase: str
    seconds: float
    requests: int
    client_cpu: float  # this process, database threads included (PostgreSQL's own work is not)
    server_cpu: float  # the feed server process


def feed_configs(feeds: int, port: int) -> list[FeedConfig]:
    """feeds.yaml for the simulated outlets."""
    # Validated from the mapping feeds.yaml would give; the validator reads durations only as text like 15m.
    return [
        FeedConfig.model_validate({"name": f"bench-{index:05d}", "url": feed_url(index, port), "interval": "15m"})
        for index in range(feeds)
    ]


def feed_index(name: str) -> int:
    """The outlet number in a feed name such as bench-00042."""
    return int(name.removeprefix("bench-"))


def seed(database: Database, *, configs: Sequence[FeedConfig], port: int, items: int, base: datetime) -> None:
    """Store every feed's items and first-generation ETag, as a completed first poll would have."""
    now = datetime.now(UTC)
    with database.session() as session:
        repository.sync_sources(session, feeds=configs, now=now)
    with database.session() as session:
        refs = repository.due_feeds(session, now=now, include_all=True)
    for ref in refs:
        index = feed_index(ref.name)
        with database.session() as session:
            for item in range(items):
                link = item_link(index, item, port)
                canonical = canonical_url(link)
                if canonical is None:
                    raise BenchError(f"canonical_url refused the item link {link}")
                summary = html_to_text(item_summary_html(index, item))
                draft = ArticleDraft(
                    source_id=ref.id,
                    guid=link,
                    url=link,
                    canonical_url=canonical,
                    title=item_title(index, item),
                    text=summary,
                    summary=summary,
                    author=None,
                    published_at=published_at(base, item),
                    fetched_at=now,
                    language="ru" if index % 2 else "en",
                    extraction=Extraction.FEED_SUMMARY,
                    # Indexed, with nothing to match: otherwise the first pass would index 30,000 articles
                    # (the rebuild of a missing story index) and time that instead of polling.
                    features=StoryFeatures(vector={}),
                )
                if repository.add_article(session, draft=draft)[1] is None:
                    raise BenchError(f"seeding stored {link} twice")
            repository.record_fetch(
                session,
                feed=ref,
                result=FetchResult(ref.url, FetchOutcome.OK, status=200, etag=feed_etag(index, 1)),
                started_at=now,
                new_items=items,
                next_poll_at=now + ref.interval,
            )


@dataclass
class Bench:
    """The database, the feeds and the server of one run, and the state every pass must leave behind."""

    database: Database
    configs: list[FeedConfig]
    extractor: Extractor
    tagger: Tagger
    port: int
    items: int
    profile_dir: Path | None = None
    fetch_logs: int = 0  # rows fetch_log must hold

    async def bare(self, phase: str, *, expect: int) -> PhaseRun:
        """The baseline: each feed's conditional GET from a bare client, same concurrency, no database."""
        targets = await asyncio.to_thread(self.stored_validators)
        limits = FetchLimits()
        slots = asyncio.Semaphore(FEED_CONCURRENCY)
        statuses: Counter[int] = Counter()

        async def run() -> None:
            async with httpx.AsyncClient(
                headers={"User-Agent": DEFAULT_USER_AGENT, "Accept-Encoding": "gzip, deflate"},
                limits=httpx.Limits(
                    max_connections=limits.max_connections, max_keepalive_connections=limits.max_connections
                ),
                timeout=httpx.Timeout(limits.read_timeout, connect=limits.connect_timeout),
            ) as client:

                async def one(url: str, etag: str) -> None:
                    async with slots:
                        response = await client.get(url, headers={"Accept": FEED_ACCEPT, "If-None-Match": etag})
                        statuses[response.status_code] += 1

                await asyncio.gather(*(one(url, etag) for url, etag in targets))

        result = await self._timed(phase, run, expect=expect)
        if statuses != Counter({expect: len(self.configs)}):
            raise BenchError(f"{phase}: expected {len(self.configs)} x HTTP {expect}, got {dict(statuses)}")
        return result

    async def poll(self, phase: str, *, expect: FetchOutcome) -> PhaseRun:
        """One `monitor poll --all` pass through the real pipeline, with the default politeness limits."""
        summaries: list[FeedSummary] = []

        async def run() -> None:
            async with Fetcher(policy=AddressPolicy(allow_private=True), limits=FetchLimits()) as fetcher:
                summaries.extend(
                    await poll_feeds(
                        self.database,
                        feeds=self.configs,
                        fetcher=fetcher,
                        extractor=self.extractor,
                        tagger=self.tagger,
                        include_all=True,
                    )
                )

        result = await self._timed(phase, run, expect=304 if expect is FetchOutcome.NOT_MODIFIED else 200)
        self.fetch_logs += len(self.configs)
        self.check_summaries(phase, summaries, expect=expect)
        return result

    async def _timed(self, phase: str, run: Callable[[], Awaitable[None]], *, expect: int) -> PhaseRun:
        """Time run(); the server's counters must show exactly one feed request per feed and nothing else."""
        before = await asyncio.to_thread(control, self.port, "/_bench/stats?reset")
        # Garbage left by the previous phase must not be collected on this one's clock.
        gc.collect()
        wanted_profile = self.profile_dir / f"{phase}.prof" if self.profile_dir and phase.startswith("poll") else None
        profiler = cProfile.Profile() if wanted_profile and not wanted_profile.exists() else None
        started, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        await run()
        if profiler:
            profiler.disable()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        after = await asyncio.to_thread(control, self.port, "/_bench/stats?reset")
        if profiler and wanted_profile:
            profiler.dump_stats(wanted_profile)
        counts = {name: count for name, count in after["counts"].items() if count}
        wanted = {f"feed-{expect}": len(self.configs)}
        if counts != wanted:
            raise BenchError(f"{phase}: the server saw {counts}, expected {wanted} (pages, robots.txt, retries?)")
        return PhaseRun(phase, seconds, sum(counts.values()), cpu, float(after["cpu"]) - float(before["cpu"]))

    def stored_validators(self) -> list[tuple[str, str]]:
        """Each feed's URL and stored ETag: what a conditional GET sends."""
        query = sa.select(Source.url, FetchState.etag).join(FetchState, FetchState.source_id == Source.id)
        with self.database.session() as session:
            rows = session.execute(query.order_by(Source.name)).all()
        validators = [(url, etag) for url, etag in rows if etag is not None]
        if len(validators) != len(self.configs):
            raise BenchError(f"{len(self.configs) - len(validators)} feeds have no stored ETag")
        return validators

    def check_summaries(self, phase: str, summaries: Sequence[FeedSummary], *, expect: FetchOutcome) -> None:
        """Every feed ended as expected; a 200 pass found every item already stored."""
        if len(summaries) != len(self.configs):
            raise BenchError(f"{phase}: {len(summaries)} feeds polled, expected {len(self.configs)}")
        wrong = [s for s in summaries if s.outcome is not expect]
        if wrong:
            raise BenchError(f"{phase}: {len(wrong)} feeds ended {wrong[0].outcome.value}: {wrong[0]}")
        if expect is FetchOutcome.OK:
            odd = [s for s in summaries if (s.new, s.skipped, s.failed) != (0, self.items, 0)]
            if odd:
                raise BenchError(f"{phase}: {len(odd)} feeds did not skip all {self.items} stored items: {odd[0]}")

    def check_state(self, phase: str, *, outcome: FetchOutcome, generation: int) -> None:
        """Nothing stored twice, every feed's last outcome and ETag as expected, one log row per fetch."""
        with self.database.session() as session:
            articles = session.scalar(sa.select(sa.func.count()).select_from(Article))
            logs = session.scalar(sa.select(sa.func.count()).select_from(FetchLog))
            states = session.execute(
                sa.select(Source.name, FetchState.last_outcome, FetchState.etag, FetchState.consecutive_failures).join(
                    FetchState, FetchState.source_id == Source.id
                )
            ).all()
        if articles != len(self.configs) * self.items:
            raise BenchError(f"after {phase}: {articles} articles stored, expected {len(self.configs) * self.items}")
        if logs != self.fetch_logs:
            raise BenchError(f"after {phase}: {logs} fetch_log rows, expected {self.fetch_logs}")
        for name, last_outcome, etag, failures in states:
            wanted = (outcome.value, feed_etag(feed_index(name), generation), 0)
            if (last_outcome, etag, failures) != wanted:
                raise BenchError(f"after {phase}: feed {name} has {(last_outcome, etag, failures)}, expected {wanted}")


async def run_rounds(bench: Bench, rounds: int) -> list[PhaseRun]:
    """Baseline and pipeline alternate, so drift on the machine affects both alike."""
    runs: list[PhaseRun] = []
    generation = 1
    for _ in range(rounds):
        runs.append(await bench.bare("bare-304", expect=304))
        runs.append(await bench.poll("poll-304", expect=FetchOutcome.NOT_MODIFIED))
        await asyncio.to_thread(bench.check_state, "poll-304", outcome=FetchOutcome.NOT_MODIFIED, generation=1)
    for _ in range(rounds):
        # Same items, new ETag: the stored one no longer matches, so every feed answers 200 in full.
        generation = int(await asyncio.to_thread(control, bench.port, "/_bench/next-generation"))
        runs.append(await bench.bare("bare-200", expect=200))
        runs.append(await bench.poll("poll-200", expect=FetchOutcome.OK))
        await asyncio.to_thread(bench.check_state, "poll-200", outcome=FetchOutcome.OK, generation=generation)
    return runs


# --- Set-up and report --------------------------------------------------------------------------------------


@contextmanager
def database_url(args: argparse.Namespace, workdir: Path) -> Iterator[tuple[str, str]]:
    """(backend label, URL): the given database, a temporary PostgreSQL database, or a SQLite file."""
    if args.database_url:
        yield "given database", args.database_url
        return
    if not args.postgres:
        yield "SQLite (WAL file)", f"sqlite:///{workdir / 'monitor.db'}"
        return
    admin = sa.create_engine(args.postgres_admin_url, isolation_level="AUTOCOMMIT")
    name = f"monitor_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            version = connection.scalar(sa.text("show server_version"))
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield f"PostgreSQL {version}", admin.url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def open_empty(url: str) -> Database:
    """Open and migrate url; refuse a database that already holds sources (the bench would disable them)."""
    database = open_database(url, migrate=False)
    upgrade(database)
    with database.session() as session:
        if session.scalar(sa.select(sa.func.count()).select_from(Source)):
            database.dispose()
            raise BenchError(f"{database.display_url} already has sources; give an empty database")
    return database


def report(runs: Sequence[PhaseRun], *, rounds: int, feeds: int) -> tuple[str, list[str]]:
    """A Markdown table of medians over the rounds, and the targets missed."""
    by_phase: dict[str, list[PhaseRun]] = {}
    for run in runs:
        by_phase.setdefault(run.phase, []).append(run)
    median = {phase: statistics.median(r.seconds for r in group) for phase, group in by_phase.items()}
    lines = [
        f"| phase | median s ({rounds} passes) | fastest | slowest | requests | requests/s | × baseline "
        "| client CPU s | server CPU s | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    missed = []
    for phase, group in by_phase.items():
        seconds, slowest = median[phase], max(r.seconds for r in group)
        requests = group[0].requests
        baseline = BASELINE_OF.get(phase)
        ratio = f"{seconds / median[baseline]:.2f}" if baseline in median else "1 (baseline)"
        target = TARGET_SECONDS[phase] * feeds / TARGET_FEEDS if phase in TARGET_SECONDS else None
        verdict = ""
        if target is not None:
            met = slowest < target
            verdict = f"< {target:g} s: {'met' if met else 'MISSED'}"
            if not met:
                missed.append(f"{phase} took {slowest:.2f} s, target {target:g} s")
        fastest = min(r.seconds for r in group)
        cpu = statistics.median(r.client_cpu for r in group), statistics.median(r.server_cpu for r in group)
        lines.append(
            f"| {phase} | {seconds:.2f} | {fastest:.2f} | {slowest:.2f} | {requests} | {requests / seconds:.0f} "
            f"| {ratio} | {cpu[0]:.2f} | {cpu[1]:.2f} | {verdict} |"
        )
    return "\n".join(lines), missed


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=(
            "Time full poll passes over locally served feeds that all answer 304, then all answer 200 with "
            "items already stored, against a bare-httpx baseline measured in the same run. Exits 1 when a "
            "target (304 pass < 10 s, 200 pass < 60 s, per 1,000 feeds) is missed, 2 when the run finds a "
            "correctness problem."
        ),
        epilog="example: .venv/bin/python bench/bench_poll.py --feeds 1000 --postgres",
    )
    parser.add_argument("--feeds", type=int, default=1000, help="number of feeds, each on its own host (default 1000)")
    parser.add_argument("--items", type=int, default=30, help="items per feed (default 30)")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes per phase; the median is reported")
    parser.add_argument("--postgres", action="store_true", help="use a temporary PostgreSQL database, then drop it")
    parser.add_argument(
        "--postgres-admin-url",
        default=POSTGRES_ADMIN_URL,
        help=f"server where --postgres creates its database (default {POSTGRES_ADMIN_URL})",
    )
    parser.add_argument("--database-url", help="use this empty database instead (kept afterwards)")
    parser.add_argument(
        "--log-level", default="INFO", help="level of the pipeline's log, written to a file as `monitor run` does"
    )
    parser.add_argument(
        "--profile", type=Path, help="write cProfile stats of the first pass of each poll phase here (slows that pass)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the working folder (SQLite file, poll.log)")
    add_json_option(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.feeds <= HOSTS_PER_OCTET * 256:
        parser.error(f"--feeds must be between 1 and {HOSTS_PER_OCTET * 256}")
    if args.items < 1 or args.rounds < 1:
        parser.error("--items and --rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its table; the exit status says whether the targets were met."""
    args = parse_args(argv)
    revision = source_revision()  # before src/ can change under a run that lasts minutes
    workdir = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    logging.basicConfig(level=args.log_level.upper(), filename=workdir / "poll.log", format=LOG_FORMAT, force=True)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    base = datetime.now(UTC).replace(microsecond=0)
    try:
        with feed_server(args.feeds, args.items, base) as port, database_url(args, workdir) as (backend, url):
            database = open_empty(url)
            try:
                configs = feed_configs(args.feeds, port)
                started = time.perf_counter()
                seed(database, configs=configs, port=port, items=args.items, base=base)
                seeded = time.perf_counter() - started
                sample = render_feed(1, port=port, items=args.items, generation=1, base=base)
                print(
                    f"{backend}; {args.feeds} feeds on {args.feeds} loopback hosts, {args.items} items each "
                    f"({len(sample) / 1024:.1f} KiB, {len(gzip.compress(sample)) / 1024:.1f} KiB gzipped); "
                    f"seeded {args.feeds * args.items} articles in {seeded:.1f} s; code at {revision}",
                    flush=True,
                )
                with Extractor() as extractor:
                    bench = Bench(
                        database,
                        configs,
                        extractor,
                        # As `monitor poll` and `monitor run` do: the packaged watchlist when config has none.
                        Tagger(load_tags(workdir)),
                        port=port,
                        items=args.items,
                        profile_dir=args.profile,
                        fetch_logs=args.feeds,  # the seed's record_fetch
                    )
                    runs = asyncio.run(run_rounds(bench, args.rounds))
            finally:
                database.dispose()
    except (BenchError, MonitorError, sa.exc.SQLAlchemyError) as exc:
        print(f"FAILED: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return write_result(args.json, benchmark="poll", status=2, revision=revision, error=str(exc).strip())
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    table, missed = report(runs, rounds=args.rounds, feeds=args.feeds)
    print(table)
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
        "correctness checked: one request per feed, no page fetched, nothing stored twice, outcomes and ETags"
    )
    for problem in missed:
        print(f"TARGET MISSED: {problem}", file=sys.stderr)
    return write_result(
        args.json,
        benchmark="poll",
        status=1 if missed else 0,
        revision=revision,
        figures=headline_figures(runs, backend=backend_name(args), feeds=args.feeds),
        memory=peak_rss(children=True),
        notes=missed,
    )


def backend_name(args: argparse.Namespace) -> str:
    """sqlite or postgresql: the database the run polled into."""
    if args.database_url:
        return sa.make_url(args.database_url).get_backend_name()
    return "postgresql" if args.postgres else "sqlite"


def headline_figures(runs: Sequence[PhaseRun], *, backend: str, feeds: int) -> list[Figure]:
    """Each poll phase's median against its bare-httpx baseline; the target is judged on the slowest pass,
    as report() does."""
    seconds: dict[str, list[float]] = {}
    for run in runs:
        seconds.setdefault(run.phase, []).append(run.seconds)
    figures = []
    for phase, baseline_phase in BASELINE_OF.items():
        if phase not in seconds:
            continue
        median, base = statistics.median(seconds[phase]), statistics.median(seconds[baseline_phase])
        bound = TARGET_SECONDS[phase] * feeds / TARGET_FEEDS
        slowest = max(seconds[phase])
        figures.append(
            Figure(
                name=f"{phase} pass, {feeds} feeds",
                backend=backend,
                value=median,
                unit="s",
                statistic=f"median of {len(seconds[phase])} passes",
                target=Target(f"slowest pass < {bound:g} s", bound, "s", slowest < bound, observed=slowest),
                baseline=base,
                baseline_name=f"{baseline_phase}: bare httpx, no database",
                ratio=median / base,
            )
        )
    return figures


if __name__ == "__main__":
    sys.exit(main())
