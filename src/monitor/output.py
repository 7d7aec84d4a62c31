"""Render articles and poll summaries for the terminal: table, json, jsonl, csv."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.model import ArticleView, FeedCheck, FeedHealth, FeedSummary, StoryView, TagMatch
from monitor.store.stats import Count, Stats

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


def _inert(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting = + - @ (a formula) gets a leading apostrophe,
    as OWASP advises; a title is the outlet's text, and a spreadsheet is where exports end up."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


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
        record["story_members"] = [
            {"id": m.article_id, "source": m.source, "title": m.title, "url": m.url, "copy": m.article_id is None}
            for m in article.members
        ]
    return record


def render_articles(articles: Sequence[ArticleView], fmt: str, *, header: bool = True) -> str:
    """All articles in one of FORMATS, ending with a newline (empty json list when none); header=False leaves
    out the CSV header, for the next part of a streamed export."""
    if fmt in ("json", "jsonl", "csv"):
        records = [article_record(a) for a in articles]
        return _records(records, fmt, CSV_FIELDS, lists=("tags", "also_reported_by"), header=header)
    return _table(articles)


def _records(
    records: list[dict[str, Any]], fmt: str, fields: Sequence[str], *, lists: Sequence[str], header: bool = True
) -> str:
    """Records as a JSON list, JSON lines, or CSV (lists joined by spaces)."""
    if fmt == "json":
        return json.dumps(records, ensure_ascii=False, indent=2) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    for record in records:
        row = {**record, **{name: " ".join(record[name]) for name in lists}}
        writer.writerow({name: _inert(value) for name, value in row.items()})
    return buffer.getvalue()


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
    ]
    if article.members:
        lines += ["", "same story:"]
        for member in article.members:
            label = f"#{member.article_id}" if member.article_id is not None else "copy"
            lines.append(f"  {label:<7} {member.source:<16} {member.title}")
            lines.append(f"  {'':<7} {'':<16} {member.url}")
    lines += ["", article.text or "(no text)"]
    return "\n".join(lines) + "\n"


STORY_CSV_FIELDS = (
    "story_id",
    "title",
    "url",
    "source",
    "representative_id",
    "first_seen_at",
    "published_at",
    "latest_at",
    "articles",
    "sources",
    "tags",
    "snippet",
)


def story_record(story: StoryView) -> dict[str, Any]:
    """The JSON shape of a story (`monitor search --stories`)."""
    return {
        "story_id": story.id,
        "title": story.title,
        "url": story.url,
        "source": story.source,
        "representative_id": story.representative_id,
        "first_seen_at": _iso(story.first_seen_at),
        "published_at": _iso(story.published_at),
        "latest_at": _iso(story.latest_at),
        "articles": story.articles,
        "sources": list(story.sources),
        "tags": list(story.tags),
        "snippet": story.snippet,
    }


def render_stories(stories: Sequence[StoryView], fmt: str) -> str:
    """`monitor search --stories`: one line (or record) per story."""
    records = [story_record(s) for s in stories]
    if fmt in ("json", "jsonl", "csv"):
        return _records(records, fmt, STORY_CSV_FIELDS, lists=("sources", "tags"))
    if not stories:
        return "no stories match\n"
    columns = shutil.get_terminal_size((120, 20)).columns
    lines = [f"{'story':>6}  {'latest':<16} {'n':>3}  {'sources':<28} title"]
    for s in stories:
        outlets = ", ".join(s.sources)
        if len(outlets) > 28:
            outlets = outlets[:27] + "…"
        line = f"{s.id:>6}  {_short(s.latest_at):<16} {s.articles:>3}  {outlets:<28} {s.title}"
        lines.append(line if len(line) <= columns else line[: columns - 1] + "…")
    lines.append(f"{len(stories)} stor{'y' if len(stories) == 1 else 'ies'}")
    return "\n".join(lines) + "\n"


def render_summaries(summaries: Sequence[FeedSummary]) -> str:
    """The per-feed table printed by `monitor poll`, with a closing total."""
    if not summaries:
        return "no feeds are due; `monitor poll --all` polls every enabled feed now\n"
    width = max(len("feed"), *(len(s.name) for s in summaries))
    lines = [f"{'feed':<{width}}  {'outcome':<12} {'new':>4} {'skipped':>7} {'failed':>6}  note"]
    for s in summaries:
        notes = [
            s.note or "",
            f"{s.from_summary} from the feed's summary (page failed)" if s.from_summary else "",
            f"{s.copies} cop{'y' if s.copies == 1 else 'ies'} of stored articles linked" if s.copies else "",
        ]
        note = s.error or "; ".join(n for n in notes if n)
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


def render_tags(tags: Sequence[TagMatch], fmt: str) -> str:
    """`monitor tag`: the contract's JSON object, or one line per tag."""
    if fmt == "json":
        record = {
            "tags": [
                {
                    "id": t.id,
                    "kind": t.kind,
                    "name": t.name,
                    "count": t.count,
                    "score": t.score,
                    "mentions": [{"text": m.text, "start": m.start, "end": m.end} for m in t.mentions],
                }
                for t in tags
            ]
        }
        return json.dumps(record, ensure_ascii=False) + "\n"
    if not tags:
        return "no watchlist tags\n"
    lines = [f"{'tag':<14} {'kind':<8} {'count':>5} {'score':>6}  mentions"]
    for t in tags:
        mentions = ", ".join(dict.fromkeys(m.text for m in t.mentions))
        lines.append(f"{t.id:<14} {t.kind:<8} {t.count:>5} {t.score:>6.1f}  {mentions}")
    return "\n".join(lines) + "\n"


