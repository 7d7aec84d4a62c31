"""Benchmark ingest: a full poll of local feeds whose items link to real article pages, against a plain
sequential trafilatura loop over the same page bodies (issue 9, point 3).

    cd /work/main && .venv/bin/python bench/bench_ingest.py [--runs 3] [--copies 10] [--host-delay 1.0]

The 120 real pages of /work/shared/corpus/pages/ are served `--copies` times each (1,200 pages by default)
under different URLs, through RSS feeds of `--items` items, every feed on its own loopback host
(127.0.x.y), by an asyncio HTTP/1.1 server in a separate process. Each run polls them all into a fresh
SQLite database with `poll_feeds(..., include_all=True)`, what `monitor poll --all` does (its own Extractor,
the packaged watchlist as tagger, the fetcher's politeness limits), then times a plain sequential loop of
`trafilatura.extract` over the same 1,200 bodies in a separate process (the baseline). Each copy of a page
gets its own headline, so copies are stored as articles of their own, not linked as copies of the first.

Target: the poll's pages/s at least 1.7x the baseline's. Exit status: 0 when the target is met (medians),
1 when it is missed, 2 when a correctness check fails (fewer than 95 % of the pages stored as articles,
anything stored or fetched twice, a feed that failed).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import json
import logging
import math
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import sqlalchemy as sa
from bench_poll import HOSTS_PER_OCTET, LOG_FORMAT, feed_host, open_empty
from benchkit import Figure, Target, add_json_option, serve_connection, source_revision, write_result

from monitor.errors import MonitorError
from monitor.model import FeedSummary, FetchOutcome
from monitor.pipeline.extract import Extractor
from monitor.pipeline.fetch import Fetcher, FetchLimits
from monitor.pipeline.guard import AddressPolicy
from monitor.pipeline.refresh import poll_feeds
from monitor.pipeline.tag import Tagger
from monitor.settings import FeedConfig, load_tags
from monitor.store.schema import Article, ArticleCopy

TARGET_RATIO = 1.7
MIN_STORED = 0.95
DEFAULT_PAGES_DIR = Path("/work/shared/corpus/pages")
CONTROL_HOST = "127.0.0.1"
ROBOTS = b"User-agent: *\nAllow: /\n"
# What extract.extract_article passes to trafilatura (bare_extraction on a parsed tree) for a feed item
# without a date: the page's whole metadata pass. Items with a date, as here, skip that pass and have a
# missing title or author read on its own; the loop still pays for the whole pass, as the baseline always has.
TRAFILATURA_OPTIONS: dict[str, Any] = {"with_metadata": True, "include_comments": False, "favor_precision": True}


class BenchError(Exception):
    """The run did not do what a correct poll must do; its figures mean nothing."""


# --- The simulated outlets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Which page body each item of each feed serves: page g is file g % files, item g % items of feed g // items."""

    files: int
    copies: int
    items: int
    authors: bool = False  # items name their author (dc:creator): the pipeline then skips the page's metadata

    @property
    def pages(self) -> int:
        return self.files * self.copies

    @property
    def feeds(self) -> int:
        return math.ceil(self.pages / self.items)

    def items_of(self, feed: int) -> range:
        return range(min(self.items, self.pages - feed * self.items))

    def file_of(self, feed: int, item: int) -> int:
        return (feed * self.items + item) % self.files


def page_link(feed: int, item: int, port: int) -> str:
    return f"http://{feed_host(feed)}:{port}/news/{feed}/{item}.html"


def headline(feed: int, item: int) -> str:
    # One word of its own per page: copies of a page share no headline word, so dedupe stores each one.
    return f"Z{feed:03d}x{item:03d}"


