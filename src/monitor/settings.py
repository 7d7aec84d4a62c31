"""MONITOR_* environment and config files -> validated pydantic models.

Every problem becomes one ConfigError line naming the file, the entry and the field, e.g.
``config/feeds.yaml: feeds[3] (trend): url: not an http(s) URL``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from monitor.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///data/monitor.db"
DEFAULT_USER_AGENT = "monitor/0.1 (Central Asia news monitor; set MONITOR_USER_AGENT to add your contact)"

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def parse_duration(value: str | int) -> timedelta:
    """Read ``30s``, ``15m``, ``2h``, ``1d`` (or plain seconds) as a timedelta."""
    if isinstance(value, int):
        return timedelta(seconds=value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration like 30s, 15m, 2h or 1d")
    return timedelta(seconds=int(match.group(1)) * _DURATION_UNITS[match.group(2)])


def parse_when(value: str, *, end_of_day: bool, now: datetime | None = None) -> datetime:
    """Read a day (2026-11-01: its start, or with end_of_day the next day's start), an ISO time (UTC when it
    has no zone) or an age (7d: that long before now); ValueError says what is accepted."""
    try:
        return (now or datetime.now(UTC)) - parse_duration(value)
    except ValueError:
        pass
    except OverflowError:
        raise ValueError(f"{value!r} reaches back before the year 1") from None
    try:
        if len(value) == 10:
            day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
            return day + timedelta(days=1) if end_of_day and day.year < 9999 else day
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{value!r} is not a date (2026-11-01), an ISO time (2026-11-01T08:00+05:00) or an age (7d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def is_http_url(value: str) -> bool:
    """Tell whether value is an absolute http(s) URL with a host."""
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class FeedConfig(BaseModel):
    """One source from feeds.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(max_length=100)
    url: str = Field(max_length=2048)
    title: str | None = Field(default=None, max_length=300)
    kind: Literal["rss", "atom", "sitemap"] = "rss"
    language: str | None = Field(default=None, max_length=20)
    countries: tuple[str, ...] = ()
    interval: timedelta = Field(default=timedelta(minutes=15))
    max_interval: timedelta = Field(default=timedelta(hours=6))
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError("use a lowercase slug: letters, digits, '-' and '_'")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not is_http_url(value):
            raise ValueError("not an http(s) URL")
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", value):
            raise ValueError("not a language code like en, ru or uz-Latn")
        return value

    @field_validator("countries", mode="before")
    @classmethod
    def _countries(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            for code in value:
                if not isinstance(code, str) or not re.match(r"^[A-Z]{2}$", code):
                    raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 code like KZ")
        return value

    @model_validator(mode="after")
    def _interval_range(self) -> FeedConfig:
        if self.max_interval < self.interval:
            raise ValueError("max_interval must not be shorter than interval")
        return self

    @field_validator("interval", "max_interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> Any:
        if isinstance(value, str | int | timedelta) and not isinstance(value, bool):
            interval = value if isinstance(value, timedelta) else parse_duration(value)
            if interval < timedelta(minutes=1):
                raise ValueError("must be at least 1m; outlets block clients that poll faster")
            return interval
        raise ValueError("not a duration like 15m")

    @property
    def display_title(self) -> str:
        """The outlet's title, or its name when no title is configured."""
        return self.title or self.name


class TagConfig(BaseModel):
    """One watchlist entry from tags.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(max_length=64)
    kind: Literal["country", "topic", "region"]
    name: str = Field(max_length=200)
    aliases: dict[str, tuple[str, ...]]
    demonyms: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("aliases", "demonyms")
    @classmethod
    def _alias_lists(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for language, aliases in value.items():
            if not re.match(r"^[a-z]{2,3}$", language):
                raise ValueError(f"{language!r} is not a language code like en or ru")
            for alias in aliases:
                if not alias.strip(" *") or "*" in alias.rstrip("*"):
                    raise ValueError(f"{alias!r}: an alias is text, optionally ending in one '*'")
        return value

    @model_validator(mode="after")
    def _id_shape(self) -> TagConfig:
        if self.kind == "country" and not re.match(r"^[A-Z]{2}$", self.id):
            raise ValueError("a country's id is its ISO 3166-1 alpha-2 code, like KZ")
        if self.kind != "country" and not _SLUG.match(self.id):
            raise ValueError("a topic's or region's id is a lowercase slug, like starlink")
        if not any(self.aliases.values()):
            raise ValueError("aliases: give at least one alias")
        return self


DEFAULT_TAGS = Path(__file__).with_name("data") / "tags.yaml"


def load_tags(config_dir: Path) -> list[TagConfig]:
    """The watchlist: config_dir/tags.yaml when present, else the packaged default."""
    path = config_dir / "tags.yaml"
    if not path.exists():
        path = DEFAULT_TAGS
    data = _read_yaml(path, required=True)
    if not isinstance(data, dict) or set(data) != {"tags"} or not isinstance(data["tags"], list):
        raise ConfigError(f"{path}: must be a mapping with a 'tags' list")
    return _validated(path, "tags", data["tags"], TagConfig, key="id", needs="id, kind, name and aliases")


_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class SubscriptionConfig(BaseModel):
    """One digest subscription from digests.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(max_length=100)
    to: tuple[str, ...]
    at: str = "08:00"
    timezone: str = "UTC"
    # A story matches when it has an article matching every filter given (any value within one filter).
    tags: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    min_score: float = Field(default=0.0, ge=0)
    send_empty: bool = False

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError("use lowercase letters, digits, '-' and '_' (it names the digest on the command line)")
        return value

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("give at least one recipient")
        for address in value:
            if not _EMAIL.match(address):
                raise ValueError(f"{address!r} is not an email address like analyst@example.org")
        return value

    @field_validator("at")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"{value!r} is not a time like 08:00")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone like Asia/Ashgabat") from None
        return value

    @field_validator("countries")
    @classmethod
    def _countries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(code.upper() for code in value)

    @property
    def zone(self) -> ZoneInfo:
        """The subscription's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def send_time(self) -> time:
        """The local time of day the digest is sent."""
        hour, minute = self.at.split(":")
        return time(int(hour), int(minute))


def load_digests(
    config_dir: Path, *, tags: Sequence[TagConfig] = (), feeds: Sequence[FeedConfig] = ()
) -> list[SubscriptionConfig]:
    """The subscriptions of config_dir/digests.yaml (none when the file is absent); tags and sources they
    name must exist in the watchlist and feeds.yaml when those are given."""
    path = config_dir / "digests.yaml"
    data = _read_yaml(path, required=False)
    if data is None:
        return []
    if not isinstance(data, dict) or set(data) != {"subscriptions"} or not isinstance(data["subscriptions"], list):
        raise ConfigError(f"{path}: must be a mapping with a 'subscriptions' list")
    subscriptions = _validated(
        path, "subscriptions", data["subscriptions"], SubscriptionConfig, key="name", needs="name and to"
    )
    known_tags = {tag.id for tag in tags}
    known_feeds = {feed.name for feed in feeds}
    for index, subscription in enumerate(subscriptions):
        where = f"{path}: subscriptions[{index}] ({subscription.name})"
        for tag in subscription.tags:
            if known_tags and tag not in known_tags:
                raise ConfigError(f"{where}: tags: {tag!r} is not in the watchlist ({', '.join(sorted(known_tags))})")
        for source in subscription.sources:
            if known_feeds and source not in known_feeds:
                raise ConfigError(f"{where}: sources: {source!r} is not a feed in feeds.yaml")
    return subscriptions


class Settings(BaseSettings):
    """Process-wide settings from MONITOR_* variables; flags override them."""

    model_config = SettingsConfigDict(env_prefix="MONITOR_", extra="ignore")

    config_dir: Path = Path("config")
    database_url: str = DEFAULT_DATABASE_URL
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    user_agent: str = DEFAULT_USER_AGENT
    # "1": the fetcher may reach loopback and private addresses; or a comma-separated list of networks.
    allow_private_networks: str = ""
    # Politeness towards each outlet: requests in flight per host, and seconds between their starts.
    per_host: int = Field(default=2, ge=1, le=16)
    host_delay: float = Field(default=1.0, ge=0, le=60)
    # Retries of a transient failure (timeout, 5xx, 429) within one poll, with exponential backoff.
    retries: int = Field(default=2, ge=0, le=10)
    # How far apart (by publication time) two reports of one event may be and still join one story.
    story_window: timedelta = timedelta(days=7)
    # `monitor run`: how long a worker's claim on a feed lasts unless renewed (a dead worker's feeds are
    # taken over after it), and how long SIGTERM waits for the feeds in hand before abandoning them.
    lease_ttl: timedelta = timedelta(minutes=5)
    shutdown_grace: timedelta = timedelta(seconds=10)
    log_format: Literal["text", "json"] = "text"
    # Digests: the SMTP server and the sender.
    smtp_host: str = "localhost"
    smtp_port: int | None = Field(default=None, ge=1, le=65535)  # default: 25, 587 (starttls) or 465 (ssl)
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_security: Literal["none", "starttls", "ssl"] = "starttls"
    mail_from: str = "monitor@localhost"
    # `monitor serve`: when set, every route but /healthz asks for it (Bearer, or HTTP Basic's password).
    api_token: str | None = None

    @field_validator("api_token", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        # compose passes ${MONITOR_API_TOKEN:-} through as an empty string: no token, not an empty one.
        return value.strip() or None if isinstance(value, str) else value

    @field_validator("story_window", "lease_ttl", "shutdown_grace", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return value if isinstance(value, timedelta) else parse_duration(value)

    @model_validator(mode="after")
    def _duration_ranges(self) -> Settings:
        for name, low, high in (
            ("story_window", timedelta(hours=1), timedelta(days=90)),
            ("lease_ttl", timedelta(seconds=3), timedelta(hours=6)),
            ("shutdown_grace", timedelta(0), timedelta(minutes=10)),
        ):
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"MONITOR_{name.upper()}: must be between {_human(low)} and {_human(high)}")
        return self

    @field_validator("allow_private_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        from monitor.pipeline.guard import AddressPolicy

        AddressPolicy.from_setting(value)
        return value


def _human(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from the environment, with non-None overrides from flags."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        error = exc.errors()[0]
        if not error["loc"]:  # a check across settings names its variable itself
            raise ConfigError(_friendly(error)) from None
        field = str(error["loc"][0])
        source = "--" + field.replace("_", "-") if field in given else "MONITOR_" + field.upper()
        raise ConfigError(f"{source}: {_friendly(error)}") from None


def load_feeds(config_dir: Path) -> list[FeedConfig]:
    """Read and validate feeds.yaml from config_dir; raise ConfigError on the first problem."""
    path = config_dir / "feeds.yaml"
    data = _read_yaml(path, required=True)
    if not isinstance(data, dict) or set(data) != {"feeds"}:
        extra = sorted(set(data) - {"feeds"}) if isinstance(data, dict) else []
        detail = f"unknown key {extra[0]!r}" if extra else "must be a mapping with a 'feeds' list"
        raise ConfigError(f"{path}: {detail}")
    raw_feeds = data["feeds"]
    if not isinstance(raw_feeds, list):
        raise ConfigError(f"{path}: feeds: must be a list of feeds")
    return _validated(path, "feeds", raw_feeds, FeedConfig, key="name", needs="at least name and url")


Entry = TypeVar("Entry", bound=BaseModel)


def _validated(
    path: Path, section: str, raw_entries: list[Any], model: type[Entry], *, key: str, needs: str
) -> list[Entry]:
    """Validate each entry of a config list; the first problem becomes one ConfigError line."""
    entries: list[Entry] = []
    seen: dict[object, int] = {}
    for index, raw in enumerate(raw_entries):
        where = _entry_label(path, section, index, raw, name_key=key)
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: must be a mapping with {needs}")
        try:
            entry = model.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(_validation_line(where, exc)) from None
        identity = getattr(entry, key)
        if identity in seen:
            raise ConfigError(f"{where}: {key}: duplicate of {section}[{seen[identity]}]")
        seen[identity] = index
        entries.append(entry)
    return entries


def _read_yaml(path: Path, *, required: bool) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigError(
                f"{path}: not found (point --config-dir or MONITOR_CONFIG_DIR at the folder holding it)"
            ) from None
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        position = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"{path}: {position}{exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _entry_label(path: Path, key: str, index: int, raw: Any, *, name_key: str = "name") -> str:
    name = raw.get(name_key) if isinstance(raw, dict) else None
    suffix = f" ({name})" if isinstance(name, str) and name else ""
    return f"{path}: {key}[{index}]{suffix}"


def _validation_line(where: str, exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {field + ': ' if field else ''}{_friendly(first)}{more}"


def _friendly(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"must be one of {expected}"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")
