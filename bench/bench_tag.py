"""Tagging throughput on one core: the watchlist automaton against a naive per-alias regex loop.

Run:  .venv/bin/python bench/bench_tag.py [--megabytes 20]
The text stream mixes the English and Russian paragraphs of tests/data/tagging_eval.yaml with neutral
filler, cut into ~3 KB articles. Throughput counts UTF-8 bytes of text tagged per second.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

import yaml
from benchkit import Figure, Target, add_json_option, peak_rss, source_revision, write_result

from monitor.pipeline.tag import Tagger, normalise
from monitor.settings import DEFAULT_TAGS, load_tags

ROOT = Path(__file__).resolve().parents[1]
TARGET_MB_PER_S = 20.0
FILLER = (
    "The ministry said the programme would continue next year, and officials promised further talks. ",
    "Министерство сообщило, что программа продолжится в следующем году, а переговоры возобновятся. ",
)


def build_stream(megabytes: float, seed: int = 7) -> list[str]:
    """Articles of about 3 KB, mixing labelled paragraphs and filler, megabytes of UTF-8 in all."""
    cases = yaml.safe_load((ROOT / "tests/data/tagging_eval.yaml").read_text(encoding="utf-8"))["cases"]
    paragraphs = [c["text"] for c in cases if c["lang"] in ("en", "ru")]
    rng = random.Random(seed)
    articles, total, limit = [], 0, int(megabytes * 1_000_000)
    while total < limit:
        parts = [rng.choice(paragraphs)] + [rng.choice(FILLER) * rng.randint(2, 6) for _ in range(4)]
        parts.insert(rng.randint(0, len(parts)), rng.choice(paragraphs))
        article = "\n".join(parts)
        articles.append(article)
        total += len(article.encode())
    return articles


def naive_patterns() -> list[tuple[str, re.Pattern[str]]]:
    """One compiled regex per alias, as a first implementation would do."""
    patterns = []
    for tag in load_tags(Path("/nonexistent")):
        for table in (tag.aliases, tag.demonyms):
            for aliases in table.values():
                for alias in aliases:
                    stem = re.escape(normalise(alias.rstrip("*")))
                    tail = r"\w*" if alias.endswith("*") else r"(?:'?s)?\b"
                    patterns.append((tag.id, re.compile(rf"\b{stem}{tail}")))
    return patterns


def run_naive(articles: list[str], patterns: list[tuple[str, re.Pattern[str]]]) -> int:
    found = 0
    for article in articles:
        text = normalise(article)
        found += len({tag for tag, pattern in patterns if pattern.search(text)})
    return found


def run_tagger(articles: list[str], tagger: Tagger) -> int:
    return sum(len(tagger.tag(article)) for article in articles)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=20.0, help="size of the text stream (default 20)")
    add_json_option(parser)
    args = parser.parse_args()
    revision = source_revision()
    articles = build_stream(args.megabytes)
    size_mb = sum(len(a.encode()) for a in articles) / 1_000_000
    tagger = Tagger(load_tags(Path("/nonexistent")))
    patterns = naive_patterns()
    print(
        f"stream: {len(articles)} articles, {size_mb:.1f} MB UTF-8; watchlist {DEFAULT_TAGS.name}: "
        f"{len(patterns)} aliases"
    )

    started = time.perf_counter()
    tagged = run_tagger(articles, tagger)
    automaton_s = time.perf_counter() - started
    # The naive loop is slow: time it on a tenth of the stream and scale.
    sample = articles[: max(1, len(articles) // 10)]
    sample_mb = sum(len(a.encode()) for a in sample) / 1_000_000
    started = time.perf_counter()
    run_naive(sample, patterns)
    naive_s = (time.perf_counter() - started) * size_mb / sample_mb

    automaton_rate, naive_rate = size_mb / automaton_s, size_mb / naive_s
    print(f"{'method':<28} {'seconds':>8} {'MB/s':>8} {'ratio':>7}")
    print(f"{'naive per-alias regex loop':<28} {naive_s:>8.2f} {naive_rate:>8.1f} {1.0:>7.1f}")
    print(f"{'watchlist automaton':<28} {automaton_s:>8.2f} {automaton_rate:>8.1f} {automaton_rate / naive_rate:>7.1f}")
    met = automaton_rate >= TARGET_MB_PER_S
    print(f"tags found: {tagged}; target {TARGET_MB_PER_S:.0f} MB/s: {'met' if met else 'MISSED'}")
    figure = Figure(
        name="watchlist automaton",
        backend="none",
        value=automaton_rate,
        unit="MB/s",
        statistic=f"one pass over {size_mb:.1f} MB",
        target=Target(f">= {TARGET_MB_PER_S:g} MB/s", TARGET_MB_PER_S, "MB/s", met),
        baseline=naive_rate,
        baseline_name="naive per-alias regex loop, timed on a tenth and scaled",
        ratio=automaton_rate / naive_rate,
    )
    return write_result(
        args.json,
        benchmark="tag",
        status=0 if met else 1,
        revision=revision,
        figures=[figure],
        memory=peak_rss(children=False),
    )


if __name__ == "__main__":
    sys.exit(main())
