"""robots.txt rules per site (RFC 9309), parsed by protego and cached for a bounded time and number of sites."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

from protego import Protego

# RFC 9309 2.4: a cached robots.txt should not be used for more than 24 hours.
TTL_OK = 24 * 3600.0
# An unreachable robots.txt means "disallow everything" (RFC 9309 2.3.1.4), but only for a while.
TTL_UNREACHABLE = 15 * 60.0
MAX_SITES = 2048
MAX_CRAWL_DELAY = 30.0


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """What one site's robots.txt says; None rules means everything is allowed."""

    rules: Protego | None
    disallow_all: bool = False

    def allows(self, url: str, user_agent: str) -> bool:
        """True when user_agent may fetch url."""
        if self.disallow_all:
            return False
        return self.rules is None or bool(self.rules.can_fetch(url, user_agent))

    def crawl_delay(self, user_agent: str) -> float | None:
        """The site's Crawl-delay for user_agent, capped; None when it sets none."""
        if self.rules is None:
            return None
        delay = self.rules.crawl_delay(user_agent)
        return min(float(delay), MAX_CRAWL_DELAY) if delay else None


ALLOW_ALL = RobotsRules(None)
DISALLOW_ALL = RobotsRules(None, disallow_all=True)


def rules_from_response(status: int | None, body: bytes) -> tuple[RobotsRules, float]:
    """Rules and cache lifetime for a robots.txt answer (status None: the site could not be reached)."""
    if status is not None and 200 <= status < 300:
        return RobotsRules(Protego.parse(body.decode("utf-8", errors="replace"))), TTL_OK
    if status is not None and 400 <= status < 500:
        # RFC 9309 2.3.1.3: "unavailable" (4xx) means no restrictions.
        return ALLOW_ALL, TTL_OK
    return DISALLOW_ALL, TTL_UNREACHABLE


def robots_url(url: str) -> str:
    """The robots.txt URL governing url."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/robots.txt"


class RobotsCache:
    """Parsed robots.txt per site (scheme + host + port), least recently used evicted."""

    def __init__(self, *, max_sites: int = MAX_SITES) -> None:
        self._entries: OrderedDict[str, tuple[RobotsRules, float]] = OrderedDict()
        self._max_sites = max_sites

    def get(self, url: str) -> RobotsRules | None:
        """Cached rules for url's site, or None when unknown or expired."""
        key = robots_url(url)
        entry = self._entries.get(key)
        if entry is None or entry[1] < time.monotonic():
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, url: str, rules: RobotsRules, ttl: float) -> None:
        """Remember rules for url's site for ttl seconds."""
        key = robots_url(url)
        self._entries[key] = (rules, time.monotonic() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_sites:
            self._entries.popitem(last=False)