def render_feed(layout: Layout, feed: int, port: int, base: datetime) -> bytes:
    """An RSS 2.0 feed: title, link to the page on the feed's host, permalink GUID, date, short description."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>',
        f"<title>Ingest outlet {feed}</title><link>http://{feed_host(feed)}:{port}/</link>",
        f"<description>Outlet {feed} of the ingest benchmark</description>",
    ]
    for item in layout.items_of(feed):
        link = page_link(feed, item, port)
        when = format_datetime(base - timedelta(minutes=7 * item))
        parts.append(
            f"<item><title>{escape(headline(feed, item))}</title><link>{link}</link>"
            f'<guid isPermaLink="true">{link}</guid><pubDate>{when}</pubDate>'
            f"<description>{escape(headline(feed, item))}: short summary.</description>"
            + (f"<dc:creator>Reporter {item % 7}</dc:creator>" if layout.authors else "")
            + "</item>"
        )
    parts.append("</channel></rss>\n")
    return "".join(parts).encode("utf-8")


def _response(status: int, content_type: str, body: bytes) -> bytes:
    reason = {200: "OK", 404: "Not Found"}[status]
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode("latin-1") + body


class Site:
    """Every answer, rendered ahead; counts what was asked for."""

    def __init__(self, layout: Layout, bodies: list[bytes], port: int, base: datetime) -> None:
        self.layout = layout
        self.pages = [_response(200, "text/html", body) for body in bodies]  # charset left to the bytes
        self.feeds = [
            _response(200, "application/rss+xml; charset=utf-8", render_feed(layout, feed, port, base))
            for feed in range(layout.feeds)
        ]
        self.robots = _response(200, "text/plain", ROBOTS)
        self.counts: Counter[str] = Counter()
        self.page_hits: Counter[str] = Counter()

    def respond(self, target: str, headers: dict[str, str]) -> bytes:
        path, _, query = target.partition("?")
        if path == "/robots.txt":
            self.counts["robots"] += 1
            return self.robots
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "feeds" and parts[1].removesuffix(".xml").isdigit():
            feed = int(parts[1].removesuffix(".xml"))
            if feed < self.layout.feeds:
                self.counts["feed"] += 1
                return self.feeds[feed]
        if len(parts) == 3 and parts[0] == "news" and parts[1].isdigit() and parts[2].removesuffix(".html").isdigit():
            feed, item = int(parts[1]), int(parts[2].removesuffix(".html"))
            if feed < self.layout.feeds and item in self.layout.items_of(feed):
                self.counts["page"] += 1
                self.page_hits[path] += 1
                return self.pages[self.layout.file_of(feed, item)]
        if path == "/_bench/stats":
            stats = {
                "counts": dict(self.counts),
                "pages_twice": sum(1 for hits in self.page_hits.values() if hits > 1),
                "cpu": time.process_time(),
            }
            if query == "reset":
                self.counts.clear()
                self.page_hits.clear()
            return _response(200, "application/json", json.dumps(stats).encode())
        self.counts["other"] += 1
        return _response(404, "text/plain", b"not found")


def serve(report: Connection, layout: Layout, pages_dir: str, base: datetime) -> None:
    """Server process: bind 0.0.0.0 on a free port, send the port back, serve until killed."""

    async def main() -> None:
        bodies = [path.read_bytes() for path in page_files(Path(pages_dir))]
        holder: list[Site] = []
        server = await asyncio.start_server(
            lambda r, w: serve_connection(holder[0].respond, r, w),
            host="0.0.0.0",
            port=0,
            backlog=4096,
            reuse_address=True,
        )
        port = server.sockets[0].getsockname()[1]
        holder.append(Site(layout, bodies, port, base))
        report.send(port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@contextmanager
def page_server(layout: Layout, pages_dir: Path, base: datetime) -> Iterator[int]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=serve, args=(theirs, layout, str(pages_dir), base), daemon=True)
    process.start()
    try:
        if not ours.poll(120):
            raise BenchError("the page server did not start within 120 s")
        yield int(ours.recv())
    finally:
        process.terminate()
        process.join(10)


def control(port: int) -> dict[str, Any]:
    connection = http.client.HTTPConnection(CONTROL_HOST, port, timeout=120)
    try:
        connection.request("GET", "/_bench/stats?reset")
        result: dict[str, Any] = json.loads(connection.getresponse().read())
        return result
    finally:
        connection.close()


def page_files(pages_dir: Path) -> list[Path]:
    return sorted(pages_dir.glob("*.html"))


# --- Memory -------------------------------------------------------------------------------------------------


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat (fields 14 and 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def descendants(root: int) -> set[int]:
    """Every process below root (pebble's workers hang under the forkserver, itself a child of root)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier and pid not in found}
        found |= frontier
    return found


class MemorySampler:
    """Sample the main process's VmRSS and every worker's VmHWM (psutil is not installed) every 0.5 s.

    It runs inside the process under test, so it must cost next to nothing: finding the workers means
    reading every process's stat in /proc (this kernel has no /proc/PID/task/TID/children), which is done
    every 5 s only; a worker's VmHWM is its high-water mark, so reading it now and then loses nothing but
    the last moments of a worker replaced in between."""

    def __init__(self, exclude: set[int]) -> None:
        self.exclude = exclude
        self.main_kib = 0
        self.worker_hwm: dict[int, int] = {}
        self.worker_cpu: dict[int, float] = {}  # CPU seconds each worker had used when last seen
        self._workers: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self, *, find_workers: bool) -> None:
        self.main_kib = max(self.main_kib, _status_kib(os.getpid(), "VmRSS"))
        if find_workers:
            self._workers = descendants(os.getpid()) - self.exclude
        for pid in self._workers:
            hwm = _status_kib(pid, "VmHWM")
            if hwm:
                self.worker_hwm[pid] = max(self.worker_hwm.get(pid, 0), hwm)
                self.worker_cpu[pid] = max(self.worker_cpu.get(pid, 0.0), _cpu_seconds(pid))

    def _loop(self) -> None:
        samples = 0
        while not self._stop.wait(0.5):
            self._sample(find_workers=samples % 10 == 0)
            samples += 1

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(find_workers=True)


