"""The search page in real headless Chromium: search with filters, follow a story, and stored markup stays text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from archivekit import seed_archive
from browserkit import Browser, chromium_or_skip
from webkit import serving

pytestmark = pytest.mark.slow


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    instance = Browser(chromium_or_skip(), tmp_path / "profile")
    yield instance
    instance.close()


def test_search_then_follow_a_story(browser: Browser, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    seed_archive(url)
    with serving(url) as base:
        browser.goto(base + "/")
        browser.navigating(
            "document.querySelector('input[name=q]').value = 'starlink';"
            "document.querySelector('select[name=country]').value = 'TM';"
            "document.querySelector('form.search').requestSubmit()"
        )
        assert "q=starlink" in browser.evaluate("location.search")
        assert browser.evaluate("document.querySelector('#total').textContent").startswith("2 articles")
        titles = browser.evaluate("[...document.querySelectorAll('li.result .title')].map(e => e.textContent)")
        assert sorted(titles) == ["Starlink talks in Ashgabat", "Turkmenistan and SpaceX discuss Starlink licence"]
        assert browser.evaluate("[...document.querySelectorAll('mark')].map(e => e.textContent)")[0] == "Starlink"
        assert browser.screenshot("search.png").stat().st_size > 10_000

        browser.navigating("document.querySelector('li.result a.story').click()")
        assert "/stories/" in browser.evaluate("location.pathname")
        assert browser.evaluate("document.querySelector('#outlets').textContent").endswith("2 outlets: nca, trend")
        assert browser.evaluate("document.querySelectorAll('tr.report').length") == 2
        browser.screenshot("story.png")


def test_stored_markup_never_runs(browser: Browser, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    seed_archive(url)
    with serving(url) as base:
        browser.goto(base + "/?q=ground+station")
        titles = browser.evaluate("[...document.querySelectorAll('li.result .title')].map(e => e.textContent)")
        assert any(title.startswith("<script>alert('xss')</script><img src=x") for title in titles)
        assert browser.evaluate("document.querySelectorAll('main script, main img').length") == 0
        browser.navigating("document.querySelector('li.result a[href^=\"/articles/\"]').click()")
        assert browser.evaluate("document.querySelectorAll('main script, main img, main b').length") == 0
    assert not [event for event in browser.events if event.get("method") == "Page.javascriptDialogOpening"]
