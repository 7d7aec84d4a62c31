"""The only feedparser user: a feed or sitemap document -> ParsedFeed of typed entries."""

from __future__ import annotations

import calendar
import gzip
import hashlib
import io
import time
import zlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser
import lxml.html
from lxml import etree

from monitor.model import ParsedEntry, ParsedFeed
from monitor.pipeline.encoding import decode_xml

MAX_GUID_LENGTH = 512
# A first poll of a big sitemap must not turn into thousands of page downloads: keep the newest.
SITEMAP_MAX_ENTRIES = 100
SITEMAP_MAX_CHILDREN = 2
SITEMAP_MAX_BYTES = 50 * 1024 * 1024
_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
_NEWS_NS = "{http://www.google.com/schemas/sitemap-news/0.9}"


class NotAFeedError(ValueError):
    """The document is not RSS, RDF or Atom (often an HTML page where a feed was expected)."""


def parse_feed(body: bytes, *, url: str, content_type: str | None = None) -> ParsedFeed:
    """Parse RSS 0.9x/1.0/2.0 or Atom; tolerate malformed XML feedparser can still read."""
    utf8, _encoding = decode_xml(body, content_type)
    # The bytes are UTF-8 now and say so; an HTTP charset would make feedparser decode them again.
    media_type = (content_type or "").split(";")[0].strip() or "application/xml"
    headers = {"content-location": url, "content-type": media_type}
    # Only the plain text of a summary is kept (extract.html_to_text drops scripts and styles), so
    # feedparser's HTML sanitising and relative-URI rewriting of every description would be wasted: they
    # cost half of the parsing time of a 30-item feed.
    parsed = feedparser.parse(utf8, response_headers=headers, sanitize_html=False, resolve_relative_uris=False)
    version = parsed.get("version") or ""
    if not version and not parsed.entries:
        found = discover_feeds(body, base_url=url)
        if found:
            raise NotAFeedError(f"not an RSS or Atom feed but an HTML page; it links to the feeds {', '.join(found)}")
        if b"<html" in body[:2048].lower() or b"<!doctype html" in body[:2048].lower():
            raise NotAFeedError("not an RSS or Atom feed but an HTML page, and it links to no feed")
        problem = parsed.get("bozo_exception")
        detail = f": {_one_line(problem)}" if problem else ""
        raise NotAFeedError(f"not an RSS or Atom feed{detail}")
    warning = _one_line(parsed.bozo_exception) if parsed.get("bozo") else None
    entries: list[ParsedEntry] = []
    seen: set[str] = set()
    dropped = 0
    parsed_entries = [_entry(raw, base_url=url) for raw in parsed.entries]
    links_per_guid: dict[str, set[str]] = {}
    for candidate in parsed_entries:
        if candidate is not None:
            links_per_guid.setdefault(candidate.guid, set()).add(candidate.link)
    for entry in parsed_entries:
        if entry is None:
            dropped += 1
            continue
        if len(links_per_guid[entry.guid]) > 1:
            # Some CMSs give every item the same GUID (often the home page): the link tells them apart.
            entry = replace(entry, guid=entry.link)
        # Some feeds repeat an item; the first copy wins.
        if entry.guid in seen:
            continue
        seen.add(entry.guid)
        entries.append(entry)
    feed = parsed.get("feed", {})
    ttl = _text(feed.get("ttl"))
    return ParsedFeed(
        title=_text(feed.get("title")),
        language=_text(feed.get("language")),
        entries=tuple(entries),
        dropped=dropped,
        warning=warning,
        ttl_minutes=int(ttl) if ttl and ttl.isdigit() else None,
    )


FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/feed+json"})


def discover_feeds(body: bytes, *, base_url: str) -> list[str]:
    """Feed URLs an HTML page advertises with <link rel="alternate" type="application/rss+xml" ...>."""
    try:
        root = lxml.html.document_fromstring(body[:1_000_000])
    except (etree.ParserError, ValueError):
        return []
    found: list[str] = []
    for link in root.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        kind = (link.get("type") or "").lower().split(";")[0].strip()
        href = (link.get("href") or "").strip()
        if "alternate" in rel and kind in FEED_TYPES and href:
            url = urljoin(base_url, href)
            if url not in found:
                found.append(url)
    return found