# --- The runs -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    poll_seconds: float
    baseline_seconds: float
    same_work_seconds: float  # the poll's own extraction calls, one after the other
    main_mb: float
    worker_mb: float  # the largest worker (not the forkserver, which stays small)
    workers: int
    page_articles: int


def feed_configs(layout: Layout, port: int) -> list[FeedConfig]:
    return [
        FeedConfig.model_validate(
            {"name": f"ingest-{feed:04d}", "url": f"http://{feed_host(feed)}:{port}/feeds/{feed}.xml", "interval": "1h"}
        )
        for feed in range(layout.feeds)
    ]


def poll_once(
    url: str, *, layout: Layout, port: int, workdir: Path, host_delay: float, server_pid: set[int]
) -> tuple[float, MemorySampler, int]:
    """One `monitor poll --all` pass into a fresh database; returns its seconds, memory and page articles."""
    database = open_empty(url)
    try:
        configs = feed_configs(layout, port)
        tagger = Tagger(load_tags(workdir))  # as `monitor poll` does: the packaged watchlist
        summaries: list[FeedSummary] = []
        server_cpu = control(port)["cpu"]
        gc.collect()
        with MemorySampler(exclude=server_pid) as memory, Extractor() as extractor:

            async def run() -> None:
                limits = FetchLimits(host_delay=host_delay)
                async with Fetcher(policy=AddressPolicy(allow_private=True), limits=limits) as fetcher:
                    summaries.extend(
                        await poll_feeds(
                            database,
                            feeds=configs,
                            fetcher=fetcher,
                            extractor=extractor,
                            tagger=tagger,
                            include_all=True,
                        )
                    )

            started, cpu = time.perf_counter(), time.process_time()
            asyncio.run(run())
            seconds = time.perf_counter() - started
            memory._sample(find_workers=True)  # the workers' high-water marks, before the pool closes
            main_cpu = time.process_time() - cpu
        stats = control(port)
        print(
            f"  CPU during the poll: main process {main_cpu:.1f} s, extraction workers "
            f"{sum(memory.worker_cpu.values()):.1f} s (the pool starts with the poll), "
            f"page server {stats['cpu'] - server_cpu:.1f} s",
            flush=True,
        )
        return seconds, memory, check(database, layout, summaries, stats)
    finally:
        database.dispose()


def check(database: Any, layout: Layout, summaries: Sequence[FeedSummary], stats: dict[str, Any]) -> int:
    """Every feed OK, every page fetched once, >= 95 % stored as articles, nothing stored twice."""
    failed = [s for s in summaries if s.outcome is not FetchOutcome.OK]
    if len(summaries) != layout.feeds or failed:
        raise BenchError(f"{len(summaries)} feeds polled, {len(failed)} failed: {failed[:1]}")
    counts = stats["counts"]
    if counts.get("page", 0) != layout.pages or stats["pages_twice"] or counts.get("other"):
        raise BenchError(f"the server saw {counts} ({stats['pages_twice']} pages twice), expected {layout.pages} pages")
    with database.session() as session:
        articles = session.scalar(sa.select(sa.func.count()).select_from(Article)) or 0
        urls = session.scalar(sa.select(sa.func.count(sa.distinct(Article.canonical_url)))) or 0
        copies = session.scalar(sa.select(sa.func.count()).select_from(ArticleCopy)) or 0
        from_page = (
            session.scalar(sa.select(sa.func.count()).select_from(Article).where(Article.extraction == "page")) or 0
        )
    if articles + copies > layout.pages or urls != articles:
        raise BenchError(f"duplicates: {articles} articles ({urls} distinct URLs) and {copies} copies")
    if articles < MIN_STORED * layout.pages:
        raise BenchError(f"only {articles} of {layout.pages} pages stored as articles ({copies} as copies)")
    new = sum(s.new for s in summaries)
    if new != articles:
        raise BenchError(f"feeds report {new} new articles, the database holds {articles}")
    return from_page


