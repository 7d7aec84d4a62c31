"""Benchmark the extraction workers' memory over 10,000 pages (issue 9, point 2).

    cd /work/main && .venv/bin/python bench/bench_worker_memory.py [--pages 10000] [--max-tasks 0,1000]

The 120 real pages of /work/shared/corpus/pages/ are fed, over and over, through the same call the poll
makes for every page (`Extractor.run_page(prepare_in_worker, ...)`: decode, extract, tag with the packaged
watchlist, story vector, search terms) on a pool of one worker per core. Every page reports the resident
memory (VmRSS) of the worker that did it, after doing it. By default workers are never replaced
(`--max-tasks 0`), so each lives through all its pages: if anything piles up between pages (a cache without
bound, a leak in a parser), its memory grows with the pages. `--max-tasks 0,1000` also runs a pool whose
workers are replaced after 1,000 tasks (the service replaces them after MAX_TASKS, as a safety net).

Targets: every worker stays under 400 MB, and memory does not grow with the pages: a worker's median RSS
over its last 120 pages is within 10 % (or 20 MB) of its median over its pages 121-240 (its first 120
pages, as many as the corpus has, warm lazy imports and caches up). A worker that did fewer than 480 pages
is not judged for growth. Exit status 0 met, 1 missed, 2 the run failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchkit import Figure, Target, add_json_option, source_revision, write_result

from monitor.model import ParsedEntry
from monitor.pipeline.extract import MAX_TASKS, ExtractionError, Extractor
from monitor.pipeline.prepare import Enrichment, PageJob, Prepared, Watchlist, prepare_in_worker
from monitor.pipeline.tag import Tagger
from monitor.settings import load_tags

LIMIT_MB = 400.0
GROWTH_SHARE = 0.10
GROWTH_MB = 20.0
DEFAULT_PAGES_DIR = Path("/work/shared/corpus/pages")
IN_FLIGHT = 8  # pages queued at once: enough to keep every worker busy
WINDOW = 120  # pages: a worker's memory is compared over its second and its last WINDOW pages


@dataclass(frozen=True)
class Sample:
    """One page done: by which worker, and that worker's RSS afterwards."""

    pid: int
    rss_mb: float


def prepare_and_measure(job: PageJob, watchlist: Watchlist) -> tuple[Prepared, int, float]:
    """In the worker: the poll's page work, then this worker's pid and resident memory in MB."""
    prepared = prepare_in_worker(job, watchlist)
    return prepared, os.getpid(), _rss_mb()


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run(bodies: Sequence[bytes], *, pages: int, max_tasks: int, watchlist: Watchlist) -> list[Sample]:
    """Feed pages through a fresh pool; the samples in the order the pages finished."""
    now = datetime.now(UTC)
    samples: list[Sample] = []
    queue = iter(range(pages))
    with Extractor(max_tasks=max_tasks) as extractor:

        async def feeder() -> None:
            for number in queue:
                link = f"http://bench.example/{number}"
                entry = ParsedEntry(f"g{number}", link, f"Page {number}", None, None, now)
                job = PageJob(entry, link, 1, None, now, link, bodies[number % len(bodies)], "text/html")
                try:
                    _, pid, rss = await extractor.run_page(prepare_and_measure, job, watchlist)
                except ExtractionError as exc:
                    raise SystemExit(f"page {number} failed: {exc}") from None
                samples.append(Sample(pid, rss))

        await asyncio.gather(*(feeder() for _ in range(IN_FLIGHT)))
    return samples


@dataclass(frozen=True)
class Verdict:
    max_tasks: int
    seconds: float
    workers: int
    peak_mb: float
    worst_growth_mb: float
    worst_growth_share: float
    longest_life: int
    trajectory: list[tuple[int, float]]  # (pages done by the longest-lived worker, its RSS)
    judged: bool  # some worker lived long enough to judge growth

    @property
    def growth(self) -> str:
        if not self.judged:
            return f"not judged: no worker did {4 * WINDOW} pages"
        return f"{self.worst_growth_mb:+.1f} MB ({self.worst_growth_share:+.1%})"

    @property
    def under_limit(self) -> bool:
        return self.peak_mb < LIMIT_MB

    @property
    def flat(self) -> bool:
        return self.worst_growth_mb <= GROWTH_MB or self.worst_growth_share <= GROWTH_SHARE


