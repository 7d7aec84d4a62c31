"""Frozen dataclasses passed between pipeline stages, and the closed set of fetch outcomes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta


class FetchOutcome(enum.StrEnum):
    """How one fetch ended; drives feed health and the fetch log."""

    OK = "ok"
    NOT_MODIFIED = "not-modified"
    SOFT_ERROR = "soft-error"  # transient: timeout, connection, 5xx, 429; try again later
    HARD_ERROR = "hard-error"  # the answer is wrong: 4xx, not a feed, too large
    REFUSED = "refused"  # never requested: scheme or address not allowed

    @property
    def failed(self) -> bool:
        """True for outcomes that count as a failure of the feed."""
        return self not in (FetchOutcome.OK, FetchOutcome.NOT_MODIFIED)


class Extraction(enum.StrEnum):
    """Where an article's stored text came from."""

    PAGE = "page"  # extracted from the article page
    FEED_SUMMARY = "feed-summary"  # the page failed; the feed's own summary was kept
    NONE = "none"  # neither gave text; title and link only


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One HTTP fetch: the outcome and, when OK, the body."""

    url: str
    outcome: FetchOutcome
    status: int | None = None
    body: bytes = b""
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    elapsed: float = 0.0
    attempts: int = 1
    retry_after: float | None = None  # seconds the server asked us to wait (429/503 Retry-After)
    max_age: float | None = None  # Cache-Control max-age, seconds
    permanent_redirect: str | None = None  # where every redirect hop was 301/308 to


@dataclass(frozen=True, slots=True)
class ParsedEntry:
    """One item of a feed or sitemap, independent of feedparser."""

    guid: str
    link: str
    title: str | None
    summary_html: str | None
    author: str | None
    published_at: datetime | None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A parsed feed document."""

    title: str | None
    language: str | None
    entries: tuple[ParsedEntry, ...]
    dropped: int = 0  # entries without any link: nothing to fetch or store
    warning: str | None = None  # the parser recovered from malformed input
    ttl_minutes: int | None = None  # RSS <ttl>: how long the publisher asks readers to cache the feed


@dataclass(frozen=True, slots=True)
class ExtractedArticle:
    """What the extractor found on an article page."""

    title: str | None
    text: str
    author: str | None
    published_at: datetime | None
    language: str | None


@dataclass(frozen=True, slots=True)
class FeedRef:
    """A source due for polling, with its conditional-GET state."""

    id: int
    name: str
    url: str
    kind: str
    language: str | None
    interval: timedelta  # the configured minimum
    max_interval: timedelta = timedelta(hours=6)
    etag: str | None = None
    last_modified: str | None = None
    poll_interval: timedelta | None = None  # the current adaptive interval, learnt from the feed
    failures: int = 0  # consecutive failed polls before this one


@dataclass(frozen=True, slots=True)
class Mention:
    """One alias occurrence, as offsets into the text that was tagged."""

    text: str
    start: int
    end: int
    in_title: bool = False


@dataclass(frozen=True, slots=True)
class TagMatch:
    """One tag on one text: how often, how prominently, and where first."""

    id: str
    kind: str
    name: str
    count: int
    score: float
    mentions: tuple[Mention, ...]
    snippet: str


# An article needs this many distinct content terms to be compared with others: a scrap matches anything.
MIN_STORY_TERMS = 8


@dataclass(frozen=True, slots=True)
class StoryFeatures:
    """An article as the story matcher sees it: a unit vector of weighted terms and its index keys."""

    vector: dict[str, float] = field(hash=False)
    keys: tuple[int, ...] = ()

    @property
    def comparable(self) -> bool:
        """Enough content to be compared with others."""
        return len(self.vector) >= MIN_STORY_TERMS


class Stored(enum.StrEnum):
    """What storing a draft did."""

    NEW = "new"  # a new article, in a new or an existing story
    COPY = "copy"  # its text is already stored under another URL: linked to that article
    KNOWN = "known"  # this URL or GUID was already stored (another worker got there first)


@dataclass(frozen=True, slots=True)
class Document:
    """An article as the index sees it: its terms, space separated, and its facets."""

    title: str
    body: str
    facets: str = ""


@dataclass(frozen=True, slots=True)
class ArticleDraft:
    """An article ready to store."""

    source_id: int
    guid: str
    url: str
    canonical_url: str
    title: str
    text: str
    summary: str | None
    author: str | None
    published_at: datetime | None
    fetched_at: datetime
    language: str | None
    extraction: Extraction
    extraction_error: str | None = None
    tags: tuple[TagMatch, ...] = ()
    watchlist_version: str | None = None
    fingerprint: str | None = None
    features: StoryFeatures | None = None
    search: Document | None = None  # the full-text index's terms, when the extraction worker made them


@dataclass(frozen=True, slots=True)
class FeedSummary:
    """What one refresh of one feed did, for the CLI summary and the logs."""

    name: str
    outcome: FetchOutcome
    new: int = 0
    skipped: int = 0
    failed: int = 0
    from_summary: int = 0
    error: str | None = None
    note: str | None = None  # worth telling the user even when all went well (a feed that moved)
    copies: int = 0  # entries whose text was already stored under another URL: linked to that article


@dataclass(frozen=True, slots=True)
class StoryMember:
    """Another report of an article's story, or a copy of the article itself, for `monitor show`."""

    source: str
    url: str
    title: str
    article_id: int | None  # None for a copy (the same text under another URL, not stored again)


@dataclass(frozen=True, slots=True)
class ArticleView:
    """An article as search and show present it."""

    id: int
    url: str
    canonical_url: str
    source: str
    title: str
    published_at: datetime | None
    fetched_at: datetime
    language: str | None
    tags: tuple[str, ...]
    story_id: int | None
    also_reported_by: tuple[str, ...]
    snippet: str
    author: str | None = None
    extraction: str | None = None
    extraction_error: str | None = None
    text: str | None = None
    members: tuple[StoryMember, ...] = ()  # filled in by `show`: the story's other reports and the copies

    @property
    def when(self) -> datetime:
        """The time listings sort by: publication, else fetch."""
        return self.published_at or self.fetched_at


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """A source's schedule and health, for `monitor feeds list`."""

    name: str
    title: str
    url: str  # where it is polled: the configured URL, or where it moved
    configured_url: str
    enabled: bool
    status: str  # ok | failing | unhealthy | never polled | disabled
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    last_outcome: str | None
    last_error: str | None
    consecutive_failures: int
    items_last_7_days: int
    next_poll_at: datetime | None
    poll_interval: timedelta


@dataclass(frozen=True, slots=True)
class FeedCheck:
    """What one unconditional fetch of a feed found, for `monitor feeds check` (nothing is stored)."""

    name: str
    url: str
    outcome: FetchOutcome
    status: int | None
    entries: int
    newest: datetime | None
    elapsed: float
    error: str | None = None
    warning: str | None = None
    moved_to: str | None = None


@dataclass(frozen=True, slots=True)
class StoryView:
    """A story as `monitor search --stories` presents it: its representative article and who carried it."""

    id: int
    title: str
    url: str
    source: str  # the representative article's
    representative_id: int
    first_seen_at: datetime
    published_at: datetime | None  # of the representative
    latest_at: datetime  # publication (else fetch) time of its newest article
    articles: int
    sources: tuple[str, ...]  # every outlet that carried it, copies included
    tags: tuple[str, ...]
    snippet: str
