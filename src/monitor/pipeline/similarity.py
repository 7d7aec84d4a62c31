"""Event similarity: do two articles report the same event?

Regional syndication is mostly rewriting: two outlets' reports of one meeting may share a tenth of their
5-word shingles, yet they name the same people, places, organisations and figures and use the same content
words. So an article becomes a weighted bag of stemmed content words (names and figures weigh more, the
watchlist's own words, which every article on a topic shares, weigh less), and two articles are compared by
the cosine of their bags. Verbatim copies score near 1; rewrites of one event around 0.4-0.7; different
events on the same topic, sharing names but not facts, lower.

Pure functions over frozen dataclasses: the repository stores the vectors and an index of each article's
top terms, so finding candidates is an index lookup, not a scan.
"""

from __future__ import annotations

import hashlib
import math
import operator
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from importlib import resources

from monitor.model import StoryFeatures
from monitor.pipeline.stemming import stem

# Keep this many terms of an article's vector, and index it under this many of its strongest terms.
VECTOR_TERMS = 96
INDEX_TERMS = 12
# Cosine at or above which two articles report the same event, less FADE_PER_DAY for each day between them.
SAME_STORY = 0.42
FADE_PER_DAY = 0.05

TITLE_WEIGHT = 3.0  # a title word counts as this many occurrences
LEAD_WEIGHT = 2.0  # so does a word of the lead: the first LEAD_WORDS words say what happened
LEAD_WORDS = 40
NAME_BOOST = 1.5  # a capitalised word inside a sentence: a person, place or organisation
FIGURE_BOOST = 2.5  # amounts, counts, percentages, dates: the facts that tell one event from the next
TOPIC_DAMPING = 0.35  # the watchlist's own words: shared by every article on the topic
MAX_CHARS = 20_000  # the lead of a long text says what the event is

_WORD = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+(?:[-'’][^\W_]+)*")
_SENTENCE_BREAK = re.compile(r'[.!?…:;"«»“”\n]')  # in the gap before a word: it starts a sentence
_YEAR = re.compile(r"(?:19|20)\d\d")


class Vectoriser:
    """Turns title and text into StoryFeatures; build once (it holds the stemmers and word lists)."""

    def __init__(self, topic_words: Iterable[str] = ()) -> None:
        self._stopwords = _stopwords()
        self._topic = frozenset(stem(word) for phrase in topic_words for word in _words(phrase.rstrip("*")))

    def features(self, title: str, text: str) -> StoryFeatures:
        """The features of one article."""
        mass: dict[str, float] = {}
        names: Counter[str] = Counter()
        in_body: Counter[str] = Counter()
        figures: set[str] = set()
        body_words = 0
        stopwords = self._stopwords
        for part, is_title in ((title, True), (text[:MAX_CHARS], False)):
            for word, capitalised in _tokens(part):
                folded = word.casefold()
                if folded in stopwords:
                    continue
                if folded[0].isdigit():
                    if _YEAR.fullmatch(folded) or len(folded) == 1:
                        continue  # every report this year says 2026; a lone digit says nothing
                    figures.add(folded)
                    term = folded
                elif len(folded) < 2:
                    continue
                else:
                    term = stem(folded)
                    if not is_title:
                        in_body[term] += 1
                        names[term] += capitalised
                if is_title:
                    position = TITLE_WEIGHT
                else:
                    body_words += 1
                    position = LEAD_WEIGHT if body_words <= LEAD_WORDS else 1.0
                mass[term] = mass.get(term, 0.0) + position
        weights: dict[str, float] = {}
        for term, total in mass.items():
            weight = 1.0 + math.log(total)
            if term in figures:
                weight *= FIGURE_BOOST
            elif names[term] and names[term] * 2 >= in_body[term]:
                weight *= NAME_BOOST  # capitalised in at least half of its uses in the text
            if term in self._topic:
                weight *= TOPIC_DAMPING
            weights[term] = weight
        top = sorted(weights.items(), key=lambda item: (-item[1], item[0]))[:VECTOR_TERMS]
        norm = math.sqrt(sum(w * w for _, w in top)) or 1.0
        vector = {term: round(w / norm, 5) for term, w in top}
        keys = tuple(term_key(term) for term, _ in top if term not in self._topic)[:INDEX_TERMS]
        return StoryFeatures(vector=vector, keys=keys)


def similarity(a: StoryFeatures, b: StoryFeatures) -> float:
    """Cosine of two articles' vectors (both are unit length)."""
    first, second = a.vector, b.vector
    # Over the terms they share only (a set intersection, in C): the same sum as over every term. fsum:
    # exact, so the set's order (it changes with string hashing between runs) cannot move a score.
    shared = first.keys() & second.keys()
    return math.fsum(map(operator.mul, map(first.__getitem__, shared), map(second.__getitem__, shared)))


def best_story(
    new: StoryFeatures, at: datetime, candidates: Sequence[tuple[int, StoryFeatures, datetime]]
) -> int | None:
    """The story of the most similar candidate (story id, features, time), if it reports the same event.

    Similarity fades with the time between two reports: rewrites of one event follow within hours or a day
    or two, while a later report on the same subject is usually a new development.
    """
    if not new.comparable:
        return None
    best, best_score = None, SAME_STORY
    for story_id, features, when in candidates:
        if not features.comparable:
            continue
        days = abs((at - when).total_seconds()) / 86400
        score = similarity(new, features) - FADE_PER_DAY * days
        if score >= best_score:
            best, best_score = story_id, score
    return best


def term_key(term: str) -> int:
    """A stable signed 64-bit key for a term (the index column is a BIGINT)."""
    digest = hashlib.blake2b(term.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _tokens(text: str) -> Iterable[tuple[str, bool]]:
    """Words with whether each is capitalised inside a sentence (a name, not a sentence's first word)."""
    text = unicodedata.normalize("NFKC", text)
    previous_end = 0
    for match in _WORD.finditer(text):
        word = match.group()
        start = match.start()
        sentence_start = previous_end == 0 or _SENTENCE_BREAK.search(text, previous_end, start) is not None
        previous_end = match.end()
        yield word, word[0].isupper() and not sentence_start


def _words(text: str) -> Iterable[str]:
    return (match.group().casefold() for match in _WORD.finditer(unicodedata.normalize("NFKC", text)))


@cache
def _stopwords() -> frozenset[str]:
    lines = resources.files("monitor.data").joinpath("stopwords.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(word for line in lines for word in line.split("#", 1)[0].split())
