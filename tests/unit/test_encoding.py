"""Charset handling: Russian pages in windows-1251 or KOI8-R come out as the right Unicode whatever they claim."""

from __future__ import annotations

import random

import feedparser
import pytest

from monitor.pipeline.encoding import decode_html, decode_xml

RUSSIAN = (
    "Президент Казахстана провёл в Астане переговоры с делегацией Узбекистана. "
    "Стороны обсудили строительство железной дороги и поставки природного газа. "
    "В Ашхабаде открылась международная выставка «Нефть и газ Туркменистана — 2024». "
    "По словам министра, товарооборот между странами за год вырос на двадцать процентов."
)
# KOI8-R has no guillemets or dashes.
RUSSIAN_KOI8 = RUSSIAN.translate({ord("«"): '"', ord("»"): '"', ord("—"): "-"})
HEADLINE = "Ашхабад принимает саммит глав государств"
GERMAN = (
    "Grüße aus München: Die Straße am Fluss ist schön, das Café öffnet früh. "
    "Über Nacht fielen die Bäume, sagte der Bürgermeister. Résumé: The naïve fiancée liked the Gemüse."
)


def _page(text: str, meta: str = "") -> str:
    return f"<!DOCTYPE html>\n<html><head>{meta}<title>Новости</title></head>\n<body><p>{text}</p></body></html>\n"


def _feed(text: str, declaration: str) -> str:
    return (
        f"{declaration}\n"
        '<rss version="2.0"><channel><title>Новости Центральной Азии</title>'
        "<link>https://example.kz/</link><description>Лента</description>"
        f"<item><title>{HEADLINE}</title><link>https://example.kz/1</link>"
        f"<description>{text}</description></item></channel></rss>\n"
    )


def test_cp1251_page_with_correct_http_label_is_read_as_russian() -> None:
    page = _page(RUSSIAN)
    assert decode_html(page.encode("cp1251"), "text/html; charset=windows-1251") == (page, "cp1251")


def test_cp1251_page_without_any_label_is_detected() -> None:
    page = _page(RUSSIAN)
    assert decode_html(page.encode("cp1251"), "text/html") == (page, "cp1251")
    assert decode_html(page.encode("cp1251"), None) == (page, "cp1251")


def test_cp1251_page_labelled_latin1_is_read_as_russian() -> None:
    page = _page(RUSSIAN)
    assert decode_html(page.encode("cp1251"), "text/html; charset=ISO-8859-1") == (page, "cp1251")


def test_cp1251_page_labelled_utf8_is_read_as_russian() -> None:
    page = _page(RUSSIAN)
    assert decode_html(page.encode("cp1251"), "text/html; charset=utf-8") == (page, "cp1251")


@pytest.mark.parametrize(
    "meta",
    [
        '<meta charset="windows-1251">',
        '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">',
    ],
)
def test_cp1251_page_with_meta_charset_and_no_http_label_follows_the_meta(meta: str) -> None:
    page = _page(RUSSIAN, meta)
    assert decode_html(page.encode("cp1251"), "text/html") == (page, "cp1251")


def test_unknown_http_label_is_ignored_in_favour_of_the_meta_charset() -> None:
    page = _page(RUSSIAN_KOI8, '<meta charset="koi8-r">')
    assert decode_html(page.encode("koi8-r"), "text/html; charset=x-no-such-charset") == (page, "koi8-r")


def test_koi8r_page_with_correct_label_is_read_as_russian() -> None:
    page = _page(RUSSIAN_KOI8)
    assert decode_html(page.encode("koi8-r"), "text/html; charset=KOI8-R") == (page, "koi8-r")


def test_koi8r_page_without_any_label_is_detected() -> None:
    page = _page(RUSSIAN_KOI8)
    assert decode_html(page.encode("koi8-r"), None) == (page, "koi8-r")


def test_koi8r_page_labelled_windows1251_is_read_as_koi8r() -> None:
    page = _page(RUSSIAN_KOI8)
    assert decode_html(page.encode("koi8-r"), "text/html; charset=windows-1251") == (page, "koi8-r")


@pytest.mark.parametrize("encoding", ["koi8-r", "cp1251"])
def test_short_unlabelled_headline_is_detected(encoding: str) -> None:
    assert decode_html(HEADLINE.encode(encoding), None) == (HEADLINE, encoding)


@pytest.mark.parametrize("encoding", ["koi8-r", "cp1251"])
def test_correctly_labelled_all_caps_page_is_not_flipped(encoding: str) -> None:
    page = _page(RUSSIAN_KOI8.upper())
    assert decode_html(page.encode(encoding), f"text/html; charset={encoding}") == (page, encoding)


def test_utf8_bom_wins_over_a_conflicting_http_label() -> None:
    page = _page(RUSSIAN)
    assert decode_html(b"\xef\xbb\xbf" + page.encode(), "text/html; charset=windows-1251") == (page, "utf-8")