def _entry(raw: Any, *, base_url: str) -> ParsedEntry | None:
    link = _join(base_url, _text(raw.get("link")))
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


def _join(base_url: str, link: str | None) -> str | None:
    """link made absolute against base_url; None when missing or not a URL at all (e.g. http://[broken)."""
    if not link:
        return None
    try:
        return urljoin(base_url, link)
    except ValueError:
        return None


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
    # NUL is legal in an XML character reference but not in PostgreSQL text, and never means anything.
    value = value.replace("\x00", "").strip()
    return value or None


def _one_line(exc: object) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@dataclass(frozen=True, slots=True)
class SitemapIndex:
    """A sitemap index: the child sitemaps worth reading, newest first."""

    sitemaps: tuple[str, ...]


def parse_sitemap(body: bytes, *, url: str) -> ParsedFeed | SitemapIndex:
    """Parse an XML sitemap, a news sitemap or a sitemap index (gzip-compressed or not)."""
    body = _gunzip(body)
    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(body, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise NotAFeedError(f"not an XML sitemap: {exc}") from None
    if root is None:
        raise NotAFeedError("not an XML sitemap: empty document")
    tag = etree.QName(root).localname
    if tag == "sitemapindex":
        children = [
            (
                _text(node.findtext(f"{_SITEMAP_NS}loc")),
                _iso_date(node.findtext(f"{_SITEMAP_NS}lastmod")),
                index,
            )
            for index, node in enumerate(root.iter(f"{_SITEMAP_NS}sitemap"))
        ]
        # Newest by lastmod; undated ones by position, later first (sites append new sitemaps).
        ordered = sorted(
            (c for c in children if c[0]),
            key=lambda c: (c[1] or datetime.min.replace(tzinfo=UTC), c[2]),
            reverse=True,
        )
        return SitemapIndex(tuple(urljoin(url, c[0]) for c in ordered[:SITEMAP_MAX_CHILDREN] if c[0]))
    if tag != "urlset":
        raise NotAFeedError(f"not an XML sitemap: root element is <{tag}>")
    entries: list[tuple[ParsedEntry, int]] = []
    seen: set[str] = set()
    for index, node in enumerate(root.iter(f"{_SITEMAP_NS}url")):
        loc = _text(node.findtext(f"{_SITEMAP_NS}loc"))
        if not loc or loc in seen:
            continue
        seen.add(loc)
        link = _join(url, loc)
        if link is None:
            continue
        published = _iso_date(node.findtext(f"{_NEWS_NS}news/{_NEWS_NS}publication_date")) or _iso_date(
            node.findtext(f"{_SITEMAP_NS}lastmod")
        )
        title = _text(node.findtext(f"{_NEWS_NS}news/{_NEWS_NS}title"))
        entries.append((ParsedEntry(link, link, title, None, None, published), index))
    entries.sort(key=lambda e: (e[0].published_at or datetime.min.replace(tzinfo=UTC), -e[1]), reverse=True)
    return ParsedFeed(title=None, language=None, entries=tuple(e for e, _ in entries[:SITEMAP_MAX_ENTRIES]))


def _gunzip(body: bytes) -> bytes:
    if not body.startswith(b"\x1f\x8b"):
        return body
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as stream:
            data = stream.read(SITEMAP_MAX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise NotAFeedError(f"broken gzip sitemap: {exc}") from None
    if len(data) > SITEMAP_MAX_BYTES:
        raise NotAFeedError("sitemap larger than 50 MB once decompressed")
    return data


def _iso_date(value: str | None) -> datetime | None:
    if not value or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    # W3C datetime without a zone: the sitemap protocol leaves it unspecified; UTC is the least wrong.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
