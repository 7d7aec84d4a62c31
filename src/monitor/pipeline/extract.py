"""The only trafilatura user: article HTML -> ExtractedArticle, in worker processes.

trafilatura has no timeout of its own and can hang or balloon on pathological HTML, so every page is
extracted in a pebble worker that is killed and replaced when it overruns. trafilatura never downloads:
the fetcher does, and only hands it bytes.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

import lxml.html
import trafilatura
from lxml.html import HtmlElement
from pebble import ProcessExpired, ProcessPool
from trafilatura import metadata
from trafilatura.utils import load_html

from monitor.model import ExtractedArticle
from monitor.pipeline.encoding import decode_html

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
MAX_TASKS = 10_000  # pages (or feeds) a worker handles before a fresh one takes its place
BLOCK_TAGS = ("p", "div", "br", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote")


class ExtractionError(Exception):
    """The page gave no article text; the message says why."""


PAGE_FIELDS = frozenset({"title", "author", "date"})


def extract_article(
    body: bytes | str, url: str | None = None, *, fields: AbstractSet[str] = PAGE_FIELDS
) -> ExtractedArticle:
    """Extract the text, the declared language and those of title, author and date that `fields` names,
    from one HTML page, in-process.

    trafilatura's metadata pass costs about a third of the extraction (measured on the corpus: 21.4 ms a
    page with it, 14.5 without; the text is the same), and most of that is the date (htmldate). A feed item
    usually gives the title and the date, often the author: whatever it lacks is read from the page, the
    date by that whole pass, the title and the author alone the way it reads them (meta tags, JSON-LD, then
    the page's title or byline), for about 3 ms a page.
    """
    tree = load_html(body)
    if tree is None:
        raise ExtractionError("not an HTML page")
    declared = tree.get("lang") or tree.get("{http://www.w3.org/XML/1998/namespace}lang")
    whole = "date" in fields
    found = trafilatura.bare_extraction(
        tree, url=url, with_metadata=whole, include_comments=False, favor_precision=True
    )  # it extracts from a copy of the tree, so `tree` is still the page as loaded
    document: dict[str, Any] = found.as_dict() if found is not None and not isinstance(found, dict) else {}
    text = (document.get("text") or "").strip()
    if not text:
        raise ExtractionError("no article text found on the page")
    if not whole and fields:
        document.update(_title_and_author(tree, fields))
    return ExtractedArticle(
        title=_clean(document.get("title")),
        text=text,
        author=_clean(document.get("author")),
        published_at=_day(document.get("date")),
        language=_language(document.get("language") or declared),
    )


def _title_and_author(tree: HtmlElement, fields: AbstractSet[str]) -> dict[str, str | None]:
    """The page's title and author as trafilatura.metadata.extract_metadata finds them, without the rest of
    that pass (the date above all). Same steps, same order: meta tags, then JSON-LD over them, then the
    page's title and byline where both are silent."""
    found = metadata.examine_meta(tree)
    if found.author and " " not in found.author:  # extract_metadata's rule: a one-word author is a handle
        found.author = None
    try:
        found = metadata.extract_meta_json(tree, found)
    except Exception:  # as in extract_metadata: a broken JSON-LD block leaves the meta tags
        log.debug("unreadable JSON-LD metadata", exc_info=True)
    if "title" in fields and not found.title:
        found.title = metadata.extract_title(tree)
    if "author" in fields and not found.author:
        found.author = metadata.extract_author(tree)
    found.clean_and_trim()
    return {"title": found.title, "author": found.author}


def html_to_text(fragment: str) -> str:
    """Plain text of a small HTML fragment such as a feed summary."""
    if "<" not in fragment:
        return " ".join(fragment.split())
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (ValueError, lxml.etree.ParserError):
        return " ".join(fragment.split())
    for element in root.xpath(".//script | .//style | .//noscript | .//template"):
        element.drop_tree()
    for element in root.iter(*BLOCK_TAGS):
        element.tail = " " + (element.tail or "")
    return " ".join(root.text_content().split())


class Extractor:
    """A pool of extraction workers with a hard per-page timeout."""

    def __init__(
        self, *, workers: int | None = None, timeout: float = DEFAULT_TIMEOUT, max_tasks: int = MAX_TASKS
    ) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.timeout = timeout
        self.max_tasks = max_tasks
        self._pool: ProcessPool | None = None  # set once its workers are up
        self._starting = threading.Lock()
        self._generation = 0  # close() counts up

    def __enter__(self) -> Extractor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def extract_async(self, body: bytes, *, url: str, content_type: str | None = None) -> ExtractedArticle:
        """Extract one page in a worker; raise ExtractionError on failure, timeout or crash."""
        return await self.run_page(_extract_bytes, body, url, content_type)

    async def run_page(self, function: Callable[..., T], *args: Any) -> T:
        """Run one page's work (a picklable function) in a worker; raise ExtractionError when it fails, overruns
        the timeout (the worker is killed and replaced) or its worker dies."""
        with self._failures_as_extraction_errors():
            pool = await self._running_pool()
            return await asyncio.wrap_future(pool.schedule(function, args=args, timeout=self.timeout))

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run another CPU-heavy, picklable function (feed parsing) in the same workers; its errors pass through."""
        future = (await self._running_pool()).schedule(function, args=args, timeout=self.timeout)
        try:
            return await asyncio.wrap_future(future)
        except FutureTimeout:
            raise TimeoutError(f"{function.__name__} took longer than {self.timeout:.0f}s") from None

    @contextmanager
    def _failures_as_extraction_errors(self) -> Iterator[None]:
        try:
            yield
        except FutureTimeout:
            raise ExtractionError(f"extraction took longer than {self.timeout:.0f}s") from None
        except ProcessExpired as exc:
            raise ExtractionError(f"extraction worker died ({exc})") from None
        except ExtractionError:
            raise
        except Exception as exc:  # noqa: BLE001 - any parser failure is a per-page outcome
            raise ExtractionError(f"extraction failed: {type(exc).__name__}: {exc}") from None

    def start(self) -> None:
        """Start the workers in the background, if they are not running: the forkserver takes about half a
        second to import the extraction stack, time the caller can spend fetching feeds meanwhile."""
        if self._pool is None:
            thread = threading.Thread(
                target=self._start_logged, args=(self._generation,), name="extractor-start", daemon=True
            )
            thread.start()

    def _start_logged(self, generation: int) -> None:
        try:
            self._start(generation)
        except Exception:  # the first page or feed tries again, and records its own failure
            log.exception("extraction workers did not start")

    def close(self) -> None:
        """Stop the workers."""
        with self._starting:
            self._generation += 1  # a start() whose thread has not begun yet is called off
            if self._pool is not None:
                self._pool.close()  # type: ignore[no-untyped-call]
                self._pool.join()
                self._pool = None

    async def _running_pool(self) -> ProcessPool:
        if self._pool is not None:
            return self._pool
        # Starting the workers blocks for a while: not on the event loop.
        pool = await asyncio.to_thread(self._start, self._generation)
        if pool is None:
            raise ExtractionError("the extraction workers were stopped")
        return pool

    def _start(self, generation: int) -> ProcessPool | None:
        with self._starting:  # one pool, whether start() or the first page gets here first
            if generation != self._generation:
                return None  # closed since this start was asked for: starting now would leak the workers
            if self._pool is None:
                pool = self._new_pool()
                # Asking pebble whether the pool is active starts its workers, as its first task would (a
                # task would count against a worker's max_tasks).
                if not pool.active:
                    raise RuntimeError("the extraction pool did not start")
                self._pool = pool
            return self._pool

    def _new_pool(self) -> ProcessPool:
        # forkserver: workers never inherit the scheduler's or the HTTP client's threads. The server imports
        # the extraction stack once (when it is not running yet), so a new worker starts with it.
        # max_tasks: a worker is replaced after that many tasks, so whatever trafilatura or lxml keep between
        # pages cannot pile up over months of polling (over 10,000 pages none did: see bench/README.md,
        # "Extraction workers' memory").
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["monitor.pipeline.prepare"])
        return ProcessPool(max_workers=self.workers, max_tasks=self.max_tasks, context=context)


def _extract_bytes(body: bytes, url: str, content_type: str | None) -> ExtractedArticle:
    text, _encoding = decode_html(body, content_type)
    return extract_article(text, url)


def _clean(value: str | None) -> str | None:
    if not value:
        return None
    value = " ".join(value.split())
    return value or None


def _day(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value[:10], "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def _language(value: str | None) -> str | None:
    if not value:
        return None
    primary = value.strip().replace("_", "-").split("-")[0].lower()
    return primary if 2 <= len(primary) <= 3 and primary.isalpha() else None
