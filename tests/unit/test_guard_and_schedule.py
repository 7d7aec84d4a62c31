"""The address policy on every form an address can take, gzip members, and when a feed is polled next."""

from __future__ import annotations

import gzip
import ipaddress
from datetime import UTC, datetime, timedelta

import pytest

from monitor.pipeline.fetch import _Decoder
from monitor.pipeline.guard import AddressPolicy
from monitor.pipeline.schedule import BACKOFF_CEILING, failure_backoff, interval_from_rate


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("100.64.0.1", "a reserved address"),
        ("224.0.0.1", "a multicast address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address inside ::ffff:7f00:1"),
        ("2002:7f00:1::", "a loopback address inside 2002:7f00:1::"),
        ("64:ff9b::a9fe:a9fe", "a link-local address inside 64:ff9b::a9fe:a9fe"),
        ("::127.0.0.1", "a loopback address inside ::7f00:1"),
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
    ],
)
def test_every_form_of_a_private_address_is_refused(address: str, refused: str | None) -> None:
    assert AddressPolicy().refusal(ipaddress.ip_address(address)) == refused


def test_allowed_networks_let_only_themselves_through() -> None:
    policy = AddressPolicy.from_setting("10.1.0.0/16, 127.0.0.2/32")

    assert policy.refusal(ipaddress.ip_address("10.1.9.9")) is None
    assert policy.refusal(ipaddress.ip_address("127.0.0.2")) is None
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) == "a loopback address"
    assert AddressPolicy.from_setting("1").refusal(ipaddress.ip_address("127.0.0.1")) is None
    with pytest.raises(ValueError, match="comma-separated list of networks"):
        AddressPolicy.from_setting("the office")


def test_a_gzip_body_of_several_members_is_read_whole() -> None:
    body = gzip.compress(b"<rss>first half ") + gzip.compress(b"second half</rss>")

    decoder = _Decoder("gzip")

    assert decoder.feed(body, 1000) + decoder.feed(b"", 1000) == b"<rss>first half second half</rss>"


NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_items_dated_ahead_count_as_new_not_as_silence() -> None:
    # A UTC+5 outlet labelling local times as GMT: its latest items look five hours ahead.
    dates = [NOW + timedelta(hours=5) - n * 10 * MINUTE for n in range(20)]

    interval = interval_from_rate(dates, now=NOW, minimum=15 * MINUTE, maximum=timedelta(hours=6))

    assert interval < timedelta(hours=1)


def test_busy_feeds_are_polled_sooner_than_quiet_ones_within_bounds() -> None:
    busy = [NOW - n * 5 * MINUTE for n in range(10)]
    quiet = [NOW - n * timedelta(hours=8) for n in range(10)]
    bounds = {"now": NOW, "minimum": 15 * MINUTE, "maximum": timedelta(hours=6)}

    assert interval_from_rate(busy, **bounds) == 15 * MINUTE  # type: ignore[arg-type]
    assert interval_from_rate(quiet, **bounds) == timedelta(hours=4)  # type: ignore[arg-type]
    assert interval_from_rate([NOW - timedelta(days=30)], **bounds) == timedelta(hours=6)  # type: ignore[arg-type]


def test_a_huge_retry_after_is_capped_so_the_feed_recovers() -> None:
    delay = failure_backoff(minimum=15 * MINUTE, failures=1, retry_after=timedelta(days=365), jitter=0)

    assert delay == BACKOFF_CEILING