def test_utf16_bom_is_honoured() -> None:
    page = _page(RUSSIAN)
    assert decode_html(page.encode("utf-16"), "text/html; charset=koi8-r") == (page, "utf-16-le")


def test_unlabelled_utf8_page_is_read_as_utf8() -> None:
    page = _page(RUSSIAN)
    assert decode_html(page.encode(), None) == (page, "utf-8")


def test_utf8_page_labelled_windows1251_is_read_as_utf8() -> None:
    page = _page(RUSSIAN)
    assert decode_html(page.encode(), "text/html; charset=windows-1251") == (page, "utf-8")


def test_utf8_page_with_one_broken_character_stays_utf8() -> None:
    page = _page(RUSSIAN)
    body = page.encode()
    cut = body.index("Ашхабаде".encode()) + 1
    text, encoding = decode_html(body[:cut] + body[cut + 1 :], None)
    assert encoding == "utf-8"
    assert text.replace("\ufffd", "А", 1) == page


def test_latin1_page_labelled_iso8859_1_stays_latin() -> None:
    page = _page(GERMAN).replace("Новости", "Nachrichten")
    assert decode_html(page.encode("latin-1"), "text/html; charset=iso-8859-1") == (page, "cp1252")


def test_unlabelled_latin1_page_is_read_as_windows1252() -> None:
    page = _page(GERMAN).replace("Новости", "Nachrichten")
    assert decode_html(page.encode("latin-1"), None) == (page, "cp1252")


def test_windows1251_feed_is_re_encoded_as_utf8_and_feedparser_reads_the_title() -> None:
    declaration = '<?xml version="1.0" encoding="windows-1251"?>'
    feed = _feed(RUSSIAN, declaration)
    body, encoding = decode_xml(feed.encode("cp1251"), "application/rss+xml")
    assert encoding == "cp1251"
    assert body == feed.replace(declaration, '<?xml version="1.0" encoding="utf-8"?>').encode()
    parsed = feedparser.parse(body)
    assert parsed.feed.title == "Новости Центральной Азии"
    assert parsed.entries[0].title == HEADLINE
    assert parsed.entries[0].description == RUSSIAN


def test_koi8r_feed_declared_windows1251_is_read_as_koi8r() -> None:
    feed = _feed(RUSSIAN_KOI8, "<?xml version='1.0' encoding='windows-1251' standalone='yes'?>")
    body, encoding = decode_xml(feed.encode("koi8-r"), None)
    assert encoding == "koi8-r"
    assert body.startswith(b"<?xml version='1.0' encoding=\"utf-8\" standalone='yes'?>\n<rss")
    assert feedparser.parse(body).entries[0].title == HEADLINE


def test_xml_declaration_gets_an_encoding_when_it_has_none() -> None:
    feed = _feed(RUSSIAN, '<?xml version="1.0"?>')
    body, encoding = decode_xml(feed.encode("cp1251"), "text/xml; charset=windows-1251")
    assert (body, encoding) == (feed.replace("?>", ' encoding="utf-8"?>', 1).encode(), "cp1251")


def test_xml_declaration_is_added_when_missing() -> None:
    feed = _feed(RUSSIAN_KOI8, "")
    body, encoding = decode_xml(feed.encode("koi8-r"), None)
    assert (body, encoding) == (('<?xml version="1.0" encoding="utf-8"?>\n' + feed).encode(), "koi8-r")


def test_http_charset_wins_over_the_xml_declaration() -> None:
    feed = _feed(RUSSIAN, '<?xml version="1.0" encoding="utf-8"?>')
    body, encoding = decode_xml(feed.encode("cp1251"), "application/xml; charset=windows-1251")
    assert (body, encoding) == (feed.encode(), "cp1251")


GARBAGE = [
    b"",
    b"\xff\xfe",
    b"\xfe\xff\x00",
    b"\xef\xbb",
    b"\x00" * 100,
    b"<\x00?\x00x\x00m\x00l\x00",
    b"<?xml version='1.0' encoding='rot13'?><a/>",
    b"<meta charset=undefined><p>\xc0\xc1\xc2</p>",
    b"<!-- <meta charset=base64>",
    random.Random(20240501).randbytes(20_000),
    bytes(range(256)) * 300,
]
CONTENT_TYPES = [
    None,
    "",
    "text/html; charset=",
    'text/html; charset="',
    "text/html; charset=utf-16",
    "text/html; charset=base64",
    "text/html; charset=undefined",
    "text/html; charset=utf-7",
    "charset=koi8-r; charset=cp1251",
]


@pytest.mark.parametrize("body", GARBAGE)
@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_garbage_never_raises(body: bytes, content_type: str | None) -> None:
    text, encoding = decode_html(body, content_type)
    assert isinstance(text, str)
    assert encoding
    xml, encoding = decode_xml(body, content_type)
    assert b'encoding="utf-8"' in xml
    assert encoding
