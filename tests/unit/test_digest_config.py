"""digests.yaml: validated like the rest of the config, and the send time in the subscription's zone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from monitor.digest.send import latest_send_time
from monitor.errors import ConfigError
from monitor.settings import FeedConfig, SubscriptionConfig, load_digests, load_tags

GOOD = {"name": "morning", "to": ["analyst@example.org"], "at": "08:00", "timezone": "Asia/Ashgabat"}


def _write(tmp_path: Path, *subscriptions: dict[str, object]) -> Path:
    (tmp_path / "digests.yaml").write_text(yaml.safe_dump({"subscriptions": list(subscriptions)}))
    return tmp_path


def test_a_missing_file_means_no_digests(tmp_path: Path) -> None:
    assert load_digests(tmp_path) == []


def test_a_good_subscription_loads_with_defaults(tmp_path: Path) -> None:
    (subscription,) = load_digests(_write(tmp_path, {**GOOD, "countries": ["tm"]}))
    assert subscription.countries == ("TM",)
    assert (subscription.send_empty, subscription.min_score, subscription.tags) == (False, 0.0, ())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timezone": "Asia/Ashkhabad_"}, "timezone: 'Asia/Ashkhabad_' is not an IANA time zone like Asia/Ashgabat"),
        ({"at": "8am"}, "at: '8am' is not a time like 08:00"),
        ({"at": "24:00"}, "at: '24:00' is not a time like 08:00"),
        ({"to": ["analyst.example.org"]}, "to: 'analyst.example.org' is not an email address"),
        ({"to": ["a@example.org\nBcc: x@evil.org"]}, "is not an email address"),
        ({"to": []}, "to: give at least one recipient"),
        ({"colour": "blue"}, "colour: unknown key"),
        ({"name": "Morning Digest"}, "name: use lowercase letters"),
        ({"tags": ["tapi"]}, "tags: 'tapi' is not in the watchlist"),
        ({"sources": ["bbc"]}, "sources: 'bbc' is not a feed in feeds.yaml"),
    ],
)
def test_mistakes_are_one_line_naming_file_entry_and_field(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    folder = _write(tmp_path, {**GOOD, **change})
    with pytest.raises(ConfigError) as caught:
        load_digests(
            folder, tags=load_tags(Path("/nonexistent")), feeds=[FeedConfig(name="trend", url="https://t.az/rss")]
        )
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(f"{folder / 'digests.yaml'}: subscriptions[0]")
    assert message in text


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"subscriptions\[1\] \(morning\): name: duplicate of subscriptions\[0\]"):
        load_digests(_write(tmp_path, GOOD, GOOD))


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # 08:00 in Ashgabat (UTC+5) is 03:00 UTC.
        (datetime(2026, 3, 10, 2, 59, tzinfo=UTC), datetime(2026, 3, 9, 3, 0, tzinfo=UTC)),
        (datetime(2026, 3, 10, 3, 0, tzinfo=UTC), datetime(2026, 3, 10, 3, 0, tzinfo=UTC)),
        (datetime(2026, 3, 10, 23, 0, tzinfo=UTC), datetime(2026, 3, 10, 3, 0, tzinfo=UTC)),
    ],
)
def test_the_latest_send_time_is_local(now: datetime, expected: datetime) -> None:
    subscription = SubscriptionConfig.model_validate(GOOD)
    assert latest_send_time(subscription, now) == expected


def test_the_send_time_follows_daylight_saving() -> None:
    berlin = SubscriptionConfig.model_validate({**GOOD, "timezone": "Europe/Berlin"})
    winter = latest_send_time(berlin, datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    summer = latest_send_time(berlin, datetime(2026, 7, 15, 12, 0, tzinfo=UTC))
    assert (winter.hour, summer.hour) == (7, 6)  # 08:00 CET is 07:00 UTC; 08:00 CEST is 06:00 UTC


def test_a_send_time_that_does_not_exist_locally_is_never_in_the_future() -> None:
    # 02:30 does not exist in Berlin on 29 March 2026 (clocks go from 02:00 to 03:00).
    berlin = SubscriptionConfig.model_validate({**GOOD, "at": "02:30", "timezone": "Europe/Berlin"})
    for hour in range(0, 6):
        now = datetime(2026, 3, 29, hour, 0, tzinfo=UTC)
        assert latest_send_time(berlin, now) <= now
