"""The only feedparser user: a feed document -> ParsedFeed of typed entries."""

from __future__ import annotations

import calendar
import hashlib
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser

from monitor.model import ParsedEntry, ParsedFeed

MAX_GUID_LENGTH = 512


class NotAFeedError(ValueError):
    """The document is not RSS, RDF or Atom (often an HTML page where a feed was expected)."""


def parse_feed(body: bytes, *, url: str, content_type: str | None = None) -> ParsedFeed:
    """Parse RSS 0.9x/1.0/2.0 or Atom; tolerate malformed XML feedparser can still read."""
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    parsed = feedparser.parse(body, response_headers=headers, sanitize_html=True)
    version = parsed.get("version") or ""
    if not version and not parsed.entries:
        problem = parsed.get("bozo_exception")
        detail = f": {_one_line(problem)}" if problem else ""
        raise NotAFeedError(f"not an RSS or Atom feed{detail}")
    warning = _one_line(parsed.bozo_exception) if parsed.get("bozo") else None
    entries: list[ParsedEntry] = []
    seen: set[str] = set()
    dropped = 0
    for raw in parsed.entries:
        entry = _entry(raw, base_url=url)
        if entry is None:
            dropped += 1
            continue
        # Some feeds repeat an item; the first copy wins.
        if entry.guid in seen:
            continue
        seen.add(entry.guid)
        entries.append(entry)
    feed = parsed.get("feed", {})
    return ParsedFeed(
        title=_text(feed.get("title")),
        language=_text(feed.get("language")),
        entries=tuple(entries),
        dropped=dropped,
        warning=warning,
    )


def _entry(raw: Any, *, base_url: str) -> ParsedEntry | None:
    link = _text(raw.get("link"))
    link = urljoin(base_url, link) if link else None
    title = _text(raw.get("title"))
    summary = _summary(raw)
    if not link:
        return None
    guid = _text(raw.get("id")) or link
    if len(guid) > MAX_GUID_LENGTH:
        guid = "sha256:" + hashlib.sha256(guid.encode()).hexdigest()
    authors = raw.get("author") or None
    return ParsedEntry(
        guid=guid,
        link=link,
        title=title,
        summary_html=summary,
        author=_text(authors),
        published_at=_date(raw.get("published_parsed") or raw.get("updated_parsed")),
    )


def _summary(raw: Any) -> str | None:
    for content in raw.get("content") or ():
        value = _text(content.get("value"))
        if value:
            return value
    return _text(raw.get("summary"))


def _date(value: time.struct_time | None) -> datetime | None:
    # feedparser normalises every date it understands to a UTC struct_time.
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def _one_line(exc: object) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
