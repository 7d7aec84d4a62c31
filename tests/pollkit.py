"""Driving poll passes from tests through the Python API, as `monitor poll --all` does."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import select

from monitor.model import FeedSummary
from monitor.pipeline.extract import Extractor
from monitor.pipeline.fetch import Fetcher, FetchLimits
from monitor.pipeline.guard import AddressPolicy
from monitor.pipeline.refresh import poll_feeds
from monitor.settings import FeedConfig
from monitor.store.db import Database
from monitor.store.schema import FetchState, Source

USER_AGENT = "monitor-tests/1.0 (fault injection and politeness; desk@example.org)"
FAST = FetchLimits(retry_base=0.01, host_delay=0)
LOOPBACK = AddressPolicy(allow_private=True)
RSS = "application/rss+xml"
Poll = Callable[..., list[FeedSummary]]
T = TypeVar("T")


def make_poll(database: Database, extractor: Extractor) -> Poll:
    """A function running one pass over the given feeds, due or not, with a fresh Fetcher."""

    def run(
        *feeds: FeedConfig, limits: FetchLimits = FAST, policy: AddressPolicy = LOOPBACK, **options: Any
    ) -> list[FeedSummary]:
        async def one_pass() -> list[FeedSummary]:
            async with Fetcher(user_agent=USER_AGENT, policy=policy, limits=limits) as fetcher:
                return await poll_feeds(
                    database, feeds=list(feeds), fetcher=fetcher, extractor=extractor, include_all=True, **options
                )

        return asyncio.run(one_pass())

    return run


def feed(name: str, url: str, **options: object) -> FeedConfig:
    """A feed entry as feeds.yaml would give it."""
    return FeedConfig.model_validate({"name": name, "url": url, "interval": "15m", **options})


def state(database: Database, name: str) -> FetchState:
    """The stored fetch state of the named feed."""
    with database.session() as session:
        return session.scalars(
            select(FetchState).join(Source, Source.id == FetchState.source_id).where(Source.name == name)
        ).one()


class FaultyExtractor(Extractor):
    """The real extraction pool, except that a page whose URL contains "/crash" kills its worker and one
    whose URL contains "/hang" never finishes: no real page does either on demand."""

    async def run_page(self, function: Callable[..., T], *args: Any) -> T:
        job = args[0] if args else None
        url = getattr(job, "page_url", "")
        if "/crash" in url:
            return await super().run_page(kill_worker)
        if "/hang" in url:
            return await super().run_page(time.sleep, 3600)
        return await super().run_page(function, *args)


def kill_worker() -> None:
    """Die the way a segfaulting parser does: no exception, no clean-up."""
    os.kill(os.getpid(), signal.SIGKILL)


def worker_pid() -> int:
    """The process id of the worker that runs this."""
    return os.getpid()