def baseline_worker(report: Connection, pages_dir: str, copies: int, same_work: bool, authors: bool) -> None:
    """A sequential loop, in a fresh process, over every body: trafilatura.extract (the baseline), or with
    same_work the very extraction calls the poll's workers make (decoding, then trafilatura without the
    metadata pass, reading only the author when the feed items lack it)."""
    import trafilatura

    from monitor.pipeline.encoding import decode_html
    from monitor.pipeline.extract import ExtractionError, extract_article

    bodies = [path.read_bytes() for path in page_files(Path(pages_dir))]
    urls = [f"http://127.0.0.1/news/{copy}/{index}.html" for copy in range(copies) for index in range(len(bodies))]
    work = [(bodies[index % len(bodies)], url) for index, url in enumerate(urls)]
    fields = frozenset() if authors else frozenset({"author"})
    gc.collect()
    started = time.perf_counter()
    texts = 0
    for body, url in work:
        if not same_work:
            texts += bool(trafilatura.extract(body, url=url, **TRAFILATURA_OPTIONS))
            continue
        with suppress(ExtractionError):
            texts += bool(extract_article(decode_html(body, "text/html")[0], url, fields=fields).text)
    report.send((time.perf_counter() - started, texts))


def baseline(pages_dir: Path, copies: int, *, same_work: bool = False, authors: bool = False) -> tuple[float, int]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=baseline_worker, args=(theirs, str(pages_dir), copies, same_work, authors))
    process.start()
    try:
        if not ours.poll(3600):
            raise BenchError("the baseline did not finish within an hour")
        seconds, texts = ours.recv()
        return float(seconds), int(texts)
    finally:
        process.join(30)


