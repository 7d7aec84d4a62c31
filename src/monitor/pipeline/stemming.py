"""Snowball stemming, shared by story similarity and full-text search: Russian for Cyrillic words, else English."""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import Stemmer

_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_WORD = re.compile(r"[^\W_]+")
_STEMS: dict[str, str] = {}
_STEM_CACHE_LIMIT = 200_000


def stem(folded: str) -> str:
    """The stem of a casefolded word."""
    result = _STEMS.get(folded)
    if result is None:
        english, russian = _stemmers()
        result = (russian if is_cyrillic(folded) else english).stemWord(folded)
        if len(_STEMS) >= _STEM_CACHE_LIMIT:
            _STEMS.clear()  # bounded: a months-long run meets millions of distinct words
        _STEMS[folded] = result
    return result


def is_cyrillic(word: str) -> bool:
    """Whether a word is (partly) written in Cyrillic."""
    return _CYRILLIC.search(word) is not None


def search_words(text: str) -> list[tuple[str, int, int]]:
    """The words of a text as (stem, start, end), in order: what full-text search indexes and matches.

    Words are runs of letters and digits, so "Covid-19" is two words and "1.5" is two; the query side
    splits the same way, which keeps phrases aligned. ё is folded to е, as Russian texts mix them freely.
    """
    normalised = unicodedata.normalize("NFKC", text)
    if len(normalised) != len(text):  # offsets must point into the text as given
        normalised = text
    return [
        (stem(match.group().casefold().replace("ё", "е")), match.start(), match.end())
        for match in _WORD.finditer(normalised)
    ]


def search_terms(text: str) -> list[str]:
    """The stems of a text's words, in order."""
    return [term for term, _, _ in search_words(text)]


@cache
def _stemmers() -> tuple[Stemmer.Stemmer, Stemmer.Stemmer]:
    return Stemmer.Stemmer("english"), Stemmer.Stemmer("russian")