def judge(samples: Sequence[Sample], *, max_tasks: int, seconds: float) -> Verdict:
    lives: dict[int, list[float]] = defaultdict(list)
    for sample in samples:
        lives[sample.pid].append(sample.rss_mb)
    growth_mb, growth_share, judged = 0.0, 0.0, False
    for rss in lives.values():
        if len(rss) < 4 * WINDOW:
            continue  # too short a life to speak of growth
        early = statistics.median(rss[WINDOW : 2 * WINDOW])
        late = statistics.median(rss[-WINDOW:])
        judged = True
        if late - early > growth_mb:
            growth_mb, growth_share = late - early, (late - early) / early
    longest = max(lives.values(), key=len)
    step = max(1, len(longest) // 10)
    trajectory = [(done, longest[done - 1]) for done in range(step, len(longest) + 1, step)]
    return Verdict(
        max_tasks=max_tasks,
        seconds=seconds,
        workers=len(lives),
        peak_mb=max(sample.rss_mb for sample in samples),
        worst_growth_mb=growth_mb,
        worst_growth_share=growth_share,
        longest_life=len(longest),
        trajectory=trajectory,
        judged=judged,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="example: %(prog)s --pages 2000")
    parser.add_argument("--pages", type=int, default=10_000, help="pages per configuration (default 10,000)")
    parser.add_argument(
        "--max-tasks",
        default="0",
        help=f"configurations, comma separated: tasks per worker before it is replaced, 0 never (default 0: "
        f"the strictest test, one life per worker; the service replaces a worker after {MAX_TASKS})",
    )
    parser.add_argument("--pages-dir", type=Path, default=DEFAULT_PAGES_DIR, help=f"default {DEFAULT_PAGES_DIR}")
    add_json_option(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    revision = source_revision()
    bodies = [path.read_bytes() for path in sorted(args.pages_dir.glob("*.html"))]
    if not bodies:
        print(f"FAILED: no pages in {args.pages_dir}", file=sys.stderr)
        return write_result(args.json, benchmark="worker-memory", status=2, revision=revision, error="no pages")
    watchlist = Enrichment(Tagger(load_tags(Path(tempfile.gettempdir()) / "no-config"))).watchlist
    verdicts = []
    for max_tasks in (int(value) for value in args.max_tasks.split(",")):
        started = time.perf_counter()
        samples = asyncio.run(run(bodies, pages=args.pages, max_tasks=max_tasks, watchlist=watchlist))
        verdicts.append(judge(samples, max_tasks=max_tasks, seconds=time.perf_counter() - started))
        verdict = verdicts[-1]
        print(
            f"max_tasks={max_tasks or 'never'}: {args.pages} pages in {verdict.seconds:.0f} s by {verdict.workers} "
            f"workers; peak RSS {verdict.peak_mb:.0f} MB; worst growth {verdict.growth} "
            f"(a worker's pages {WINDOW + 1}-{2 * WINDOW} against its last {WINDOW})",
            flush=True,
        )
        print(
            "  longest-lived worker (pages done: RSS MB): " + ", ".join(f"{d}: {r:.0f}" for d, r in verdict.trajectory)
        )

    lines = [
        "| workers replaced after | pages | workers used | longest life, pages | peak RSS MB | worst growth "
        "| under 400 MB | flat |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for v in verdicts:
        lines.append(
            f"| {v.max_tasks or 'never'} | {args.pages} | {v.workers} | {v.longest_life} | {v.peak_mb:.0f} | "
            f"{v.growth} | {'yes' if v.under_limit else 'NO'} | "
            f"{'yes' if v.flat else 'NO'} |"
        )
    print("\n".join(lines))
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, code at {revision}")
    missed = [
        f"max_tasks={v.max_tasks or 'never'}: "
        + "; ".join(
            ([f"peak {v.peak_mb:.0f} MB >= {LIMIT_MB:.0f}"] if not v.under_limit else [])
            + ([f"grew {v.worst_growth_mb:+.1f} MB ({v.worst_growth_share:+.1%})"] if not v.flat else [])
        )
        for v in verdicts
        if not (v.under_limit and v.flat)
    ]
    for problem in missed:
        print(f"TARGET MISSED: {problem}", file=sys.stderr)
    figures = [
        Figure(
            name=f"worker RSS over {args.pages} pages",
            backend="never replaced" if not v.max_tasks else f"replaced after {v.max_tasks}",
            value=v.peak_mb,
            unit="MB",
            statistic=f"peak; growth {v.growth} over a worker's life of up to {v.longest_life} pages",
            target=Target(
                f"< {LIMIT_MB:.0f} MB, and flat (growth <= {GROWTH_SHARE:.0%} or {GROWTH_MB:.0f} MB)",
                LIMIT_MB,
                "MB",
                v.under_limit and v.flat,
            ),
        )
        for v in verdicts
    ]
    memory = {
        "main": max(v.peak_mb for v in verdicts),
        "how": "VmRSS of each extraction worker after each page (the figure is a worker's, not this process's)",
    }
    return write_result(
        args.json,
        benchmark="worker-memory",
        status=1 if missed else 0,
        revision=revision,
        figures=figures,
        memory=memory,
        notes=missed,
    )


if __name__ == "__main__":
    sys.exit(main())