# --- Report -------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Time a full poll (`monitor poll --all`) of local feeds linking to the corpus pages against a "
            "sequential trafilatura loop over the same bodies. Exits 0 when the poll reaches 1.7x the loop's "
            "pages/s, 1 when not, 2 when a correctness check fails."
        ),
        epilog="example: .venv/bin/python bench/bench_ingest.py --runs 3 --copies 10 --host-delay 1.0",
    )
    parser.add_argument("--runs", type=int, default=3, help="poll + baseline runs; medians reported (default 3)")
    parser.add_argument("--copies", type=int, default=10, help="times each page is served (default 10)")
    parser.add_argument("--pages-dir", type=Path, default=DEFAULT_PAGES_DIR, help=f"default {DEFAULT_PAGES_DIR}")
    parser.add_argument("--items", type=int, default=25, help="items per feed; one host per feed (default 25)")
    parser.add_argument(
        "--host-delay",
        type=float,
        default=FetchLimits().host_delay,
        help="seconds between request starts per host, as MONITOR_HOST_DELAY sets it (default: the fetcher's)",
    )
    parser.add_argument(
        "--authors",
        action="store_true",
        help="feed items name their author, as many outlets' feeds do: no page metadata is then read",
    )
    parser.add_argument("--keep", action="store_true", help="keep the working folder (databases, poll.log)")
    add_json_option(parser)
    args = parser.parse_args(argv)
    if args.runs < 1 or args.copies < 1 or args.items < 1:
        parser.error("--runs, --copies and --items must be at least 1")
    if not page_files(args.pages_dir):
        parser.error(f"no *.html in {args.pages_dir}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    revision = source_revision()
    workdir = Path(tempfile.mkdtemp(prefix="monitor-bench-ingest-"))
    logging.basicConfig(level=logging.INFO, filename=workdir / "poll.log", format=LOG_FORMAT, force=True)
    for noisy in ("httpx", "httpcore", "trafilatura", "htmldate", "courlan"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    layout = Layout(files=len(page_files(args.pages_dir)), copies=args.copies, items=args.items, authors=args.authors)
    if layout.feeds > HOSTS_PER_OCTET * 256:
        print("too many feeds for the loopback hosts", file=sys.stderr)
        return write_result(args.json, benchmark="ingest", status=2, revision=revision, error="too many feeds")
    base = datetime.now(UTC).replace(microsecond=0)
    runs: list[Run] = []
    try:
        with page_server(layout, args.pages_dir, base) as port:
            server = descendants(os.getpid())
            print(
                f"{layout.pages} pages ({layout.files} files x {layout.copies}) in {layout.feeds} feeds of "
                f"{layout.items} items{' with authors' if layout.authors else ''}, one loopback host each; "
                f"host delay {args.host_delay:g} s; "
                f"SQLite file, fresh per run; baseline: trafilatura.extract(bytes, url=..., "
                + ", ".join(f"{k}={v}" for k, v in TRAFILATURA_OPTIONS.items())
                + ") in one process",
                flush=True,
            )
            for number in range(1, args.runs + 1):
                url = f"sqlite:///{workdir / f'run{number}.db'}"
                seconds, memory, from_page = poll_once(
                    url, layout=layout, port=port, workdir=workdir, host_delay=args.host_delay, server_pid=server
                )
                base_seconds, texts = baseline(args.pages_dir, args.copies)
                same_seconds, _ = baseline(args.pages_dir, args.copies, same_work=True, authors=args.authors)
                workers = {pid: kib for pid, kib in memory.worker_hwm.items()}
                # The forkserver only forks: the extraction workers are the biggest children.
                ranked = sorted(workers.values(), reverse=True)[: os.cpu_count() or 1]
                runs.append(
                    Run(
                        seconds,
                        base_seconds,
                        same_seconds,
                        memory.main_kib / 1024,
                        max(ranked, default=0) / 1024,
                        len(ranked),
                        from_page,
                    )
                )
                print(
                    f"run {number}: poll {seconds:.1f} s ({from_page} of {layout.pages} from the page), "
                    f"baseline {base_seconds:.1f} s ({texts} texts), the poll's own extraction calls in a "
                    f"loop {same_seconds:.1f} s",
                    flush=True,
                )
    except (BenchError, MonitorError, sa.exc.SQLAlchemyError) as exc:
        print(f"FAILED: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return write_result(args.json, benchmark="ingest", status=2, revision=revision, error=str(exc).strip())
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    pages = layout.pages
    lines = [
        "| run | pages | poll s | pages/s | baseline s | baseline pages/s | ratio | same-work loop s "
        "| ratio to it | peak RSS main MB | peak RSS worker MB | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for number, run in enumerate(runs, 1):
        ratio = run.baseline_seconds / run.poll_seconds
        lines.append(
            f"| {number} | {pages} | {run.poll_seconds:.1f} | {pages / run.poll_seconds:.1f} | "
            f"{run.baseline_seconds:.1f} | {pages / run.baseline_seconds:.1f} | {ratio:.2f} | "
            f"{run.same_work_seconds:.1f} | {run.same_work_seconds / run.poll_seconds:.2f} | {run.main_mb:.0f} | "
            f"{run.worker_mb:.0f} | |"
        )
    poll_s = statistics.median(r.poll_seconds for r in runs)
    base_s = statistics.median(r.baseline_seconds for r in runs)
    same_s = statistics.median(r.same_work_seconds for r in runs)
    ratio = base_s / poll_s
    met = ratio >= TARGET_RATIO
    lines.append(
        f"| median | {pages} | {poll_s:.1f} | {pages / poll_s:.1f} | {base_s:.1f} | {pages / base_s:.1f} | "
        f"{ratio:.2f} | {same_s:.1f} | {same_s / poll_s:.2f} | {statistics.median(r.main_mb for r in runs):.0f} | "
        f"{statistics.median(r.worker_mb for r in runs):.0f} | >= {TARGET_RATIO}x: {'met' if met else 'MISSED'} |"
    )
    print("\n".join(lines))
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{runs[0].workers} extraction workers, host delay {args.host_delay:g} s; code at {revision}"
    )
    missed = [f"poll at {ratio:.2f}x the sequential loop, target {TARGET_RATIO}x"] if not met else []
    for problem in missed:
        print(f"TARGET MISSED: {problem}", file=sys.stderr)
    same_work = (
        f"the poll's own extraction calls in a sequential loop (decoding, trafilatura without the metadata "
        f"pass{'' if args.authors else ', the author read alone'}): {same_s:.1f} s, "
        f"the poll {same_s / poll_s:.2f}x that"
    )
    figure = Figure(
        name=f"poll of {pages} pages{', items with authors' if args.authors else ''}, host delay {args.host_delay:g} s",
        backend="sqlite",
        value=pages / poll_s,
        unit="pages/s",
        statistic=f"median of {len(runs)} runs",
        target=Target(f">= {TARGET_RATIO:g}x the loop's pages/s", TARGET_RATIO, "x", met),
        baseline=pages / base_s,
        baseline_name="sequential trafilatura.extract loop, one process",
        ratio=ratio,
    )
    peaks = {
        "main": max(r.main_mb for r in runs),
        "children": max(r.worker_mb for r in runs),
        "how": "main: VmRSS sampled every 0.5 s; children: the largest extraction worker's VmHWM; max over runs",
    }
    return write_result(
        args.json,
        benchmark="ingest",
        status=0 if met else 1,
        revision=revision,
        figures=[figure],
        memory=peaks,
        notes=[*missed, same_work],
    )


if __name__ == "__main__":
    sys.exit(main())
