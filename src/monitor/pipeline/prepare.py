"""One article's CPU work, from downloaded page to ArticleDraft, as one function an extraction worker runs.

Decoding, extraction, choosing between page and summary, tagging, the fingerprint, the story vector and
the search terms all happen in the worker, so the main process only moves bytes and writes rows, and the
work spreads over every core. The watchlist is pickled once, on the main side: each job carries that
Watchlist (its fingerprint and the pickled tags, some 12 KB), and a worker rebuilds the tagger only when
the fingerprint differs from the one it built last.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from monitor.model import ArticleDraft, ExtractedArticle, Extraction, ParsedEntry
from monitor.pipeline.dedupe import text_fingerprint
from monitor.pipeline.encoding import decode_html
from monitor.pipeline.extract import ExtractionError, extract_article, html_to_text
from monitor.pipeline.similarity import Vectoriser
from monitor.pipeline.tag import Tagger
from monitor.settings import TagConfig
from monitor.store import fulltext


@dataclass(frozen=True, slots=True)
class PageJob:
    """One feed entry and its downloaded page (body None when the download failed: page_error says why)."""

    entry: ParsedEntry
    canonical_url: str
    source_id: int
    feed_language: str | None
    fetched_at: datetime
    page_url: str
    body: bytes | None
    content_type: str | None = None
    page_error: str | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A draft ready to store, and how long extraction took (None when no page was extracted)."""

    draft: ArticleDraft
    extraction_seconds: float | None


class Enrichment:
    """The watchlist's tagger (None: no watchlist) and the story vectoriser that goes with it."""

    def __init__(self, tagger: Tagger | None) -> None:
        self.tagger = tagger
        self.vectoriser = story_vectoriser(tagger)

    @cached_property
    def watchlist(self) -> Watchlist:
        """What the jobs carry to the workers (pickled when first asked for: a worker never needs it)."""
        return Watchlist.of(self.tagger)


@dataclass(frozen=True, slots=True)
class Watchlist:
    """What a worker needs to rebuild an Enrichment: a key, and the watchlist's tags pickled once."""

    key: str
    tags: bytes | None

    @classmethod
    def of(cls, tagger: Tagger | None) -> Watchlist:
        if tagger is None:
            return cls("none", None)
        return cls(tagger.fingerprint, pickle.dumps(tagger.tags))

    def build(self) -> Enrichment:
        tags: Sequence[TagConfig] | None = pickle.loads(self.tags) if self.tags is not None else None
        return Enrichment(Tagger(tags) if tags is not None else None)


def story_vectoriser(tagger: Tagger | None) -> Vectoriser:
    """The story matcher's vectoriser; the watchlist's aliases are topic words, shared by a topic's events."""
    if tagger is None:
        return Vectoriser()
    return Vectoriser(alias for tag in tagger.tags for names in tag.aliases.values() for alias in names)


_built: Enrichment | None = None  # a worker's Enrichment: one at a time, so memory does not grow
_built_key = ""  # the fingerprint of the watchlist it was built from


def prepare_in_worker(job: PageJob, watchlist: Watchlist) -> Prepared:
    """prepare() in an extraction worker, with the worker's copy of the watchlist."""
    global _built, _built_key
    if _built is None or _built_key != watchlist.key:
        _built, _built_key = watchlist.build(), watchlist.key
    return prepare(job, _built)


def prepare(job: PageJob, enrichment: Enrichment) -> Prepared:
    """Extract the page (if any), choose the better of page and feed summary, and finish the draft."""
    entry = job.entry
    summary = _clean(html_to_text(entry.summary_html)) if entry.summary_html else ""
    article: ExtractedArticle | None = None
    error = job.page_error
    seconds = None
    if job.body is not None:
        began = time.monotonic()
        try:
            # The page's title, author and date are read only where the feed item lacks them.
            lacking = {"title": entry.title, "author": entry.author, "date": entry.published_at}
            fields = frozenset(field for field, value in lacking.items() if not value)
            article = extract_article(decode_html(job.body, job.content_type)[0], url=job.page_url, fields=fields)
        except ExtractionError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - any parser failure is this page's outcome
            error = f"extraction failed: {type(exc).__name__}: {exc}"
        seconds = time.monotonic() - began
    if article is not None and summary and len(article.text) < len(summary):
        # A script-rendered or paywalled page yields a scrap of navigation; the summary says more.
        error = f"page gave {len(article.text)} characters, fewer than the feed's summary"
        article = None
    if article is not None:
        extraction, text = Extraction.PAGE, _clean(article.text)
    elif summary:
        extraction, text = Extraction.FEED_SUMMARY, summary
    else:
        extraction, text = Extraction.NONE, ""
    title = _clean(entry.title or (article.title if article else None) or entry.link)
    published_at = entry.published_at or (article.published_at if article else None)
    tagger = enrichment.tagger
    tags = tuple(tagger.tag(text, title=title)) if tagger else ()
    draft = ArticleDraft(
        source_id=job.source_id,
        guid=entry.guid,
        url=entry.link,
        canonical_url=job.canonical_url,
        title=title,
        text=text,
        summary=summary or None,
        author=_clean(entry.author or (article.author if article else None)) or None,
        published_at=published_at,
        fetched_at=job.fetched_at,
        language=(article.language if article else None) or job.feed_language,
        extraction=extraction,
        extraction_error=error,
        tags=tags,
        watchlist_version=tagger.fingerprint if tagger else None,
        fingerprint=text_fingerprint(text),
        features=enrichment.vectoriser.features(title, text),
        search=fulltext.document(
            title, text, tags=[tag.id for tag in tags], when=published_at or job.fetched_at, fetched_at=job.fetched_at
        ),
    )
    return Prepared(draft, seconds)


def _clean(value: str | None) -> str:
    # NUL is legal in a feed's XML entities but not in PostgreSQL text; it never carries meaning.
    return (value or "").replace("\x00", "")
