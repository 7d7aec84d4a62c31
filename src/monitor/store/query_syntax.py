"""The search query language, parsed once and compiled for SQLite FTS5 or PostgreSQL tsquery.

    starlink licence          both words (any inflection: licence, licences; Казахстан, Казахстане)
    "ground station"          the words in this order
    starlink OR spacex        either (also written |)
    starlink -spacex          the first, not the second (also NOT spacex)
    (starlink OR oneweb) Uzbekistan
                              parentheses group

Words become terms as the index's words do (pipeline/stemming.py: the Snowball stem; for Russian less a
final "н", so that every form of Казахстан is one term). A Russian term of five letters or more also
matches the words it starts (казахстанский for Казахстан); a shorter one only itself, so that газ (gas)
does not find газета (newspaper).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from monitor.errors import MonitorError
from monitor.pipeline.stemming import is_cyrillic, search_words

MAX_QUERY_CHARS = 500
MAX_TERMS = 32
PREFIX_LETTERS = 5  # a Russian term this long also matches the longer words it starts


class QuerySyntaxError(MonitorError):
    """A search query that cannot be understood; the message says where and how to fix it."""


@dataclass(frozen=True, slots=True)
class Term:
    """One stemmed word; prefix: match every indexed word that starts with it."""

    stem: str
    prefix: bool


@dataclass(frozen=True, slots=True)
class Words:
    """A word, or a phrase: these terms next to each other, in this order."""

    terms: tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class All:
    """Every part present and no excluded part."""

    parts: tuple[Node, ...]
    excluded: tuple[Node, ...] = ()


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one option present."""

    options: tuple[Node, ...]


Node = Words | All | AnyOf

_TOKEN = re.compile(
    r'\s*(?:(?P<phrase>"[^"]*")|(?P<open>\()|(?P<close>\))|(?P<bar>\|)|(?P<minus>-)(?=\S)|(?P<word>[^\s"()|]+))'
)


def parse_query(text: str) -> Node:
    """Parse a query; QuerySyntaxError names what is wrong."""
    if len(text) > MAX_QUERY_CHARS:
        raise QuerySyntaxError(f"the query is {len(text)} characters long; at most {MAX_QUERY_CHARS} are allowed")
    if text.count('"') % 2:
        raise QuerySyntaxError('the query has an unclosed quote (")')
    parser = _Parser(_tokens(text))
    node = parser.sequence(top=True)
    if node is None:
        raise QuerySyntaxError(f"the query {text!r} has no words to search for")
    if parser.terms > MAX_TERMS:
        raise QuerySyntaxError(f"the query has {parser.terms} words; at most {MAX_TERMS} are allowed")
    return node


def to_fts5(node: Node) -> str:
    """The node as an SQLite FTS5 MATCH expression over the stemmed index."""
    if isinstance(node, Words):
        return " + ".join(f'"{term.stem}"' + ("*" if term.prefix else "") for term in node.terms)
    if isinstance(node, AnyOf):
        return "(" + " OR ".join(to_fts5(option) for option in node.options) + ")"
    positive = "(" + " AND ".join(to_fts5(part) for part in node.parts) + ")"
    if not node.excluded:
        return positive
    return f"({positive} NOT ({' OR '.join(to_fts5(part) for part in node.excluded)}))"


def to_tsquery(node: Node) -> str:
    """The node as PostgreSQL tsquery text over the stemmed index (lexemes are letters and digits only)."""
    if isinstance(node, Words):
        return "(" + " <-> ".join(f"'{term.stem}'" + (":*" if term.prefix else "") for term in node.terms) + ")"
    if isinstance(node, AnyOf):
        return "(" + " | ".join(to_tsquery(option) for option in node.options) + ")"
    parts = [to_tsquery(part) for part in node.parts] + [f"!{to_tsquery(part)}" for part in node.excluded]
    return "(" + " & ".join(parts) + ")"


def rank_tsquery(node: Node) -> str:
    """The terms a match may contain, as a tsquery of alternatives: what a rank counts (an exclusion
    would make every rank near zero, a phrase's words count one by one)."""
    return " | ".join(f"'{term.stem}'" + (":*" if term.prefix else "") for term in wanted_terms(node))


def wanted_terms(node: Node) -> tuple[Term, ...]:
    """The terms a match may contain (not the excluded ones): what to highlight."""
    if isinstance(node, Words):
        return node.terms
    children = node.parts if isinstance(node, All) else node.options
    return tuple(dict.fromkeys(term for child in children for term in wanted_terms(child)))


def term_matches(term: Term, stem: str) -> bool:
    """Whether an indexed stem matches a query term."""
    return stem.startswith(term.stem) if term.prefix else stem == term.stem


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:  # only trailing blanks are left
            break
        position = match.end()
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
    return tokens


class _Parser:
    """Recursive descent over: sequence := (['-'] alternatives)+ ; alternatives := primary (OR primary)* ;
    primary := word | "phrase" | '(' sequence ')'."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.position = 0
        self.terms = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def sequence(self, *, top: bool) -> Node | None:
        parts: list[Node] = []
        excluded: list[Node] = []
        while (token := self.peek()) is not None:
            kind, value = token
            if kind == "close":
                if top:
                    raise QuerySyntaxError("the query has a ')' without a matching '('")
                break
            if _is_or(token):
                raise QuerySyntaxError(f"{value!r} needs a word on each side")
            if kind == "word" and value == "AND":  # the default; accepted for people used to it
                self.take()
                continue
            negate = kind == "minus" or (kind == "word" and value == "NOT")
            if negate:
                self.take()
                if self.peek() is None:
                    raise QuerySyntaxError(f"{value!r} at the end of the query excludes nothing")
            node = self.alternatives()
            if node is None:
                continue
            (excluded if negate else parts).append(node)
        if not parts:
            if excluded:
                raise QuerySyntaxError("the query only excludes words; add at least one word to look for")
            return None
        if len(parts) == 1 and not excluded:
            return parts[0]
        return All(tuple(parts), tuple(excluded))

    def alternatives(self) -> Node | None:
        options = [self.primary()]
        while (token := self.peek()) is not None and _is_or(token):
            self.take()
            following = self.peek()
            if following is None or following[0] in {"close", "minus"} or _is_or(following):
                raise QuerySyntaxError("OR needs a word to look for on each side (an exclusion cannot be an option)")
            options.append(self.primary())
        present = [option for option in options if option is not None]
        if not present:
            return None
        return present[0] if len(present) == 1 else AnyOf(tuple(present))

    def primary(self) -> Node | None:
        kind, value = self.take()
        if kind == "open":
            node = self.sequence(top=False)
            if self.peek() is None:
                raise QuerySyntaxError("the query has a '(' without a matching ')'")
            self.take()
            return node
        if kind == "close":
            raise QuerySyntaxError("the query has an empty '()'")
        if kind == "minus":
            raise QuerySyntaxError("'-' excludes a word from the whole query or group; it cannot follow OR or '-'")
        words = list(search_words(value.strip('"') if kind == "phrase" else value))
        if not words:
            return None  # punctuation alone
        self.terms += len(words)
        return Words(tuple(_term(stem) for stem, _, _ in words))


def _is_or(token: tuple[str, str]) -> bool:
    return token[0] == "bar" or token == ("word", "OR")


def _term(stem: str) -> Term:
    return Term(stem, prefix=len(stem) >= PREFIX_LETTERS and is_cyrillic(stem))
