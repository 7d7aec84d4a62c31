"""`monitor feeds list` and `monitor feeds check`: health at a glance, and a dry run against the outlets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import PAGES, FeedServer, run_cli, write_feeds
from feedbuilders import rss2


@pytest.fixture
def config(server: FeedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MONITOR_RETRIES", "0")
    recent = datetime.now(UTC) - timedelta(hours=3)
    page = server.add("/pages/napa.html", (PAGES / "abc7news.com-Napa.html").read_bytes())
    items = [{"title": "Napa", "link": page, "guid": "n", "published": recent, "summary": "Napa County."}]
    server.add("/good.xml", rss2(items), content_type="application/rss+xml")
    server.add("/down.xml", "gone", status=500)
    server.add(
        "/home.html",
        '<html><head><link rel="alternate" type="application/rss+xml" href="/good.xml"></head><body>Hi</body></html>',
    )
    return write_feeds(
        tmp_path / "config",
        [
            {"name": "good", "url": server.url("/good.xml")},
            {"name": "down", "url": server.url("/down.xml")},
            {"name": "home", "url": server.url("/home.html")},
            {"name": "off", "url": server.url("/good.xml"), "enabled": False},
        ],
    )


def _health(database_url: str, config: Path) -> dict[str, dict[str, object]]:
    result = run_cli("feeds", "list", "--format", "json", database_url=database_url, config_dir=config)
    assert result.exit_code == 0, result.output
    return {feed["name"]: feed for feed in json.loads(result.stdout)}


def test_list_shows_health_items_and_next_poll(config: Path, database_url: str) -> None:
    assert {f["status"] for f in _health(database_url, config).values()} == {"never polled", "disabled"}
    run_cli("poll", database_url=database_url, config_dir=config)

    health = _health(database_url, config)

    good, down = health["good"], health["down"]
    assert good["status"] == "ok"
    assert good["items_last_7_days"] == 1
    assert good["last_success_at"] is not None
    assert good["next_poll_at"] > good["last_attempt_at"]  # type: ignore[operator]
    assert down["status"] == "failing"
    assert down["consecutive_failures"] == 1
    assert "HTTP 500" in str(down["last_error"])
    assert health["off"]["status"] == "disabled"


def test_three_failures_in_a_row_make_a_feed_unhealthy_until_it_recovers(
    config: Path, database_url: str, server: FeedServer
) -> None:
    for _ in range(3):
        run_cli("poll", "--feed", "down", database_url=database_url, config_dir=config)
    assert _health(database_url, config)["down"]["status"] == "unhealthy"
    table = run_cli("feeds", database_url=database_url, config_dir=config).stdout
    assert "1 unhealthy" in table

    server.add("/down.xml", rss2([]), content_type="application/rss+xml")
    run_cli("poll", "--feed", "down", database_url=database_url, config_dir=config)

    recovered = _health(database_url, config)["down"]
    assert recovered["status"] == "ok"
    assert recovered["consecutive_failures"] == 0


def test_check_reports_what_each_feed_answers_and_stores_nothing(
    config: Path, server: FeedServer, tmp_path: Path
) -> None:
    database = tmp_path / "untouched.db"

    result = run_cli("feeds", "check", "--format", "json", database_url=f"sqlite:///{database}", config_dir=config)

    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert set(checks) == {"good", "down", "home"}  # enabled feeds only
    assert (checks["good"]["outcome"], checks["good"]["entries"]) == ("ok", 1)
    assert checks["down"]["outcome"] == "soft-error"
    assert checks["home"]["outcome"] == "hard-error"
    assert server.url("/good.xml") in str(checks["home"]["error"])
    assert server.hits("/pages/napa.html") == 0
    assert not database.exists()


def test_check_named_feed_as_a_table(config: Path) -> None:
    result = run_cli("feeds", "check", "--feed", "off", config_dir=config)

    assert result.exit_code == 0
    assert result.stdout.splitlines()[1].split()[:4] == ["off", "ok", "200", "1"]
    assert result.stdout.endswith("1 of 1 feeds answered with a feed (nothing was stored)\n")
