"""Canonical URLs: one article per canonical URL, whatever tracking junk the feed adds."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import courlan

MAX_URL_LENGTH = 2048


def canonical_url(url: str) -> str | None:
    """Normalise an article link (case, default port, tracking parameters, query order, fragment).

    Returns None when the link is not an http(s) URL worth storing.
    """
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    try:
        normalised = courlan.normalize_url(parts, strict=False)
    except ValueError:
        return None
    clean = urlunsplit(urlsplit(normalised)._replace(fragment=""))
    return clean if len(clean) <= MAX_URL_LENGTH else None
