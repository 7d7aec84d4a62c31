"""Snowball stemming, shared by story similarity and full-text search: Russian for Cyrillic words, else English."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import cache

import Stemmer

_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_WORD = re.compile(r"[^\W_]+")
_STEMS: dict[str, str] = {}
_STEM_CACHE_LIMIT = 200_000
MAX_WORD_CHARS = 100  # longer runs are encoded data, not words (and PostgreSQL refuses lexemes over 2 KB)


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


def search_words(text: str) -> Iterator[tuple[str, int, int]]:
    """The words of a text as (search term, start, end), in order: what full-text search indexes and matches.

    Words are runs of letters and digits, so "Covid-19" is two words and "1.5" is two; the query side
    splits the same way, which keeps phrases aligned. Each word is NFKC-normalised and casefolded on its own
    (so its offsets stay those of the text as given), ё is folded to е, as Russian texts mix them freely.
    """
    for match in _WORD.finditer(text):
        word = match.group()
        if len(word) > MAX_WORD_CHARS:
            continue
        if not word.isascii():
            word = unicodedata.normalize("NFKC", word)
        for part in _WORD.findall(word.casefold().replace("ё", "е")) if not word.isascii() else (word.lower(),):
            yield search_term(part), match.start(), match.end()


def search_term(folded: str) -> str:
    """The term full-text search keeps for a casefolded word: its stem, and for Russian less a final "н".

    Snowball stems Казахстан and Казахстана to "казахста" but Казахстане to "казахстан" (Астана: "аста",
    Астане: "астан"); dropping the "н" on both the index and the query side makes every form one term.
    """
    term = stem(folded)
    if len(term) >= 5 and term.endswith("н") and is_cyrillic(term):
        return term[:-1]
    return term


def search_terms(text: str) -> list[str]:
    """The search terms of a text's words, in order."""
    return [term for term, _, _ in search_words(text)]


@cache
def _stemmers() -> tuple[Stemmer.Stemmer, Stemmer.Stemmer]:
    return Stemmer.Stemmer("english"), Stemmer.Stemmer("russian")
