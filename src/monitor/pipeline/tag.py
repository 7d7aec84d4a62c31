"""Watchlist matcher: one Aho-Corasick automaton over every alias, then word boundaries and context rules.

Text and aliases are compared after the same normalisation — NFKC, case-folding, one apostrophe and one
dash — so "OʻZBEKISTON", "O'zbekiston" and "o’zbekiston" are one word. An alias ending in `*` is a stem
that takes any word ending (Казахстана, Казахстане, Кыргызстанда); other aliases match whole words,
English ones with an optional plural or possessive. Demonyms are weak: "Iraqi Turkmen", "Afghan Tajiks",
"ethnic Kazakhs in Xinjiang" name peoples, not states, and do not tag the state by themselves.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import ahocorasick_rs

from monitor.model import Mention, TagMatch
from monitor.settings import TagConfig

# Every apostrophe-like and dash-like character a keyboard or a CMS produces, folded to one of each.
_APOSTROPHES = "ʻʼ’‘`´ʹʽ′"
_DASHES = "‐‑‒–—―−﹘﹣－"
_FOLD = str.maketrans({**{c: "'" for c in _APOSTROPHES}, **{c: "-" for c in _DASHES}})
_WORD_APOSTROPHES = frozenset("'" + _APOSTROPHES)

TITLE_WEIGHT = 3.0
LEAD_WEIGHT = 2.0
BODY_WEIGHT = 1.0
LEAD_CHARS = 600
SHORT_NAME = 4  # aliases this short must be written as a name
SNIPPET_BEFORE = 90
SNIPPET_AFTER = 150

# Where an ethnic name is about a people living outside the five states, not about a state. These read
# only the words right next to a weak alias (a demonym), so "Kazakh grain sold to China" keeps its tag.
_FOREIGN = (
    r"iraq\w*|iran\w*|afghan\w*|xinjiang|china|chinese|syria\w*|turk(?!m)\w*|mongolia\w*|pakistan\w*|kirkuk|"
    r"urumqi|wakhan|kashgar|tashkurgan|golestan|mosul|kunduz|balkh|jowzjan|faryab|takhar|herat|kabul|"
    r"mazar-i-sharif|mazar|ирак\w*|иран\w*|афган\w*|синьцзян\w*|китa\w*|китай\w*|сири\w*|турц\w*|турецк\w*|"
    r"монгол\w*|пакистан\w*|afg[\'ʻʼ’‘`´]on\w*|xitoy\w*|eron\w*|iroq\w*|turkiya\w*"
)
_DIRECTION = r"northern|southern|western|eastern|north-eastern|north-western|северн\w*|южн\w*|shimolidagi|janubidagi"
_PEOPLE = (
    r"community|communities|minority|minorities|tribes?|nomads|herders|diaspora|villagers|population|refugees|"
    r"община|общины|общин\w*|племена|племен\w*|диаспор\w*|меньшинств\w*|кочевник\w*"
)
_PLACED = r"of|in|from|living in|в|из|на\s+(?:север|юг|запад|восток)\w*"
_TRAP_BEFORE = re.compile(
    r"(?:^|[^\w'-])по-$"  # по-таджикски: the language, spoken anywhere
    r"|(?:^|\W)(?:ethnic|этническ\w*)\s+$"
    rf"|(?:^|\W)(?:{_FOREIGN})(?:'s)?\s+(?:(?:{_DIRECTION})\s+)?$"
)
_TRAP_AFTER = re.compile(
    rf"\W+(?:(?:{_PEOPLE})\W+)?(?:origin\W+)?(?:{_PLACED})\W+(?:the\W+)?"
    rf"(?:(?:{_DIRECTION})\W+)?(?:{_FOREIGN})\b"
    rf"|(?:\W+(?:and|и)\W+\w+)?\W+(?:{_PEOPLE})\b[^.;!?]{{0,60}}?\b(?:{_FOREIGN})"
    # Russian genitive right after the people: "Туркмены Ирана", "Казахи Монголии".
    r"|\s+(?:ирана|ирака|афганистана|монголии|китая|синьцзяна|сирии|турции|пакистана)\b"
)
# A name inside a foreign proper name: Kizilsu Kyrgyz Autonomous Prefecture (China).
_FOREIGN_NAME_AFTER = re.compile(r"\W+(?:autonomous|автономн\w*)\b")


def normalise(text: str) -> str:
    """An alias as the matcher stores it: NFKC, case-folded, apostrophes and dashes unified."""
    return unicodedata.normalize("NFKC", text.translate(_FOLD)).casefold()


def _fold(text: str) -> str:
    # Text is only NFKC-normalised and case-folded: unifying its apostrophes and dashes would cost a pass
    # over every character, so the automaton holds each alias in every apostrophe and dash spelling instead.
    return unicodedata.normalize("NFKC", text).casefold()


def _spellings(key: str) -> list[str]:
    """Every spelling of key with each apostrophe or dash written as any of its variants."""
    spellings = [""]
    for char in key:
        options = ("'" + _APOSTROPHES) if char == "'" else ("-" + _DASHES) if char == "-" else char
        spellings = [done + option for done in spellings for option in options]
    return [unicodedata.normalize("NFKC", spelling).casefold() for spelling in spellings]


@dataclass(frozen=True, slots=True)
class _Alias:
    tag: int
    key: str
    stem: bool
    weak: bool
    plural: bool


class Tagger:
    """A compiled watchlist; build once, use for every article."""

    def __init__(self, tags: Sequence[TagConfig]) -> None:
        self.tags = tuple(tags)
        self.fingerprint = _fingerprint(self.tags)
        entries: dict[str, list[_Alias]] = {}
        for index, tag in enumerate(self.tags):
            for weak, table in ((False, tag.aliases), (True, tag.demonyms)):
                for language, names in table.items():
                    for alias in names:
                        key = normalise(alias.rstrip("*").strip())
                        if not key:
                            continue
                        for spelling in dict.fromkeys(_spellings(key)):
                            entry = _Alias(index, spelling, alias.endswith("*"), weak, language == "en")
                            entries.setdefault(spelling, []).append(entry)
        self._keys = list(entries)
        self._aliases = [tuple(entries[key]) for key in self._keys]
        # Overlapping matches: a longer alias rejected at a word boundary must not hide a shorter one.
        self._automaton = ahocorasick_rs.AhoCorasick(self._keys) if self._keys else None

    def tag(self, text: str, *, title: str | None = None) -> list[TagMatch]:
        """The watchlist tags of an article (title optional), strongest first."""
        found: dict[int, list[tuple[Mention, float]]] = {}
        if title:
            for tag_index, mention in self._mentions(title, in_title=True):
                found.setdefault(tag_index, []).append((mention, TITLE_WEIGHT))
        lead = _lead_end(text)
        for tag_index, mention in self._mentions(text, in_title=False):
            weight = LEAD_WEIGHT if mention.start < lead else BODY_WEIGHT
            found.setdefault(tag_index, []).append((mention, weight))
        results = []
        for tag_index, hits in found.items():
            tag = self.tags[tag_index]
            # The snippet shows the first mention in the body: the title is shown beside it anyway.
            first = next((m for m, _ in hits if not m.in_title), hits[0][0])
            source = title if first.in_title and title else text
            results.append(
                TagMatch(
                    id=tag.id,
                    kind=tag.kind,
                    name=tag.name,
                    count=len(hits),
                    score=round(sum(weight for _, weight in hits), 2),
                    mentions=tuple(m for m, _ in hits),
                    snippet=_snippet(source, first),
                )
            )
        results.sort(key=lambda r: (-r.score, r.id))
        return results

    def _mentions(self, text: str, *, in_title: bool) -> Iterable[tuple[int, Mention]]:
        if self._automaton is None or not text:
            return []
        folded, offsets = _fold_with_offsets(text)
        candidates: list[tuple[int, int, _Alias, bool]] = []
        for key_index, start, key_end in self._automaton.find_matches_as_indexes(folded, overlapping=True):
            if start > 0 and _is_word_char(folded[start - 1]):
                continue
            for alias in self._aliases[key_index]:
                end = _word_end(folded, key_end, alias)
                if end is None:
                    continue
                if _FOREIGN_NAME_AFTER.match(folded, end):
                    continue
                trapped = alias.weak and _foreign_people(folded, start, end)
                candidates.append((start, end, alias, trapped))
        # Once a text places a people abroad ("Iraqi Turkmen ..."), its later bare "the Turkmen" mean them
        # too: a weak alias then counts only next to a strong one of the same tag.
        strong = {alias.tag for _, _, alias, _ in candidates if not alias.weak}
        abroad = {alias.tag for _, _, alias, trapped in candidates if trapped} - strong
        # Leftmost-longest: "Republic of Kazakhstan" is one mention, not two.
        candidates.sort(key=lambda c: (c[0], -(c[1] - c[0]), c[2].weak))
        chosen: list[tuple[int, Mention]] = []
        covered_until = -1
        for start, end, alias, trapped in candidates:
            if start < covered_until:
                continue
            covered_until = end
            if trapped or (alias.weak and alias.tag in abroad):
                continue
            original_start, original_end = offsets(start), offsets(end)
            if (
                len(alias.key) <= SHORT_NAME
                and alias.key.isalpha()
                and not _looks_like_a_name(text[original_start:original_end])
            ):
                continue
            mention = Mention(text[original_start:original_end], original_start, original_end, in_title)
            chosen.append((alias.tag, mention))
        return chosen


def _looks_like_a_name(word: str) -> bool:
    # Short place names (Osh, Ош, Мары) are also common words and acronyms: "OSH regulations", "Uzbek osh".
    # Written as a name — capital first, not all capitals — they are the place.
    return word[:1].isupper() and not (len(word) > 1 and word.isupper())


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char in _WORD_APOSTROPHES


def _word_end(folded: str, end: int, alias: _Alias) -> int | None:
    """Where the matched word ends, or None when the alias only matched inside a longer word."""
    length = len(folded)
    if alias.stem:
        while end < length and (folded[end].isalnum() or _inner_apostrophe(folded, end)):
            end += 1
        return end
    if end < length and folded[end].isalnum():
        if alias.plural and folded[end] == "s" and not (end + 1 < length and folded[end + 1].isalnum()):
            return end + 1
        return None
    if end + 1 < length and folded[end] in _WORD_APOSTROPHES and folded[end + 1].isalnum():
        if alias.plural and folded[end + 1] == "s" and not (end + 2 < length and folded[end + 2].isalnum()):
            return end + 2  # possessive: Starlink's
        return None  # inside a word such as an Uzbek O'zbekiston written with another stem
    return end


def _inner_apostrophe(folded: str, index: int) -> bool:
    return folded[index] in _WORD_APOSTROPHES and index + 1 < len(folded) and folded[index + 1].isalpha()


def _foreign_people(folded: str, start: int, end: int) -> bool:
    before = folded[max(0, start - 60) : start]
    return bool(_TRAP_BEFORE.search(before) or _TRAP_AFTER.match(folded, end, end + 120))


def _fold_with_offsets(text: str) -> tuple[str, Callable[[int], int]]:
    """The folded text, and a map from an index in it back to the original text."""
    if text.isascii():  # NFKC leaves ASCII as it is, and case-folding it is lower-casing
        return text.lower(), lambda index: index
    folded = _fold(text)
    if len(folded) == len(text):
        return folded, lambda index: index
    table = {ord(char): _fold(char) for char in set(text)}
    if text.translate(table) == folded:
        # Every character folds on its own: only those that fold into more or fewer characters (ß -> ss,
        # … -> ...) move the offsets; find where they are and step over them.
        uneven = "".join(chr(code) for code, piece in table.items() if len(piece) != 1)
        return folded, _offsets_over(text, table, re.compile("[" + re.escape(uneven) + "]"))
    # Rare: a decomposed letter (u + combining diaeresis) composed into one. Fold a base character with
    # its combining marks as a unit, to keep offsets.
    pieces: list[str] = []
    starts: list[int] = []
    cluster_start = 0
    for position in range(1, len(text) + 1):
        if position < len(text) and unicodedata.combining(text[position]):
            continue
        piece = _fold(text[cluster_start:position])
        pieces.append(piece)
        starts.extend([cluster_start] * len(piece))
        cluster_start = position
    starts.append(len(text))
    return "".join(pieces), lambda index: starts[min(index, len(starts) - 1)]


def _offsets_over(text: str, table: dict[int, str], uneven: re.Pattern[str]) -> Callable[[int], int]:
    """Folded index -> original index, where the characters `uneven` finds fold into other than one."""
    folded_starts: list[int] = []  # where each uneven character's folding starts in the folded text
    originals: list[int] = []  # and where the character is in the original
    widths: list[int] = []
    shift = 0
    for match in uneven.finditer(text):
        width = len(table[ord(match.group())])
        folded_starts.append(match.start() + shift)
        originals.append(match.start())
        widths.append(width)
        shift += width - 1

    def original(index: int) -> int:
        at = bisect.bisect_right(folded_starts, index) - 1
        if at < 0:
            return index
        past = index - folded_starts[at] - widths[at]
        # Inside a character's folding (the second s of ß): that character.
        return originals[at] if past < 0 else originals[at] + 1 + past

    return original


def _lead_end(text: str) -> int:
    paragraph = text.find("\n")
    return min(paragraph if paragraph > 0 else len(text), LEAD_CHARS)


def _snippet(text: str, mention: Mention) -> str:
    start = max(0, mention.start - SNIPPET_BEFORE)
    end = min(len(text), mention.end + SNIPPET_AFTER)
    if start > 0:
        space = text.find(" ", start, mention.start)
        start = space + 1 if space != -1 else start
    if end < len(text):
        space = text.rfind(" ", mention.end, end)
        end = space if space != -1 else end
    body = " ".join(text[start:end].split())
    return ("…" if start > 0 else "") + body + ("…" if end < len(text) else "")


def _fingerprint(tags: Sequence[TagConfig]) -> str:
    digest = hashlib.sha256()
    for tag in tags:
        digest.update(tag.model_dump_json().encode())
    return digest.hexdigest()[:16]
