"""Which stories a digest holds and how they are grouped: by country, then topic, most relevant first."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from monitor.model import StoryView
from monitor.pipeline.tag import Tagger
from monitor.settings import SubscriptionConfig
from monitor.store.digests import StoryTag, story_tags
from monitor.store.search import ArticleQuery, search_stories

NO_COUNTRY = "Region and beyond"
# An article's fetch time is taken a moment before it is committed: one stamped just before a window's end
# may only be visible after that window was built. Windows therefore look back this far as well; the
# ledger of stories already sent keeps the overlap from repeating anything.
BOUNDARY_MARGIN = timedelta(hours=1)
NO_TOPIC = "General"


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One story as the digest shows it."""

    story_id: int
    title: str
    url: str
    source: str
    when: str  # local time of publication, e.g. "10 Feb, 09:15"
    snippet: tuple[tuple[str, bool], ...]  # the snippet in pieces: (text, is a matched mention)
    also_reported_by: tuple[str, ...]
    tags: tuple[str, ...]
    relevance: float


@dataclass(frozen=True, slots=True)
class DigestSection:
    """The stories of one country and topic."""

    country: str
    topic: str
    items: tuple[DigestItem, ...]


@dataclass(frozen=True, slots=True)
class Digest:
    """Everything one email says."""

    subscription: str
    window_start: datetime
    window_end: datetime
    timezone: str
    sections: tuple[DigestSection, ...]
    by_country: tuple[tuple[str, int], ...]
    by_topic: tuple[tuple[str, int], ...]

    @property
    def story_ids(self) -> list[int]:
        """The stories in it, in the order shown."""
        return [item.story_id for section in self.sections for item in section.items]

    @property
    def count(self) -> int:
        """How many stories."""
        return sum(len(section.items) for section in self.sections)

    @property
    def local_end(self) -> datetime:
        """The end of the window in the subscription's time zone."""
        return self.window_end.astimezone(ZoneInfo(self.timezone))


def build_digest(
    session: Session,
    subscription: SubscriptionConfig,
    *,
    start: datetime,
    end: datetime,
    tagger: Tagger | None = None,
    record: bool = True,
) -> Digest:
    """The stories with an article stored in [start, end) that match the subscription's filters and that it
    has not received before (record=False: received ones too, for a preview of the past)."""
    query = ArticleQuery(
        tags=subscription.tags,
        countries=subscription.countries,
        sources=subscription.sources,
        languages=subscription.languages,
        min_score=subscription.min_score,
        fetched_since=start - BOUNDARY_MARGIN,
        fetched_until=end,
        not_sent_to=subscription.name if record else None,
        limit=None,
    )
    stories = search_stories(session, query=query)
    tags = story_tags(session, story_ids=[s.id for s in stories])
    zone = subscription.zone
    placed: dict[tuple[str, str], list[DigestItem]] = defaultdict(list)
    countries: Counter[str] = Counter()
    topics: Counter[str] = Counter()
    # Ties go to the tag listed first in the watchlist: its order is the user's order of priority.
    rank = {tag.id: index for index, tag in enumerate(tagger.tags)} if tagger else {}
    for story in stories:
        story_tag_list = sorted(tags.get(story.id, []), key=lambda t: (-t.score, rank.get(t.id, len(rank)), t.id))
        country = next((t.name for t in story_tag_list if t.kind == "country"), NO_COUNTRY)
        topic = next((t.name for t in story_tag_list if t.kind == "topic"), NO_TOPIC)
        countries[country] += 1
        topics[topic] += 1
        placed[(country, topic)].append(_item(story, story_tag_list, subscription, zone, tagger))
    sections = [
        DigestSection(country, topic, tuple(sorted(items, key=lambda i: (-i.relevance, i.title))))
        for (country, topic), items in placed.items()
    ]
    # Countries with the most relevant news first; within a country, topics likewise; the catch-all last.
    country_rank = {c: max(i.relevance for s in sections if s.country == c for i in s.items) for c in countries}
    sections.sort(
        key=lambda s: (
            s.country == NO_COUNTRY,
            -country_rank[s.country],
            s.country,
            s.topic == NO_TOPIC,
            -s.items[0].relevance,
        )
    )
    return Digest(
        subscription=subscription.name,
        window_start=start,
        window_end=end,
        timezone=subscription.timezone,
        sections=tuple(sections),
        by_country=tuple(sorted(countries.items(), key=lambda kv: (kv[0] == NO_COUNTRY, -kv[1], kv[0]))),
        by_topic=tuple(sorted(topics.items(), key=lambda kv: (kv[0] == NO_TOPIC, -kv[1], kv[0]))),
    )


def _item(
    story: StoryView, tags: list[StoryTag], subscription: SubscriptionConfig, zone: ZoneInfo, tagger: Tagger | None
) -> DigestItem:
    wanted = set(subscription.tags) | set(subscription.countries)
    chosen = next((t for t in tags if t.id in wanted and t.snippet), None) or next((t for t in tags if t.snippet), None)
    snippet = chosen.snippet if chosen and chosen.snippet else story.snippet
    relevance = sum(t.score * (2 if t.id in wanted else 1) for t in tags) + 0.5 * (len(story.sources) - 1)
    when = (story.published_at or story.first_seen_at).astimezone(zone)
    return DigestItem(
        story_id=story.id,
        title=" ".join(story.title.split()),
        url=story.url,
        source=story.source,
        when=f"{when.day} {when:%b}, {when:%H:%M}",
        snippet=_highlighted(snippet, tagger, chosen.id if chosen else None),
        also_reported_by=tuple(s for s in story.sources if s != story.source),
        tags=tuple(t.id for t in tags),
        relevance=round(relevance, 3),
    )


def _highlighted(snippet: str, tagger: Tagger | None, tag_id: str | None) -> tuple[tuple[str, bool], ...]:
    """The snippet cut around the mentions of tag_id (of any tag when None), which the templates mark."""
    if tagger is None or not snippet:
        return ((snippet, False),)
    spans = sorted(
        (m.start, m.end) for t in tagger.tag(snippet) if tag_id is None or t.id == tag_id for m in t.mentions
    )
    parts: list[tuple[str, bool]] = []
    position = 0
    for start, end in spans:
        if start < position:
            continue
        if start > position:
            parts.append((snippet[position:start], False))
        parts.append((snippet[start:end], True))
        position = end
    if position < len(snippet):
        parts.append((snippet[position:], False))
    return tuple(parts)
