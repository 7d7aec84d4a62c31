"""When to poll a feed next: its publishing rate on success, exponential backoff on failure."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta

WINDOW = timedelta(days=7)
# Polling twice per average gap between items catches a new item within half a gap on average.
POLLS_PER_ITEM = 2
HINT_CEILING = timedelta(hours=24)
BACKOFF_CEILING = timedelta(hours=12)


def interval_from_rate(
    published: Iterable[datetime | None],
    *,
    now: datetime,
    minimum: timedelta,
    maximum: timedelta,
) -> timedelta:
    """Poll interval from the feed's item dates: busy feeds at minimum, quiet ones up to maximum."""
    dates = [d for d in published if d is not None]
    if not dates:
        return minimum  # no dates to learn from: poll as configured
    # Items "from the future" are usually local times labelled GMT (UTC+5 outlets): count them as new now.
    recent = sorted(min(d, now) for d in dates if now - WINDOW <= d)
    if not recent:
        return maximum
    # The average gap between the recent items; a feed that only carries its last few items is as busy as
    # their spacing says, not as the week divided by their number.
    gap = (recent[-1] - recent[0]) / (len(recent) - 1) if len(recent) > 1 else WINDOW
    return min(max(gap / POLLS_PER_ITEM, minimum), maximum)


def honour_hints(interval: timedelta, *, ttl: timedelta | None, max_age: timedelta | None) -> timedelta:
    """Stretch interval to the feed's RSS <ttl> or Cache-Control max-age when those ask for longer."""
    hint = max((h for h in (ttl, max_age) if h is not None), default=None)
    if hint is None or hint <= interval:
        return interval
    return min(hint, max(HINT_CEILING, interval))


def failure_backoff(
    *, minimum: timedelta, failures: int, retry_after: timedelta | None = None, jitter: float = 0.1
) -> timedelta:
    """Wait after the failures-th failure in a row: minimum, 2x, 4x ... up to 12 h, at least Retry-After."""
    exponent = max(failures - 1, 0)
    delay = min(minimum * (2 ** min(exponent, 20)), max(BACKOFF_CEILING, minimum))
    delay = timedelta(seconds=delay.total_seconds() * (1 + random.uniform(-jitter, jitter)))
    if retry_after is not None and retry_after > delay:
        # A server asking for a year's silence gets at most the backoff ceiling: it may recover sooner.
        delay = min(retry_after, max(BACKOFF_CEILING, minimum))
    return delay
