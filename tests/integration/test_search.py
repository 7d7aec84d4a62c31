"""`monitor search` and `monitor show` over a stored archive, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json

import pytest

from archivekit import CONTRACT_FIELDS, Seed, seed_archive
from conftest import run_cli

SEEDS = [
    Seed(
        "g0",
        "trend",
        20,
        "Turkmenistan and SpaceX discuss Starlink",
        "Ashgabat hosted talks on a Starlink licence. " * 20,
        tags=("TM", "starlink"),
        tag_snippet="talks in Ashgabat",
    ),
    Seed(
        "g1",
        "nca",
        21,
        "Starlink talks in Ashgabat",
        "Officials met SpaceX representatives in Ashgabat.",
        tags=("TM",),
        tag_snippet="talks in Ashgabat",
        same_story_as="g0",
    ),
    Seed("g2", "akipress", 15, "Kyrgyzstan builds hydropower plants", "Three small plants join the grid."),
    Seed(
        "g3",
        "kazinform",
        10,
        "Казахстан расширяет спутниковый интернет",
        "Сельские школы Казахстана получат связь.",
        language="ru",
    ),
]


@pytest.fixture
def archive(database_url: str) -> str:
    seed_archive(database_url, SEEDS)
    return database_url


def _json(archive: str, *args: str) -> list[dict[str, object]]:
    result = run_cli("search", *args, "--format", "json", database_url=archive)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_json_has_the_contract_fields_newest_first(archive: str) -> None:
    articles = _json(archive)

    assert [a["source"] for a in articles] == ["nca", "trend", "akipress", "kazinform"]
    assert all(set(a) >= CONTRACT_FIELDS for a in articles)
    trend = articles[1]
    assert trend["canonical_url"] == "https://trend.example/0"
    assert trend["published_at"] == "2026-11-20T09:00:00Z"
    assert trend["tags"] == ["TM", "starlink"]
    assert trend["also_reported_by"] == ["nca"]
    assert trend["story_id"] == articles[0]["story_id"]
    assert trend["snippet"] == "talks in Ashgabat"
    assert articles[2]["snippet"] == "Three small plants join the grid."


def test_filters_combine(archive: str) -> None:
    assert [a["source"] for a in _json(archive, "--source", "trend", "--source", "akipress")] == [
        "trend",
        "akipress",
    ]
    assert [a["source"] for a in _json(archive, "--since", "2026-11-15", "--until", "2026-11-20")] == [
        "trend",
        "akipress",
    ]
    assert [a["source"] for a in _json(archive, "--country", "tm")] == ["nca", "trend"]
    assert [a["source"] for a in _json(archive, "--tag", "starlink")] == ["trend"]
    assert [a["source"] for a in _json(archive, "starlink ashgabat", "--sort", "newest")] == ["nca", "trend"]
    assert [a["source"] for a in _json(archive, "--since", "2026-11-21T00:00:00+05:00")] == ["nca"]
    assert _json(archive, "--source", "nobody") == []


def test_limit_zero_means_everything(archive: str) -> None:
    assert len(_json(archive, "--limit", "1")) == 1
    assert len(_json(archive, "--limit", "0")) == 4


def test_jsonl_csv_and_table(archive: str) -> None:
    jsonl = run_cli("search", "--format", "jsonl", database_url=archive).stdout.splitlines()
    assert [json.loads(line)["source"] for line in jsonl] == ["nca", "trend", "akipress", "kazinform"]

    rows = list(csv.DictReader(io.StringIO(run_cli("search", "--format", "csv", database_url=archive).stdout)))
    assert set(rows[0]) >= CONTRACT_FIELDS
    assert rows[1]["tags"] == "TM starlink"
    assert rows[3]["title"] == "Казахстан расширяет спутниковый интернет"

    table = run_cli("search", database_url=archive).stdout.splitlines()
    assert table[0].split()[:3] == ["id", "published", "(UTC)"]
    assert "2026-11-21 09:00" in table[1]
    assert "nca" in table[1]


def test_bad_date_is_a_usage_error(archive: str) -> None:
    result = run_cli("search", "--since", "last tuesday", database_url=archive)

    assert result.exit_code == 2
    assert "'last tuesday' is not a date" in result.stderr


def test_show_prints_text_tags_and_story(archive: str) -> None:
    trend = _json(archive, "--source", "trend")[0]

    shown = run_cli("show", str(trend["id"]), database_url=archive)

    assert shown.exit_code == 0
    assert shown.stdout.startswith("Turkmenistan and SpaceX discuss Starlink\n")
    assert "tags:         TM, starlink" in shown.stdout
    assert "also in:      nca" in shown.stdout
    assert "Ashgabat hosted talks on a Starlink licence." in shown.stdout


def test_show_unknown_id(archive: str) -> None:
    result = run_cli("show", "999999", database_url=archive)

    assert result.exit_code == 1
    assert result.stderr == "monitor: error: no article with id 999999 (list some with `monitor search`)\n"


def test_cyrillic_query_ignores_case(archive: str) -> None:
    assert [a["source"] for a in _json(archive, "казахстан")] == ["kazinform"]
    assert [a["source"] for a in _json(archive, "СЕЛЬСКИЕ")] == ["kazinform"]
