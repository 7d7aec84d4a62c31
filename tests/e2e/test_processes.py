"""Real processes: the service until SIGTERM, a poll killed mid-way and restarted, the demo."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import PAGES, FeedServer, run_cli, write_feeds
from feedbuilders import rss2

pytestmark = pytest.mark.slow
PASSED_ON = ("MONITOR_ALLOW_PRIVATE_NETWORKS", "MONITOR_HOST_DELAY")


def _monitor(*args: str, database_url: str, config_dir: Path | None = None) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "monitor", "--database-url", database_url]
    if config_dir is not None:
        argv += ["--config-dir", str(config_dir)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_") or k in PASSED_ON}
    return subprocess.Popen([*argv, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(condition: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def _count(database_url: str) -> int:
    result = run_cli("search", "--limit", "0", "--format", "jsonl", database_url=database_url)
    return len(result.stdout.splitlines()) if result.exit_code == 0 else -1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _feed_with_pages(server: FeedServer, count: int, *, slow_index: int | None = None) -> str:
    names = sorted(p.name for p in PAGES.glob("*.html"))
    items = []
    for index in range(count):
        path = f"/pages/{index}.html"
        server.add(path, (PAGES / names[index % len(names)]).read_bytes(), delay=30.0 if index == slow_index else 0.0)
        items.append(
            {
                "title": f"Item {index}",
                "link": server.url(path),
                "guid": f"item-{index}",
                "published": datetime(2026, 11, 1 + index, tzinfo=UTC),
                "summary": f"Summary {index}",
            }
        )
    return server.add("/feed.xml", rss2(items), content_type="application/rss+xml", headers={"ETag": '"v1"'})


def _healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_service_polls_serves_healthz_and_stops_on_sigterm(
    server: FeedServer, database_url: str, tmp_path: Path
) -> None:
    config = write_feeds(tmp_path / "config", [{"name": "wire", "url": _feed_with_pages(server, 3), "interval": "1m"}])
    port = _free_port()

    service = _monitor("run", "--tick", "1s", "--metrics-port", str(port), database_url=database_url, config_dir=config)
    try:
        _wait_for(lambda: _count(database_url) == 3)
        _wait_for(lambda: _healthz(port) == 200)
        time.sleep(2.5)  # several ticks pass; the feed's 1m interval keeps it from being polled again
        assert server.hits("/feed.xml") == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            exposition = response.read().decode()
        assert 'monitor_feeds_polled_total{outcome="ok"} 1.0' in exposition
        assert "monitor_articles_stored_total 3.0" in exposition
        assert "monitor_due_feeds 0.0" in exposition
    finally:
        service.send_signal(signal.SIGTERM)
        _, stderr = service.communicate(timeout=30)
    assert service.returncode == 0, stderr
    assert "service=stopped" in stderr


def test_killed_poll_restarts_without_duplicates_or_losses(
    server: FeedServer, database_url: str, tmp_path: Path
) -> None:
    config = write_feeds(tmp_path / "config", [{"name": "wire", "url": _feed_with_pages(server, 4, slow_index=2)}])

    poll = _monitor("poll", database_url=database_url, config_dir=config)
    # One page hangs: the process dies with the other three stored and the feed not yet recorded.
    _wait_for(lambda: server.hits("/pages/2.html") == 1 and _count(database_url) == 3)
    poll.send_signal(signal.SIGKILL)
    poll.communicate(timeout=30)
    assert _count(database_url) == 3

    server.routes["/pages/2.html"].delay = 0
    # A 304 here would lose the remaining items: the validators must not have advanced.
    again = run_cli("poll", "--all", database_url=database_url, config_dir=config)

    assert "not-modified" not in again.stdout
    assert _count(database_url) == 4
    titles = [
        json.loads(line)["title"]
        for line in run_cli(
            "search", "--limit", "0", "--format", "jsonl", database_url=database_url
        ).stdout.splitlines()
    ]
    assert sorted(titles) == ["Item 0", "Item 1", "Item 2", "Item 3"]


def test_sigterm_during_a_poll_pass_stops_cleanly_and_loses_nothing(
    server: FeedServer, database_url: str, tmp_path: Path
) -> None:
    config = write_feeds(tmp_path / "config", [{"name": "wire", "url": _feed_with_pages(server, 4, slow_index=1)}])

    service = _monitor("run", "--tick", "1s", database_url=database_url, config_dir=config)
    _wait_for(lambda: server.hits("/pages/1.html") == 1 and _count(database_url) == 3)
    stopping = time.monotonic()
    service.send_signal(signal.SIGTERM)
    _, stderr = service.communicate(timeout=60)

    # It does not sit out the 30 s page: the pass stops, and the feed stays due for the next run.
    assert time.monotonic() - stopping < 15
    assert service.returncode == 0, stderr
    assert _count(database_url) == 3
    server.routes["/pages/1.html"].delay = 0
    run_cli("poll", database_url=database_url, config_dir=config)
    assert _count(database_url) == 4


def test_demo_shows_stored_articles_offline() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "demo"], capture_output=True, text=True, env=env, timeout=300
    )

    assert result.returncode == 0, result.stderr
    assert "3 feeds polled, 9 new articles" in result.stdout
    assert "3 feeds polled, 0 new articles" in result.stdout
    assert "Ashgabat hosts first round of Starlink talks with SpaceX" in result.stdout
    database = next(line.split("database: ")[1] for line in result.stdout.splitlines() if "database: " in line)
    assert _count(database.strip()) == 9
    folder = Path(database.strip().removeprefix("sqlite:///")).parent
    assert "(8 stories, as the morning email)" in result.stdout
    assert "Ashgabat hosts first round of Starlink talks" in (folder / "digest.txt").read_text() or (
        "Turkmenistan and SpaceX open talks" in (folder / "digest.txt").read_text()
    )
    assert "<mark" in (folder / "digest.html").read_text()


def test_serve_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    from archivekit import seed_archive

    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    seed_archive(url)
    port = _free_port()
    process = _monitor("serve", "--port", str(port), database_url=url)
    base = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError):
            return False

    try:
        _wait_for(answering, timeout=30)
        with urllib.request.urlopen(f"{base}/api/articles?q=starlink&country=UZ", timeout=5) as response:
            assert json.load(response)["total"] == 2
        with urllib.request.urlopen(f"{base}/", timeout=5) as response:
            assert '<form class="search"' in response.read().decode()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert f"serving http://127.0.0.1:{port}/" in stderr
