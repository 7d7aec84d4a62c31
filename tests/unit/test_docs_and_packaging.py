"""What a new user reads and runs: help texts, README, the shipped config and container files."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import click
import pytest
import yaml

from monitor.cli import cli
from monitor.settings import load_feeds

ROOT = Path(__file__).resolve().parents[2]


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found += _commands(command, path + " ")
        else:
            found.append((path, command))
    return found


@pytest.mark.parametrize(("name", "command"), _commands(cli), ids=lambda value: str(value))
def test_every_command_has_help_with_an_example_and_is_in_the_readme(name: str, command: click.Command) -> None:
    assert command.help is not None
    assert "Example:" in command.help, f"`monitor {name}` help has no example"
    assert f"monitor {name}" in command.help
    assert f"`monitor {name}" in (ROOT / "README.md").read_text(), f"README does not document `monitor {name}`"


def test_readme_opens_with_make_run_and_make_test() -> None:
    head = (ROOT / "README.md").read_text()[:1200]
    assert head.index("make run") < head.index("make test")


def test_shipped_config_is_valid_and_covers_the_regional_outlets() -> None:
    feeds = load_feeds(ROOT / "config")
    hosts = {urlsplit(feed.url).hostname or "" for feed in feeds}

    for domain in (
        "newscentralasia.net", "trend.az", "caspiannews.com", "business.com.tm", "timesca.com", "akipress.com",
        "24.kg", "kun.uz", "inform.kz", "asiaplustj.info", "gazeta.uz", "eurasianet.org", "rferl.org",
        "azattyq.org", "azattyk.org", "ozodi.org", "ozodlik.org", "azathabar.com",
    ):  # fmt: skip
        assert any(host == domain or host.endswith("." + domain) for host in hosts), domain
    assert len({feed.name for feed in feeds}) == len(feeds)


def test_demo_config_is_valid(tmp_path: Path) -> None:
    demo = ROOT / "src" / "monitor" / "data" / "demo" / "feeds.yaml"
    (tmp_path / "feeds.yaml").write_text(demo.read_text().replace("{{BASE}}", "http://127.0.0.1:1"))

    assert [feed.kind for feed in load_feeds(tmp_path)] == ["rss", "rss", "atom"]


def test_compose_runs_the_worker_against_postgres() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())

    worker = compose["services"]["monitor"]
    assert worker["environment"]["MONITOR_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    web = compose["services"]["web"]
    assert web["command"][:2] == ["monitor", "serve"]
    assert web["ports"] == ["127.0.0.1:8000:8000"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "monitor run" in dockerfile
    assert "HEALTHCHECK" in dockerfile
    assert "USER " in dockerfile