def health_record(feed: FeedHealth) -> dict[str, Any]:
    """The JSON shape of a feed's health."""
    return {
        "name": feed.name,
        "title": feed.title,
        "url": feed.url,
        "configured_url": feed.configured_url,
        "enabled": feed.enabled,
        "status": feed.status,
        "last_success_at": _iso(feed.last_success_at),
        "last_attempt_at": _iso(feed.last_attempt_at),
        "last_outcome": feed.last_outcome,
        "last_error": feed.last_error,
        "consecutive_failures": feed.consecutive_failures,
        "items_last_7_days": feed.items_last_7_days,
        "next_poll_at": _iso(feed.next_poll_at),
        "poll_interval_seconds": int(feed.poll_interval.total_seconds()),
    }


def render_health(feeds: Sequence[FeedHealth], fmt: str) -> str:
    """`monitor feeds list`: one line per source, or JSON."""
    if fmt == "json":
        return json.dumps([health_record(f) for f in feeds], ensure_ascii=False, indent=2) + "\n"
    if not feeds:
        return "no feeds configured\n"
    width = max(len("feed"), *(len(f.name) for f in feeds))
    lines = [
        f"{'feed':<{width}}  {'status':<12} {'last success':<16} {'fails':>5} {'7 days':>6}  {'next poll':<16} "
        "last error / note"
    ]
    for f in feeds:
        note = f.last_error or (f"moved to {f.url}; update feeds.yaml" if f.url != f.configured_url else "")
        lines.append(
            f"{f.name:<{width}}  {f.status:<12} {_short(f.last_success_at):<16} {f.consecutive_failures:>5} "
            f"{f.items_last_7_days:>6}  {_short(f.next_poll_at) if f.enabled else '-':<16} {note}".rstrip()
        )
    unhealthy = sum(1 for f in feeds if f.status == "unhealthy")
    lines.append(f"{len(feeds)} feeds, {unhealthy} unhealthy (3 or more failures in a row)")
    return "\n".join(lines) + "\n"


