"""The story matcher's view of an article: what counts, what weighs more, and when two reports are one event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.model import StoryFeatures
from monitor.pipeline.similarity import SAME_STORY, Vectoriser, best_story, similarity

LEAD = (
    "Energy Minister Taalaibek Ibraev signed a $2.1 billion financing agreement for the Kambarata-1 "
    "hydropower plant with the World Bank in Bishkek on Tuesday. The 1,860 MW plant on the Naryn river "
    "will be built in two phases, the first by 2030."
)
T0 = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)


def test_inflected_russian_and_english_forms_are_one_term() -> None:
    vectoriser = Vectoriser()
    russian = vectoriser.features("Переговоры в Ашхабаде", "Делегация прибыла в Ашхабад. В Ашхабаде прошли переговоры.")
    assert "ашхабад" in russian.vector
    assert "переговор" in russian.vector
    english = vectoriser.features("Talks", "The minister signed agreements. The agreement was signed on Tuesday.")
    assert "agreement" in english.vector


def test_stopwords_and_the_current_year_say_nothing() -> None:
    vector = (
        Vectoriser().features("", "It was said that the plan of 2026 is in force, according to the ministry.").vector
    )
    assert not {"the", "said", "according", "2026", "of"} & set(vector)
    assert "ministri" in vector


def test_names_and_figures_outweigh_ordinary_words() -> None:
    vector = Vectoriser().features("", LEAD).vector
    assert vector["ibraev"] > vector["plant"] / 2  # capitalised inside a sentence: a name
    assert vector["2.1"] > vector["phase"]  # a figure, kept whole
    assert vector["1,860"] > vector["river"]


def test_watchlist_words_weigh_less_and_are_not_index_keys() -> None:
    plain = Vectoriser().features("Deal signed in Bishkek", LEAD)
    damped = Vectoriser(["Bishkek*"]).features("Deal signed in Bishkek", LEAD)
    assert damped.vector["bishkek"] < plain.vector["bishkek"] / 2
    assert len(damped.keys) == len(plain.keys)
    assert damped.keys != plain.keys


def test_a_scrap_of_text_is_never_matched() -> None:
    scrap = Vectoriser().features("Read more", "Subscribe to our channel.")
    assert not scrap.comparable
    assert best_story(scrap, T0, [(1, scrap, T0)]) is None


def test_a_rewrite_matches_and_similarity_fades_with_time() -> None:
    vectoriser = Vectoriser()
    report = vectoriser.features("Kyrgyzstan signs Kambarata-1 financing deal", LEAD)
    rewrite = vectoriser.features(
        "World Bank to lend $2.1 billion for Kambarata-1",
        "The World Bank will provide $2.1 billion for the 1,860 MW Kambarata-1 hydropower plant on the Naryn, "
        "under an agreement Energy Minister Taalaibek Ibraev signed in Bishkek. Construction runs in two phases.",
    )
    other = vectoriser.features(
        "Kyrgyz parliament approves budget", "Deputies of the Jogorku Kenesh passed the 2027 budget in Bishkek."
    )
    assert similarity(report, report) > 0.99
    assert similarity(report, rewrite) >= SAME_STORY
    assert similarity(report, other) < SAME_STORY / 2
    candidates: list[tuple[int, StoryFeatures, datetime]] = [(7, report, T0), (8, other, T0)]
    assert best_story(rewrite, T0 + timedelta(hours=5), candidates) == 7
    # The same wording three weeks later is more likely a new development than a late copy.
    assert best_story(rewrite, T0 + timedelta(days=21), candidates) is None
