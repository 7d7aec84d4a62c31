"""The query language and the search terms, without a database."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from monitor.model import ArticleView
from monitor.output import render_articles
from monitor.pipeline.stemming import search_terms
from monitor.store.fulltext import query_facets
from monitor.store.query_syntax import (
    QuerySyntaxError,
    Term,
    parse_query,
    rank_tsquery,
    to_fts5,
    to_tsquery,
    wanted_terms,
)


def test_every_form_of_a_russian_name_is_one_term() -> None:
    forms = ["Казахстан", "Казахстана", "Казахстану", "Казахстаном", "Казахстане"]
    assert len({term for form in forms for term in search_terms(form)}) == 1
    assert len(set(search_terms("Астана Астаны Астане Астану Астаной"))) == 1


def test_short_russian_words_match_only_themselves() -> None:
    assert wanted_terms(parse_query("газ")) == (Term("газ", prefix=False),)
    assert wanted_terms(parse_query("Казахстан")) == (Term("казахста", prefix=True),)
    assert wanted_terms(parse_query("starlink")) == (Term("starlink", prefix=False),)


def test_a_word_is_normalised_on_its_own() -> None:
    # Full-width letters fold to ASCII whatever else the text holds (№ and … change its length under NFKC).
    assert search_terms("Starlink в Ｔａｓｈｋｅｎｔ, № 5…") == ["starlink", "в", "tashkent", "5"]
    assert search_terms("Ёлка и елка") == ["елк", "и", "елк"]
    assert search_terms("x" * 101 + " starlink") == ["starlink"]  # encoded data is not a word


def test_compiled_queries_carry_only_letters_and_digits() -> None:
    node = parse_query('"ground station" (starlink OR "space-x") -NEAR -*: Казахстан')
    assert to_fts5(node) == ('(("ground" + "station" AND ("starlink" OR "space" + "x") AND "казахста"*) NOT ("near"))')
    assert to_tsquery(node) == (
        "(('ground' <-> 'station') & (('starlink') | ('space' <-> 'x')) & ('казахста':*) & !('near'))"
    )
    # What a PostgreSQL rank counts: every wanted word, none excluded.
    assert rank_tsquery(node) == "'ground' | 'station' | 'starlink' | 'space' | 'x' | 'казахста':*"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "no words"),
        ("a OR", "OR needs a word"),
        ("x" * 501, "at most 500"),
        (" ".join(["w"] * 33), "at most 32"),
        ("(((a)", "without a matching ')'"),
    ],
)
def test_malformed_queries_say_what_is_wrong(query: str, message: str) -> None:
    with pytest.raises(QuerySyntaxError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_query(query)


def test_csv_cells_never_start_a_formula() -> None:
    article = ArticleView(
        id=1,
        url="https://example.org/1",
        canonical_url="https://example.org/1",
        source="trend",
        title='=HYPERLINK("http://evil.example","x")',
        published_at=None,
        fetched_at=datetime(2026, 11, 1, tzinfo=UTC),
        language="en",
        tags=(),
        story_id=None,
        also_reported_by=(),
        snippet="-2% in a week",
    )
    (row,) = csv.DictReader(io.StringIO(render_articles([article], "csv")))
    assert row["title"] == "'" + article.title
    assert row["snippet"] == "'-2% in a week"
    assert row["url"] == "https://example.org/1"


def test_query_facets_narrow_by_tags_and_a_few_months() -> None:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    recent = query_facets(tag_groups=(("TM", "UZ"), ()), since=datetime(2026, 10, 5, tzinfo=UTC), now=now)
    assert recent.groups == (("tag_tm", "tag_uz"), ("month_202610", "month_202611", "month_202612"))
    # A range open to the past has no months to list; over three years of months cost more than they narrow.
    assert query_facets(until=datetime(2026, 1, 1, tzinfo=UTC), now=now).groups == ()
    assert len(query_facets(since=datetime(2024, 11, 1, tzinfo=UTC), now=now).groups[0]) == 26
    assert query_facets(since=datetime(2023, 11, 1, tzinfo=UTC), now=now).groups == ()
