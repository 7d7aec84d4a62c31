"""The one writer of a poll pass: articles from every feed, stored in batches of one transaction each.

A transaction per article made every page wait for the database's write lock (SQLite has one; PostgreSQL
serialises story assignment with an advisory lock) and pay a commit of its own. Here the feeds hand their
drafts to one task, which stores whatever has queued up while the previous batch was being written, up
to BATCH_SIZE, in one transaction. A feed awaits its own articles before it records its fetch, so a crash
loses at most an uncommitted batch, whose feeds have not recorded their fetch either: the next pass
fetches those entries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import partial
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from monitor.model import ArticleDraft, Stored
from monitor.store import repository, stories
from monitor.store.db import Database

log = logging.getLogger(__name__)

BATCH_SIZE = 64  # articles per transaction at most: the story lock is held while a batch is written
# How long the first draft of a batch waits for others. Pages arrive one by one, each a few milliseconds
# after the last, and the writer, faster than that, would otherwise write them a transaction each.
LINGER_SECONDS = 0.1

Outcome = Stored | Exception  # an Exception: this draft was not stored (SQLAlchemyError: the database said no)
T = TypeVar("T")


class ArticleWriter:
    """Store drafts in batches on one worker thread; use as an async context manager."""

    def __init__(
        self,
        database: Database,
        *,
        window: timedelta = stories.DEFAULT_WINDOW,
        batch_size: int = BATCH_SIZE,
        linger: float = LINGER_SECONDS,
    ) -> None:
        self.database = database
        self.window = window
        self.batch_size = batch_size
        self.linger = linger
        self.batches = 0
        self._queue: asyncio.Queue[tuple[ArticleDraft, asyncio.Future[Stored]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ArticleWriter:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def store(self, draft: ArticleDraft) -> Stored:
        """Store draft (in the next batch); raise SQLAlchemyError when the database refused it, or whatever
        else went wrong storing it (a bug), which then costs this draft only."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)
        self._queue.put_nowait((draft, future))
        # A feed that stops waiting (a stop request) leaves its draft queued: it is written all the same.
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            try:
                if self.linger and self._queue.qsize() < self.batch_size - 1:
                    await asyncio.sleep(self.linger)  # let the batch gather: a transaction per draft costs more
                while len(batch) < self.batch_size and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                outcomes: Sequence[Outcome] = await asyncio.to_thread(self._write, [d for d, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                    self._queue.task_done()
                raise
            except Exception as exc:  # _write answers for each draft; this would be a bug in it
                log.exception("articles=%d outcome=write-crashed", len(batch))
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    if isinstance(outcome, Stored):
                        future.set_result(outcome)
                    else:
                        future.set_exception(outcome)
                self._queue.task_done()

    def _write(self, drafts: Sequence[ArticleDraft]) -> list[Outcome]:
        """All drafts in one transaction; when it fails, each on its own, so that one bad draft (refused by
        the database, or tripping a bug) costs only itself."""
        self.batches += 1
        try:
            return self._in_session(partial(self._store_all, drafts))
        except Exception as exc:  # noqa: BLE001 - whatever it was, the drafts are tried one by one
            if len(drafts) == 1:
                return [_logged(exc, drafts[0])]
            log.warning("articles=%d outcome=batch-failed error=%r; storing them one by one", len(drafts), str(exc))
        outcomes: list[Outcome] = []
        for draft in drafts:
            try:
                outcomes.append(self._in_session(partial(self._store, draft)))
            except Exception as exc:  # noqa: BLE001 - this draft's outcome, handed to its feed
                outcomes.append(_logged(exc, draft))
        return outcomes

    def _in_session(self, work: Callable[[Session], T]) -> T:
        with self.database.session() as session:
            return work(session)

    def _store_all(self, drafts: Sequence[ArticleDraft], session: Session) -> list[Outcome]:
        return [self._store(draft, session) for draft in drafts]

    def _store(self, draft: ArticleDraft, session: Session) -> Stored:
        stored, article_id = repository.add_article(session, draft=draft, window=self.window)
        if stored is Stored.COPY:
            log.info("url=%s outcome=copy of_article=%s", draft.url, article_id)
        return stored


def _retrieved(future: asyncio.Future[Stored]) -> None:
    # A feed that stopped waiting never reads its outcome; asyncio would log it as never retrieved.
    if not future.cancelled():
        future.exception()


def _logged(exc: Exception, draft: ArticleDraft) -> Exception:
    if not isinstance(exc, SQLAlchemyError):  # the database's refusals are the feed's to report; a bug is ours
        log.error("url=%s outcome=store-crashed", draft.url, exc_info=exc)
    return exc
