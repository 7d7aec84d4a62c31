"""The watchlist matcher: the labelled evaluation sets, and the behaviours a reader relies on."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import DATA, run_cli
from monitor.errors import ConfigError
from monitor.pipeline.tag import Tagger
from monitor.settings import DEFAULT_TAGS, load_tags

THRESHOLD = 0.97
TAG_IDS = ("KZ", "KG", "TJ", "TM", "UZ", "starlink", "spacex", "central-asia")


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger(load_tags(Path("/nonexistent")))


def _ids(tagger: Tagger, text: str, title: str | None = None) -> set[str]:
    return {match.id for match in tagger.tag(text, title=title)}


def _scores(tagger: Tagger, path: Path) -> dict[str, tuple[float, float]]:
    cases = yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]
    true_pos, false_pos, false_neg = Counter[str](), Counter[str](), Counter[str]()
    for case in cases:
        got, want = _ids(tagger, case["text"]), set(case["tags"])
        true_pos.update(got & want)
        false_pos.update(got - want)
        false_neg.update(want - got)
    return {
        tag: (
            true_pos[tag] / ((true_pos[tag] + false_pos[tag]) or 1),
            true_pos[tag] / ((true_pos[tag] + false_neg[tag]) or 1),
        )
        for tag in TAG_IDS
    }


@pytest.mark.parametrize("name", ["tagging_eval.yaml", "tagging_heldout.yaml"])
def test_precision_and_recall_per_tag_on_the_labelled_sets(tagger: Tagger, name: str) -> None:
    path = DATA / name
    if not path.exists():
        pytest.fail(f"{path} is missing")
    scores = _scores(tagger, path)
    report = ", ".join(f"{tag} P={p:.3f} R={r:.3f}" for tag, (p, r) in scores.items())
    assert all(p >= THRESHOLD and r >= THRESHOLD for p, r in scores.values()), report


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("В Казахстане, Казахстана, Казахстаном и казахстанский", {"KZ"}),
        ("Кыргызстанда жаңы мыйзам кабыл алынды", {"KG"}),
        ("OʻZBEKISTON, O'zbekiston va O‘zbekistonning", {"UZ"}),
        ("The Kazan Kremlin hosted a Tatarstan forum.", set()),
        ("Iraqi Turkmen parties in Kirkuk agreed on a list.", set()),
        ("Afghan Tajiks and Uzbeks in northern Afghanistan voted.", set()),
        ("Ethnic Kazakhs in Xinjiang face new rules.", set()),
        ("Iraqi Turkmen leaders met Turkmenistan's ambassador.", {"TM"}),
        ("The Kazakh president met Uzbekistani ministers in Astana.", {"KZ", "UZ"}),
        ("SpaceX launched a Falcon 9 from Florida.", {"spacex"}),
        ("Starlink terminals reached Iranian protesters.", {"starlink"}),
        ("C5+1 ministers met; Центральная Азия ждёт инвестиций.", {"central-asia"}),
        ("The posh hotel in Oshkosh and Mary's garden.", set()),
        ("OSH regulations were updated; Uzbek osh is cooked in a kazan.", {"UZ"}),
        ("Flights from Osh resumed.", {"KG"}),
        ("Tu\u0308rkmenistan and Тоҷикистон in decomposed form", {"TM", "TJ"}),
    ],
)
def test_matches_inflections_and_avoids_traps(tagger: Tagger, text: str, expected: set[str]) -> None:
    assert _ids(tagger, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Straße nach ﬁnal: Турция и Туркменистан, then Ashgabat.",  # letters that fold into two
        "Wait… ½ of it… ™: Туркменистан, then Ashgabat…",  # compatibility forms that fold into several
        "Cafe\u0301 Ku\u0308che: Туркменистан, then Ashgabat.",  # decomposed letters composed by folding
    ],
    ids=["expanding", "compatibility", "decomposed"],
)
def test_mentions_point_into_the_original_text(tagger: Tagger, text: str) -> None:
    (match,) = tagger.tag(text)

    assert [text[m.start : m.end] for m in match.mentions] == ["Туркменистан", "Ashgabat"]
    assert [m.text for m in match.mentions] == ["Туркменистан", "Ashgabat"]


def test_title_and_lead_weigh_more_and_the_snippet_shows_the_first_mention(tagger: Tagger) -> None:
    body = "Officials met on Monday.\n" + "Weather was mild. " * 60 + "Kazakhstan was mentioned late."
    in_title = tagger.tag(body, title="Kazakhstan signs a deal")
    late_only = tagger.tag(body)

    assert in_title[0].score == 3.0 + 1.0
    assert late_only[0].score == 1.0
    assert late_only[0].snippet.endswith("Kazakhstan was mentioned late.")
    assert in_title[0].snippet == late_only[0].snippet
    assert tagger.tag("Weather was mild.", title="Kazakhstan signs a deal")[0].snippet == "Kazakhstan signs a deal"


def test_user_topics_join_the_same_automaton(tmp_path: Path) -> None:
    default = yaml.safe_load(DEFAULT_TAGS.read_text(encoding="utf-8"))
    default["tags"].append(
        {"id": "oneweb", "kind": "topic", "name": "OneWeb", "aliases": {"en": ["OneWeb"], "ru": ["ВанВеб*"]}}
    )
    (tmp_path / "tags.yaml").write_text(yaml.safe_dump(default, allow_unicode=True), encoding="utf-8")

    tagger = Tagger(load_tags(tmp_path))

    assert _ids(tagger, "ВанВебу и OneWeb разрешили работу в Казахстане") == {"oneweb", "KZ"}
    assert tagger.fingerprint != Tagger(load_tags(Path("/nonexistent"))).fingerprint


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("  - {id: kz, kind: country, name: K, aliases: {en: [K]}}", "tags[0] (kz): a country's id is its ISO"),
        ("  - {id: X1, kind: topic, name: X, aliases: {en: [X]}}", "tags[0] (X1): a topic's or region's id"),
        ("  - {id: x, kind: person, name: X, aliases: {en: [X]}}", "tags[0] (x): kind: must be one of"),
        ("  - {id: x, kind: topic, name: X, aliases: {en: ['a*b']}}", "tags[0] (x): aliases: 'a*b': an alias"),
        ("  - {id: x, kind: topic, name: X, aliases: {en: [X]}, colour: red}", "tags[0] (x): colour: unknown key"),
    ],
)
def test_bad_watchlist_entry_is_one_line(tmp_path: Path, entry: str, message: str) -> None:
    (tmp_path / "tags.yaml").write_text("tags:\n" + entry + "\n", encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_tags(tmp_path)

    assert str(caught.value).startswith(f"{tmp_path / 'tags.yaml'}: {message}")


def test_tag_command_prints_the_contract_json() -> None:
    text = "Starlink talks in Ashgabat; в Туркменистане. SpaceX too."

    result = run_cli("--config-dir", "/nonexistent", "tag", "--format", "json", text)

    assert result.exit_code == 0, result.output
    tags = {t["id"]: t for t in json.loads(result.stdout)["tags"]}
    assert set(tags) == {"TM", "starlink", "spacex"}
    assert set(tags["TM"]) == {"id", "kind", "name", "count", "score", "mentions"}
    assert tags["TM"]["kind"] == "country"
    assert tags["TM"]["count"] == 2
    assert [(m["text"], text[m["start"] : m["end"]]) for m in tags["TM"]["mentions"]] == [
        ("Ashgabat", "Ashgabat"),
        ("Туркменистане", "Туркменистане"),
    ]


def test_tag_command_reads_standard_input() -> None:
    from click.testing import CliRunner

    from monitor.cli import cli

    result = CliRunner().invoke(cli, ["--config-dir", "/nonexistent", "tag", "-"], input="Бишкек и Ош\n")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].split()[:3] == ["KG", "country", "2"]
