"""Fetched bytes -> the right Unicode, even when a Russian-language page lies about its charset."""

from __future__ import annotations

import codecs
import re

import charset_normalizer

SAMPLE_BYTES = 64 * 1024
META_SCAN_BYTES = 4096
XML_DECL_SCAN = 1024
FALLBACK = "cp1252"

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# Labels seen on the web that Python's codec registry does not know.
_WEB_LABELS = {
    "x-cp1251": "cp1251",
    "win-1251": "cp1251",
    "windows1251": "cp1251",
    "koi": "koi8-r",
    "koi8": "koi8-r",
    "x-mac-cyrillic": "mac-cyrillic",
}
# Browsers read latin-1 and ASCII labels as windows-1252, and so do the sites that send them.
_AS_BROWSERS_DO = {"iso8859-1": "cp1252", "ascii": "cp1252", "utf-8-sig": "utf-8", "utf-16": "utf-16-le"}
# Python text codecs that are no web charset: a page naming one gets detection instead.
_REFUSED = frozenset({"utf-7", "unicode-escape", "raw-unicode-escape", "idna", "punycode"})
_WESTERN = frozenset({"cp1252", "iso8859-15"})
_RUSSIAN = ("cp1251", "koi8-r")
_SINGLE_BYTE = _WESTERN | frozenset(_RUSSIAN)

_LOWER = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
_UPPER = _LOWER.upper()
_COMMON = "оеаинтсрвл"
# Rare in Russian, yet the most frequent letters of a page read with the wrong one of cp1251/KOI8-R.
_RARE = "йфхцщъэю"
_MIN_RUSSIAN_SCORE = 0.3
_SWITCH_MARGIN = 0.25
_MIN_LETTERS_TO_SWITCH = 8

_HTTP_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([^\s"';,]+)""", re.IGNORECASE)
_HTML_COMMENT = re.compile(rb"<!--.*?-->", re.DOTALL)
_META_CHARSET = re.compile(rb"""<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([A-Za-z0-9._:\-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""\s*<\?xml\b[^>]*?\bencoding\s*=\s*["']\s*([A-Za-z0-9._:\-]+)""")
_XML_DECL = re.compile(r"""\s*<\?xml\b(?P<attrs>[^>]*?)\?>""")
_ENCODING_ATTR = re.compile(r"""\bencoding\s*=\s*(?:"[^"]*"|'[^']*')""")
_VERSION_ATTR = re.compile(r"""\bversion\s*=\s*(?:"[^"]*"|'[^']*')""")
_HIGH_LETTER_RUN = re.compile(rb"[\xc0-\xff]+")


def decode_html(body: bytes, content_type: str | None) -> tuple[str, str]:
    """Decode an HTML page; return (text, encoding used)."""
    if (bom := _strip_bom(body)) is not None:
        encoding, rest = bom
        return _decode(rest, encoding), encoding
    head = _HTML_COMMENT.sub(b"", body[:META_SCAN_BYTES])
    meta = _META_CHARSET.search(head)
    label = _http_label(content_type) or (_document_label(meta.group(1)) if meta else None)
    encoding = _settle(body, label)
    return _decode(body, encoding), encoding


def decode_xml(body: bytes, content_type: str | None) -> tuple[bytes, str]:
    """Return the XML document re-encoded as UTF-8, its XML declaration saying so, and the encoding it was read with."""
    if (bom := _strip_bom(body)) is not None:
        encoding, body = bom
    elif body.startswith(b"<\x00?\x00"):
        encoding = "utf-16-le"
    elif body.startswith(b"\x00<\x00?"):
        encoding = "utf-16-be"
    else:
        declared = _XML_ENCODING.match(body, 0, XML_DECL_SCAN)
        label = _http_label(content_type) or (_document_label(declared.group(1)) if declared else None)
        encoding = _settle(body, label)
    return _declare_utf8(_decode(body, encoding)).encode("utf-8"), encoding


def _strip_bom(body: bytes) -> tuple[str, bytes] | None:
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return encoding, body[len(bom) :]
    return None


def _http_label(content_type: str | None) -> str | None:
    found = _HTTP_CHARSET.search(content_type) if content_type else None
    return _normalise(found.group(1)) if found else None


def _document_label(raw: bytes) -> str | None:
    label = _normalise(raw.decode("ascii", "replace"))
    # A declaration readable as ASCII cannot be in UTF-16 (the HTML5 rule).
    return "utf-8" if label is not None and label.startswith("utf-16") else label


def _normalise(label: str) -> str | None:
    """Canonical Python codec name for a charset label, or None when it names no usable text encoding."""
    cleaned = label.strip().strip("\"'").lower()
    try:
        name = codecs.lookup(_WEB_LABELS.get(cleaned, cleaned)).name
        b"a".decode(name, "replace")  # raises for bytes-to-bytes codecs such as base64
    except (LookupError, ValueError):
        return None
    name = _AS_BROWSERS_DO.get(name, name)
    return None if name in _REFUSED else name


def _settle(body: bytes, label: str | None) -> str:
    """Trust the declared encoding unless the bytes show it is wrong; detect when nothing is declared."""
    sample, final = body[:SAMPLE_BYTES], len(body) <= SAMPLE_BYTES
    if label is None:
        return _detect(sample, final)
    # Single-byte charsets accept UTF-8 bytes, so a mislabelled UTF-8 page would otherwise stay mojibake.
    if label in _SINGLE_BYTE and not sample.isascii() and _is_utf8(sample, final):
        return "utf-8"
    # Markup in UTF-16 always has NUL bytes; without them the label is wrong.
    if not _decodes(sample, label, final) or (label.startswith("utf-16") and b"\x00" not in sample):
        return _detect(sample, final)
    if label in _WESTERN and _cyrillic_like(sample):
        return _pick_russian(sample) or label
    if label in _RUSSIAN:
        return _check_russian(sample, label)
    return label


def _detect(sample: bytes, final: bool) -> str:
    if _is_utf8(sample, final):
        return "utf-8"
    if _cyrillic_like(sample) and (russian := _pick_russian(sample)) is not None:
        return russian
    matches = charset_normalizer.from_bytes(sample)
    best = matches.best()
    if best is None:
        return FALLBACK
    # It breaks ties by code page order (cp1250 first); browsers read unlabelled Western pages as windows-1252.
    tie = any(m.encoding == "cp1252" and (m.chaos, -m.coherence) <= (best.chaos, -best.coherence) for m in matches)
    guess = FALLBACK if tie else _normalise(best.encoding)
    if guess in _RUSSIAN:
        return _pick_russian(sample) or guess
    return guess or FALLBACK


def _decodes(sample: bytes, encoding: str, final: bool) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)("strict").decode(sample, final)
    except (LookupError, ValueError):
        return False
    return True


