"""Config validation: every mistake is one line naming file, entry and field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from conftest import run_cli
from monitor.errors import ConfigError
from monitor.settings import load_feeds, load_settings

GOOD = """\
feeds:
  - name: nca
    url: https://www.newscentralasia.net/feed/
  - name: trend
    title: Trend News Agency
    url: https://en.trend.az/rss
    kind: rss
    language: en
    countries: [AZ, TM]
    interval: 30m
    enabled: false
"""


def _write(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "feeds.yaml").write_text(text, encoding="utf-8")
    return config


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_feeds(_write(tmp_path, text))
    return str(caught.value)


def test_valid_feeds_get_defaults(tmp_path: Path) -> None:
    nca, trend = load_feeds(_write(tmp_path, GOOD))

    assert (nca.kind, nca.interval, nca.enabled, nca.display_title) == (
        "rss",
        timedelta(minutes=15),
        True,
        "nca",
    )
    assert trend.countries == ("AZ", "TM")
    assert trend.interval == timedelta(minutes=30)
    assert trend.enabled is False


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("  - name: trend\n    url: ftp://trend.az/rss\n", "feeds[2] (trend): url: not an http(s) URL"),
        ("  - url: https://x.org/feed\n", "feeds[2]: name: required"),
        ("  - name: x\n    url: https://x.org/feed\n    colour: red\n", "feeds[2] (x): colour: unknown key"),
        (
            "  - name: x\n    url: https://x.org/feed\n    kind: json\n",
            "feeds[2] (x): kind: must be one of 'rss', 'atom' or 'sitemap'",
        ),
        (
            "  - name: x\n    url: https://x.org/feed\n    interval: often\n",
            "feeds[2] (x): interval: 'often' is not a duration like 30s, 15m, 2h or 1d",
        ),
        (
            "  - name: x\n    url: https://x.org/feed\n    interval: 10s\n",
            "feeds[2] (x): interval: must be at least 1m; outlets block clients that poll faster",
        ),
        (
            "  - name: x\n    url: https://x.org/feed\n    countries: [Kazakhstan]\n",
            "feeds[2] (x): countries: 'Kazakhstan' is not an ISO 3166-1 alpha-2 code like KZ",
        ),
        (
            "  - name: Trend News\n    url: https://x.org/feed\n",
            "feeds[2] (Trend News): name: use a lowercase slug: letters, digits, '-' and '_'",
        ),
        ("  - name: nca\n    url: https://x.org/feed\n", "feeds[2] (nca): name: duplicate of feeds[0]"),
        (
            "  - name: x\n    url: https://x.org/feed\n    enabled: maybe\n",
            "feeds[2] (x): enabled: Input should be a valid boolean, unable to interpret input",
        ),
        ("  - just a string\n", "feeds[2]: must be a mapping with at least name and url"),
        (
            f"  - name: x\n    url: https://x.org/feed\n    title: {'T' * 301}\n",
            "feeds[2] (x): title: String should have at most 300 characters",
        ),
    ],
)
def test_bad_entry_names_file_entry_and_field(tmp_path: Path, entry: str, message: str) -> None:
    assert _error(tmp_path, GOOD + entry) == f"{tmp_path / 'config' / 'feeds.yaml'}: {message}"


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    message = _error(tmp_path, "feeds:\n  - name: x\n   url: [oops\n")

    assert message.startswith(f"{tmp_path / 'config' / 'feeds.yaml'}: line ")
    assert "\n" not in message


def test_top_level_must_be_a_feeds_list(tmp_path: Path) -> None:
    assert _error(tmp_path, "sources: []\n").endswith("feeds.yaml: unknown key 'sources'")
    assert _error(tmp_path, "feeds: {a: 1}\n").endswith("feeds.yaml: feeds: must be a list of feeds")


def test_missing_feeds_file_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere/feeds.yaml: not found \(point --config-dir or MONITOR_CONFIG_DIR"):
        load_feeds(tmp_path / "nowhere")


def test_environment_settings_and_flag_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_DATABASE_URL", "sqlite:///elsewhere.db")
    monkeypatch.setenv("MONITOR_CONFIG_DIR", "/etc/monitor")
    monkeypatch.setenv("MONITOR_METRICS_PORT", "9100")

    settings = load_settings(database_url="sqlite:///flag.db", config_dir=None)

    assert settings.database_url == "sqlite:///flag.db"
    assert settings.config_dir == Path("/etc/monitor")
    assert settings.metrics_port == 9100


def test_bad_environment_value_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_METRICS_PORT", "ninety")

    with pytest.raises(ConfigError, match=r"^MONITOR_METRICS_PORT: Input should be a valid integer"):
        load_settings()


def test_cli_reports_config_error_without_traceback(tmp_path: Path) -> None:
    config = _write(tmp_path, GOOD + "  - name: trend2\n    url: not-a-url\n")

    result = run_cli("poll", config_dir=config, database_url=f"sqlite:///{tmp_path}/m.db")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"monitor: error: {config / 'feeds.yaml'}: feeds[2] (trend2): url: not an http(s) URL\n"


def test_default_config_dir_is_relative_to_the_working_directory(tmp_path: Path) -> None:
    # The autouse fixture chdirs into tmp_path; the message uses the path as a user would type it.
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "feeds.yaml").write_text("feeds:\n  - name: trend\n    url: trend.az/rss\n")

    result = run_cli("poll")

    assert result.stderr == "monitor: error: config/feeds.yaml: feeds[0] (trend): url: not an http(s) URL\n"
