"""Snippets: the lead of a text, or the passage around a search match, and where the matches are in it."""

from __future__ import annotations

from monitor.pipeline.stemming import search_words
from monitor.store.query_syntax import Term, term_matches

SNIPPET_LENGTH = 240
SCAN_CHARS = 100_000  # as far as the index reads a text (fulltext.MAX_TEXT_CHARS)
CONTEXT_BEFORE = 60  # characters shown before the first match


def lead(text: str) -> str:
    """The start of a text, flattened to one line, cut at a word within SNIPPET_LENGTH."""
    return _cut(" ".join(text.split()))


def around_match(text: str, terms: tuple[Term, ...]) -> str | None:
    """The passage around the first word of text matching one of terms, or None when none does."""
    spans = match_spans(text[:SCAN_CHARS], terms, first_only=True)
    if not spans:
        return None
    start = spans[0][0]
    if start <= CONTEXT_BEFORE:
        return lead(text)
    window = text[start - CONTEXT_BEFORE : start + 2 * SNIPPET_LENGTH]
    opening = window.find(" ")
    return "…" + _cut(" ".join(window[opening + 1 :].split()))


def match_spans(text: str, terms: tuple[Term, ...], *, first_only: bool = False) -> list[tuple[int, int]]:
    """The (start, end) of every word in text that matches one of terms, as search matched it."""
    spans = []
    for stem, start, end in search_words(text):
        if any(term_matches(term, stem) for term in terms):
            spans.append((start, end))
            if first_only:
                break
    return spans


def _cut(flat: str) -> str:
    if len(flat) <= SNIPPET_LENGTH:
        return flat
    return flat[:SNIPPET_LENGTH].rsplit(" ", 1)[0] + "…"
