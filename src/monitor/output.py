"""Render articles and poll summaries for the terminal: table, json, jsonl, csv."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.model import ArticleView, FeedSummary

FORMATS = ("table", "json", "jsonl", "csv")
CSV_FIELDS = (
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
)


def article_record(article: ArticleView, *, with_text: bool = False) -> dict[str, Any]:
    """The JSON shape of an article (the contract's fields, plus details for `show`)."""
    record: dict[str, Any] = {
        "id": article.id,
        "url": article.url,
        "canonical_url": article.canonical_url,
        "source": article.source,
        "title": article.title,
        "published_at": _iso(article.published_at),
        "fetched_at": _iso(article.fetched_at),
        "language": article.language,
        "tags": list(article.tags),
        "story_id": article.story_id,
        "also_reported_by": list(article.also_reported_by),
        "snippet": article.snippet,
        "author": article.author,
        "extraction": article.extraction,
    }
    if with_text:
        record["extraction_error"] = article.extraction_error
        record["text"] = article.text
    return record


def render_articles(articles: Sequence[ArticleView], fmt: str) -> str:
    """All articles in one of FORMATS, ending with a newline (empty json list when none)."""
    if fmt == "json":
        return json.dumps([article_record(a) for a in articles], ensure_ascii=False, indent=2) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(article_record(a), ensure_ascii=False) + "\n" for a in articles)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for article in articles:
            record = article_record(article)
            record["tags"] = " ".join(record["tags"])
            record["also_reported_by"] = " ".join(record["also_reported_by"])
            writer.writerow(record)
        return buffer.getvalue()
    return _table(articles)


def render_article(article: ArticleView) -> str:
    """One article for reading in a terminal: header lines, then the text."""
    lines = [
        article.title,
        "",
        f"id:           {article.id}",
        f"source:       {article.source}",
        f"url:          {article.url}",
    ]
    if article.canonical_url != article.url:
        lines.append(f"canonical:    {article.canonical_url}")
    lines += [
        f"published:    {_iso(article.published_at) or 'unknown'}",
        f"fetched:      {_iso(article.fetched_at)}",
        f"language:     {article.language or 'unknown'}",
        f"author:       {article.author or 'unknown'}",
        f"tags:         {', '.join(article.tags) or 'none'}",
        f"story:        {article.story_id if article.story_id is not None else 'none'}",
        f"also in:      {', '.join(article.also_reported_by) or 'no other source'}",
        f"text from:    {_extraction(article)}",
        "",
        article.text or "(no text)",
    ]
    return "\n".join(lines) + "\n"


def render_summaries(summaries: Sequence[FeedSummary]) -> str:
    """The per-feed table printed by `monitor poll`, with a closing total."""
    if not summaries:
        return "no feeds are due; `monitor poll --all` polls every enabled feed now\n"
    width = max(len("feed"), *(len(s.name) for s in summaries))
    lines = [f"{'feed':<{width}}  {'outcome':<12} {'new':>4} {'skipped':>7} {'failed':>6}  note"]
    for s in summaries:
        note = s.error or (f"{s.from_summary} from the feed's summary (page failed)" if s.from_summary else "")
        lines.append(
            f"{s.name:<{width}}  {s.outcome.value:<12} {s.new:>4} {s.skipped:>7} {s.failed:>6}  {note}".rstrip()
        )
    failed = sum(1 for s in summaries if s.outcome.failed)
    new = sum(s.new for s in summaries)
    lines.append(
        f"{len(summaries)} feed{'s' if len(summaries) != 1 else ''} polled, {new} new article{'s' if new != 1 else ''}"
        + (f", {failed} feed{'s' if failed != 1 else ''} failed (recorded)" if failed else "")
    )
    return "\n".join(lines) + "\n"


def _table(articles: Sequence[ArticleView]) -> str:
    if not articles:
        return "no articles match\n"
    columns = shutil.get_terminal_size((120, 24)).columns
    source_width = max(len("source"), *(len(a.source) for a in articles))
    title_width = max(20, columns - (7 + 17 + source_width + 4 + 8))
    lines = [f"{'id':>6}  {'published (UTC)':<16}  {'source':<{source_width}}  {'tags':<8}  title"]
    for a in articles:
        when = (a.published_at or a.fetched_at).strftime("%Y-%m-%d %H:%M")
        tags = ",".join(a.tags)[:8]
        title = a.title if len(a.title) <= title_width else a.title[: title_width - 1] + "…"
        lines.append(f"{a.id:>6}  {when:<16}  {a.source:<{source_width}}  {tags:<8}  {title}")
    return "\n".join(lines) + "\n"


def _extraction(article: ArticleView) -> str:
    if article.extraction == "page":
        return "the article page"
    source = "the feed's summary" if article.extraction == "feed-summary" else "nowhere (title and link only)"
    return f"{source}; page failed: {article.extraction_error}" if article.extraction_error else source


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None
