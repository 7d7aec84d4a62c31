"""Build RSS 2.0, RSS 1.0 (RDF) and Atom documents for tests, from plain item dicts."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape


def rss2(items: list[dict[str, object]], *, title: str = "Test wire") -> str:
    """An RSS 2.0 document; item keys: title, link, guid, published (datetime), summary, author."""
    body = []
    for item in items:
        parts = ["<item>"]
        if "title" in item:
            parts.append(f"<title>{escape(str(item['title']))}</title>")
        if "link" in item:
            parts.append(f"<link>{escape(str(item['link']))}</link>")
        if "guid" in item:
            parts.append(f'<guid isPermaLink="false">{escape(str(item["guid"]))}</guid>')
        if isinstance(item.get("published"), datetime):
            parts.append(f"<pubDate>{format_datetime(item['published'])}</pubDate>")  # type: ignore[arg-type]
        if "summary" in item:
            parts.append(f"<description>{escape(str(item['summary']))}</description>")
        if "author" in item:
            parts.append(f"<dc:creator>{escape(str(item['author']))}</dc:creator>")
        parts.append("</item>")
        body.append("".join(parts))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        f"<title>{escape(title)}</title><link>http://example.org/</link><description>test</description>"
        + "".join(body)
        + "</channel></rss>"
    )


def rss1(items: list[dict[str, object]], *, title: str = "Test RDF") -> str:
    """An RSS 1.0 (RDF) document with dc:date."""
    body = []
    for item in items:
        link = escape(str(item["link"]))
        date = item["published"].isoformat() if isinstance(item.get("published"), datetime) else ""  # type: ignore[union-attr]
        body.append(
            f'<item rdf:about="{link}"><title>{escape(str(item.get("title", "")))}</title><link>{link}</link>'
            f"<description>{escape(str(item.get('summary', '')))}</description><dc:date>{date}</dc:date></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f'<channel rdf:about="http://example.org/"><title>{escape(title)}</title><link>http://example.org/</link>'
        "<description>test</description></channel>" + "".join(body) + "</rdf:RDF>"
    )


def atom(items: list[dict[str, object]], *, title: str = "Test Atom") -> str:
    """An Atom 1.0 document."""
    body = []
    for item in items:
        date = item["published"].isoformat() if isinstance(item.get("published"), datetime) else ""  # type: ignore[union-attr]
        body.append(
            f"<entry><id>{escape(str(item.get('guid', item['link'])))}</id>"
            f"<title>{escape(str(item.get('title', '')))}</title>"
            f'<link rel="alternate" href="{escape(str(item["link"]))}"/>'
            f"<published>{date}</published><updated>{date}</updated>"
            f"<summary>{escape(str(item.get('summary', '')))}</summary></entry>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{escape(title)}</title><id>urn:test</id><updated>2026-11-01T00:00:00Z</updated>"
        + "".join(body)
        + "</feed>"
    )
