"""Duplicates: canonical URLs (one article per URL, whatever the feed adds) and text fingerprints (one
article per text, whatever the URL). Grouping rewrites into stories is pipeline/similarity.py's job.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import courlan

MAX_URL_LENGTH = 2048
# Host prefixes under which sites serve the same pages as on their bare domain: desktop, mobile, AMP.
_HOST_VARIANTS = ("www.", "m.", "mobile.", "amp.")
# Query parameters that ask for the AMP rendering of the same page (courlan drops the trackers).
_AMP_PARAMS = {"amp": None, "output": "amp", "outputtype": "amp", "format": "amp", "view": "amp"}
_AMP_PATH = re.compile(r"(?:^/amp(?=/)|/amp/?$|\.amp(?=\.html?$|$))", re.IGNORECASE)
# A fingerprint needs this many words: short texts ("Read more", a bare headline) coincide by chance.
MIN_FINGERPRINT_WORDS = 40
_WORDS = re.compile(r"[^\W_]+")


def canonical_url(url: str) -> str | None:
    """An article link as an identity key: the same page under every spelling maps to one string.

    Folds scheme (http to https), host case and its www./m./amp. variants, default ports, tracking
    parameters (utm_*, fbclid, gclid, yclid, ... via courlan), AMP markers, query order and the fragment.
    The result is for recognising a page, not for visiting it: the article's own url is kept beside it.
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
        normalised = urlsplit(courlan.normalize_url(parts, strict=False))
    except ValueError:
        return None
    host = normalised.netloc
    for prefix in _HOST_VARIANTS:
        if host.startswith(prefix) and host.count(".") >= 2:
            host = host[len(prefix) :]
            break
    path = _AMP_PATH.sub("", normalised.path) or "/"
    query = urlencode([(k, v) for k, v in parse_qsl(normalised.query, keep_blank_values=True) if not _is_amp(k, v)])
    clean = urlunsplit(("https", host, path, query, ""))
    return clean if len(clean) <= MAX_URL_LENGTH else None


def _is_amp(key: str, value: str) -> bool:
    key = key.lower()
    return key in _AMP_PARAMS and (_AMP_PARAMS[key] is None or value.lower() == _AMP_PARAMS[key])


def text_fingerprint(text: str) -> str | None:
    """A hash of the text's words (case, punctuation, spacing and Unicode forms folded), or None when the
    text is too short to identify an article."""
    words = _WORDS.findall(unicodedata.normalize("NFKC", text).casefold())
    if len(words) < MIN_FINGERPRINT_WORDS:
        return None
    return hashlib.sha256(" ".join(words).encode()).hexdigest()


def same_title(a: str, b: str) -> bool:
    """Whether two headlines name the same article: most of the shorter one's words are in the other.

    A copy keeps its headline (a print view may add "Print version"); two different articles whose pages
    extract to the same boilerplate do not.
    """
    words_a = set(_WORDS.findall(unicodedata.normalize("NFKC", a).casefold()))
    words_b = set(_WORDS.findall(unicodedata.normalize("NFKC", b).casefold()))
    if not words_a or not words_b:
        return False
    shorter = min(len(words_a), len(words_b))
    return len(words_a & words_b) >= max(1, round(shorter * 0.6))
