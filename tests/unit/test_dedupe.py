"""Canonical URLs and text fingerprints: what makes two links, or two texts, the same article."""

from __future__ import annotations

import pytest

from monitor.pipeline.dedupe import canonical_url, same_title, text_fingerprint


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        # case, default port, trackers, query order, fragment
        ("HTTPS://WWW.Trend.AZ:443/news/1?utm_source=rss&b=2&a=1#top", "https://trend.az/news/1?a=1&b=2"),
        ("https://x.org/a?fbclid=1&gclid=2&yclid=3&utm_medium=x&id=7", "https://x.org/a?id=7"),
        # http and https, www., m. and amp. hosts are one page
        ("http://x.org:80/a", "https://x.org/a"),
        ("https://m.kun.uz/news/2026/02/10/x", "https://kun.uz/news/2026/02/10/x"),
        ("https://mobile.x.org/a", "https://x.org/a"),
        ("https://amp.x.org/a", "https://x.org/a"),
        # AMP renderings of the same article
        ("https://kun.uz/news/2026/02/10/x/amp", "https://kun.uz/news/2026/02/10/x"),
        ("https://kun.uz/amp/news/2026/02/10/x", "https://kun.uz/news/2026/02/10/x"),
        ("https://x.org/a.amp.html", "https://x.org/a.html"),
        ("https://x.org/a?amp=1", "https://x.org/a"),
        ("https://x.org/a?outputType=amp&id=3", "https://x.org/a?id=3"),
        # what identifies an article stays
        ("https://akipress.com/news:812345/?newsid=5&page=2", "https://akipress.com/news:812345/?newsid=5&page=2"),
        ("https://x.org:8080/a", "https://x.org:8080/a"),
        ("https://www.x.org/ample/amplifier", "https://x.org/ample/amplifier"),
        ("https://m.org/a", "https://m.org/a"),  # a two-label host keeps its name
        # not articles
        ("javascript:alert(1)", None),
        ("mailto:desk@x.org", None),
        ("https://x.org/" + "a" * 3000, None),
    ],
)
def test_canonical_url(link: str, expected: str | None) -> None:
    assert canonical_url(link) == expected


BODY = " ".join(f"word{n}" for n in range(60))


def test_fingerprint_ignores_case_punctuation_spacing_and_unicode_forms() -> None:
    variant = BODY.upper().replace(" ", ",  \n") + "!"
    assert text_fingerprint(BODY) == text_fingerprint(variant) is not None
    assert text_fingerprint(BODY) != text_fingerprint(BODY + " word60")
    assert text_fingerprint("ＡＢＣ " + BODY) == text_fingerprint("abc " + BODY)  # NFKC: full-width letters


def test_short_texts_have_no_fingerprint() -> None:
    assert text_fingerprint("Read more about it on our site.") is None
    assert text_fingerprint("") is None


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Turkmenistan, Starlink discuss cooperation", "Turkmenistan, Starlink discuss cooperation", True),
        ("Turkmenistan, Starlink discuss cooperation", "Turkmenistan, Starlink discuss cooperation | Print", True),
        ("Туркменистан и Starlink обсудили сотрудничество", "ТУРКМЕНИСТАН И STARLINK ОБСУДИЛИ СОТРУДНИЧЕСТВО", True),
        ("Turkmenistan, Starlink discuss cooperation", "Kyrgyz parliament passes budget", False),
        ("Turkmenistan, Starlink discuss cooperation", "", False),
    ],
)
def test_same_title(a: str, b: str, same: bool) -> None:
    assert same_title(a, b) is same