def render_checks(checks: Sequence[FeedCheck], fmt: str) -> str:
    """`monitor feeds check`: what each feed answered, or JSON."""
    if fmt == "json":
        records = [
            {
                "name": c.name,
                "url": c.url,
                "outcome": c.outcome.value,
                "status": c.status,
                "entries": c.entries,
                "newest": _iso(c.newest),
                "elapsed_ms": int(c.elapsed * 1000),
                "error": c.error,
                "warning": c.warning,
                "moved_to": c.moved_to,
            }
            for c in checks
        ]
        return json.dumps(records, ensure_ascii=False, indent=2) + "\n"
    if not checks:
        return "no feeds to check\n"
    width = max(len("feed"), *(len(c.name) for c in checks))
    lines = [f"{'feed':<{width}}  {'outcome':<12} {'http':>4} {'items':>5}  {'newest item':<16} note"]
    for c in checks:
        notes = [n for n in (c.error, c.warning, f"moved permanently to {c.moved_to}" if c.moved_to else None) if n]
        lines.append(
            f"{c.name:<{width}}  {c.outcome.value:<12} {c.status or '-':>4} {c.entries:>5}  "
            f"{_short(c.newest) if c.newest else '-':<16} {'; '.join(notes)}".rstrip()
        )
    ok = sum(1 for c in checks if not c.outcome.failed)
    lines.append(f"{ok} of {len(checks)} feeds answered with a feed (nothing was stored)")
    return "\n".join(lines) + "\n"


def _short(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "never"


def _table(articles: Sequence[ArticleView]) -> str:
    if not articles:
        return "no articles match\n"
    columns = shutil.get_terminal_size((120, 24)).columns
    source_width = max(len("source"), *(len(a.source) for a in articles))
    title_width = max(20, columns - (7 + 17 + source_width + 4 + 8 + 6))
    lines = [f"{'id':>6}  {'published (UTC)':<16}  {'source':<{source_width}}  {'tags':<8}  {'also':>4}  title"]
    for a in articles:
        when = (a.published_at or a.fetched_at).strftime("%Y-%m-%d %H:%M")
        tags = ",".join(a.tags)[:8]
        also = f"+{len(a.also_reported_by)}" if a.also_reported_by else ""
        title = a.title if len(a.title) <= title_width else a.title[: title_width - 1] + "…"
        lines.append(f"{a.id:>6}  {when:<16}  {a.source:<{source_width}}  {tags:<8}  {also:>4}  {title}")
    return "\n".join(lines) + "\n"


def _extraction(article: ArticleView) -> str:
    if article.extraction == "page":
        return "the article page"
    source = "the feed's summary" if article.extraction == "feed-summary" else "nowhere (title and link only)"
    return f"{source}; page failed: {article.extraction_error}" if article.extraction_error else source


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def stats_record(stats: Stats) -> dict[str, Any]:
    """Stats as JSON: totals, then {label, articles, stories} rows per source, tag, week and day."""

    def rows(counts: Sequence[Count]) -> list[dict[str, Any]]:
        return [{"label": c.label, "articles": c.articles, "stories": c.stories} for c in counts]

    return {
        "since": _iso(stats.since),
        "articles": stats.articles,
        "stories": stats.stories,
        "by_source": rows(stats.by_source),
        "by_tag": rows(stats.by_tag),
        "by_week": rows(stats.by_week),
        "by_day": rows(stats.by_day),
    }


def render_stats(stats: Stats, fmt: str) -> str:
    """`monitor stats`: three small tables (per source, per tag, per week), or one JSON object."""
    if fmt == "json":
        return json.dumps(stats_record(stats), ensure_ascii=False, indent=2) + "\n"
    lines = [f"since {stats.since:%Y-%m-%d}: {stats.articles} articles in {stats.stories} stories"]
    for heading, counts in (("source", stats.by_source), ("tag", stats.by_tag), ("week of", stats.by_week)):
        lines.append("")
        if not counts:
            lines.append(f"{heading}: none")
            continue
        width = max(len(heading), *(len(c.label) for c in counts))
        peak = max(c.articles for c in counts)
        lines.append(f"{heading:<{width}}  {'articles':>8} {'stories':>7}")
        for c in counts:
            bar = "█" * max(1, round(20 * c.articles / peak)) if c.articles else ""
            lines.append(f"{c.label:<{width}}  {c.articles:>8} {c.stories:>7}  {bar}")
    return "\n".join(lines) + "\n"