def _is_utf8(sample: bytes, final: bool) -> bool:
    """Valid UTF-8, allowing the rare broken sequence a CMS leaves when it cuts a string mid-character."""
    if _decodes(sample, "utf-8", final):
        return True
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(sample, final)
    broken = text.count("\ufffd") - sample.count("\ufffd".encode())
    continuation_bytes = len(text.encode()) - len(text) - 2 * broken
    # Text in a single-byte charset almost never forms valid sequences, so many clean ones per error mean UTF-8.
    return continuation_bytes >= 20 * broken


def _cyrillic_like(sample: bytes) -> bool:
    """Whole words of bytes 0xC0-0xFF: Russian in cp1251 or KOI8-R, not accents sprinkled over Latin words."""
    runs = [len(run) for run in _HIGH_LETTER_RUN.findall(sample)]
    total = sum(runs)
    in_words = sum(length for length in runs if length >= 3)
    return total >= 6 and 2 * in_words >= total


def _pick_russian(sample: bytes) -> str | None:
    scores = {encoding: _russian_score(sample.decode(encoding, "replace"))[0] for encoding in _RUSSIAN}
    best = max(_RUSSIAN, key=scores.__getitem__)
    return best if scores[best] >= _MIN_RUSSIAN_SCORE else None


def _check_russian(sample: bytes, label: str) -> str:
    other = _RUSSIAN[1] if label == _RUSSIAN[0] else _RUSSIAN[0]
    own, letters = _russian_score(sample.decode(label, "replace"))
    theirs, _ = _russian_score(sample.decode(other, "replace"))
    switch = letters >= _MIN_LETTERS_TO_SWITCH and theirs >= own + _SWITCH_MARGIN
    return other if switch else label


def _russian_score(text: str) -> tuple[float, int]:
    """How much the Cyrillic of `text` looks like Russian, and how many Cyrillic letters it has."""
    counts = {letter: text.count(letter) for letter in _LOWER + _UPPER}
    letters = sum(counts.values())
    if not letters:
        return 0.0, 0
    lower = sum(counts[letter] for letter in _LOWER)
    common = sum(counts[letter] + counts[letter.upper()] for letter in _COMMON)
    rare = sum(counts[letter] + counts[letter.upper()] for letter in _RARE)
    # Case weighs little: an all-caps headline is legitimate, but the letter mix never lies.
    return (common - rare + 0.25 * lower) / letters, letters


def _decode(body: bytes, encoding: str) -> str:
    try:
        return body.decode(encoding, "replace")
    except (LookupError, ValueError):
        return body.decode(FALLBACK, "replace")


def _declare_utf8(text: str) -> str:
    decl = _XML_DECL.match(text, 0, XML_DECL_SCAN)
    if decl is None:
        return '<?xml version="1.0" encoding="utf-8"?>\n' + text
    attrs = decl.group("attrs")
    if _ENCODING_ATTR.search(attrs):
        attrs = _ENCODING_ATTR.sub('encoding="utf-8"', attrs, count=1)
    elif (version := _VERSION_ATTR.search(attrs)) is not None:
        attrs = f'{attrs[: version.end()]} encoding="utf-8"{attrs[version.end() :]}'
    else:
        attrs = f' version="1.0" encoding="utf-8"{attrs}'
    return text[: decl.start("attrs")] + attrs + text[decl.end("attrs") :]
