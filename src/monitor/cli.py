"""The thin command line and composition root: builds settings, database and services, calls them."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from monitor import __version__, logs
from monitor.errors import MonitorError
from monitor.output import FORMATS
from monitor.settings import (
    Settings,
    SubscriptionConfig,
    load_digests,
    load_feeds,
    load_settings,
    load_tags,
    parse_duration,
    parse_when,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from monitor.model import FeedCheck, FeedSummary
    from monitor.pipeline.tag import Tagger
    from monitor.store.db import Database

F = TypeVar("F", bound=Callable[..., Any])


def _store_override(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    # The same flag works before or after the command name: `monitor --database-url X poll` or
    # `monitor poll --database-url X`; the one closest to the command wins.
    if value:
        ctx.find_root().ensure_object(dict)[param.name] = value
    return value


def common_options(function: F) -> F:
    """Add --config-dir, --database-url and -v to a command."""
    options = [
        click.option(
            "--config-dir",
            type=click.Path(file_okay=False),
            callback=_store_override,
            expose_value=False,
            help="Folder holding feeds.yaml (default: $MONITOR_CONFIG_DIR or ./config).",
        ),
        click.option(
            "--database-url",
            callback=_store_override,
            expose_value=False,
            help="SQLAlchemy URL (default: $MONITOR_DATABASE_URL or sqlite:///data/monitor.db).",
        ),
        click.option(
            "--log-format",
            type=click.Choice(logs.FORMATS),
            callback=_store_override,
            expose_value=False,
            help="Log lines as text (default: $MONITOR_LOG_FORMAT or text) or as JSON objects, one per line.",
        ),
        click.option(
            "-v",
            "--verbose",
            count=True,
            callback=_store_override,
            expose_value=False,
            help="Log more (-v: each fetch, -vv: debug).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _settings(ctx: click.Context, *, verbosity: int = 0) -> Settings:
    """Settings from the environment and the flags; logging set up as they ask (at least verbosity)."""
    overrides = ctx.find_root().ensure_object(dict)
    logs.configure(overrides.get("verbose") or verbosity)
    settings = load_settings(
        config_dir=overrides.get("config_dir"),
        database_url=overrides.get("database_url"),
        log_format=overrides.get("log_format"),
    )
    logs.configure(overrides.get("verbose") or verbosity, fmt=settings.log_format)
    return settings


@contextmanager
def _database(settings: Settings, *, migrate: bool = True) -> Iterator[Database]:
    from monitor.store.db import open_database

    database = open_database(settings.database_url, migrate=migrate)
    try:
        yield database
    finally:
        database.dispose()


class _UserError(click.ClickException):
    """A MonitorError on its way to stderr as one line, exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"monitor: error: {self.message}", err=True)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MonitorError as exc:
            raise _UserError(str(exc)) from None
        except SQLAlchemyError as exc:
            logging.getLogger(__name__).debug("database error", exc_info=True)
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise _UserError(f"database error: {detail[0] if detail else type(exc).__name__}") from None


def _tagger(settings: Settings) -> Tagger:
    from monitor.pipeline.tag import Tagger

    return Tagger(load_tags(settings.config_dir))


def _fetcher_options(settings: Settings) -> dict[str, Any]:
    from monitor.pipeline.fetch import FetchLimits
    from monitor.pipeline.guard import AddressPolicy

    return {
        "user_agent": settings.user_agent,
        "policy": AddressPolicy.from_setting(settings.allow_private_networks),
        "limits": FetchLimits(per_host=settings.per_host, host_delay=settings.host_delay, retries=settings.retries),
    }


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="monitor")
@common_options
def cli() -> None:
    """Watch Central Asian news outlets: poll their feeds, store each article once, search the archive.

    \b
    Example:
        monitor poll --all && monitor search --since 2026-11-01
    """


@cli.group()
@common_options
def db() -> None:
    """Manage the database schema.

    \b
    Example:
        monitor db upgrade --database-url postgresql://postgres@127.0.0.1/monitor
    """


@db.command("upgrade")
@common_options
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Migrate the database to the newest schema (SQLite files are also migrated on use).

    \b
    Example:
        MONITOR_DATABASE_URL=postgresql://postgres@127.0.0.1/monitor monitor db upgrade
    """
    from monitor.store.db import upgrade

    with _database(_settings(ctx), migrate=False) as database:
        revision = upgrade(database)
        click.echo(f"{database.display_url}: schema at {revision} (newest)")


@db.command("reindex")
@common_options
@click.pass_context
def db_reindex(ctx: click.Context) -> None:
    """Rebuild the full-text search index from the stored titles and texts.

    The index is kept up to date as articles arrive, and articles missing from it (an upgraded database)
    are added at the start of every poll and by the service; rebuild it all if search seems to miss
    articles it should find.

    \b
    Example:
        monitor db reindex
    """
    from monitor.store import fulltext

    with _database(_settings(ctx)) as database:
        done = _rebuild(database, clear=fulltext.clear, count=fulltext.count_unindexed, index=fulltext.index_missing)
    click.echo(f"search index rebuilt: {done} articles")


@cli.command()
@click.option("--feed", "names", multiple=True, metavar="NAME", help="Poll this feed (repeatable), due or not.")
@click.option("--all", "include_all", is_flag=True, help="Poll every enabled feed, due or not.")
@common_options
@click.pass_context
def poll(ctx: click.Context, names: tuple[str, ...], include_all: bool) -> None:
    """Poll the feeds that are due once, store new articles and print a per-feed summary.

    Exits 0 when the pass ran, even if some feeds failed: failures are recorded against the feed.

    \b
    Example:
        monitor poll --feed trend --feed akipress
    """
    from monitor.output import render_summaries
    from monitor.pipeline.extract import Extractor
    from monitor.pipeline.fetch import Fetcher
    from monitor.pipeline.refresh import poll_feeds

    settings = _settings(ctx)
    feeds = load_feeds(settings.config_dir)

    tagger = _tagger(settings)

    async def poll_once(database: Database) -> list[FeedSummary]:
        async with Fetcher(**_fetcher_options(settings)) as fetcher:
            return await poll_feeds(
                database,
                feeds=feeds,
                fetcher=fetcher,
                extractor=extractor,
                tagger=tagger,
                names=names,
                include_all=include_all,
                story_window=settings.story_window,
            )

    with _database(settings) as database, Extractor() as extractor:
        summaries = asyncio.run(poll_once(database))
    click.echo(render_summaries(summaries), nl=False)


@cli.command()
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve /metrics and /healthz on 127.0.0.1:PORT (default: $MONITOR_METRICS_PORT; 0 or unset: off).",
)
@click.option(
    "--tick",
    default="15s",
    show_default=True,
    help="How often to claim the feeds that have come due; each feed is polled on its own interval.",
)
@common_options
@click.pass_context
def run(ctx: click.Context, metrics_port: int | None, tick: str) -> None:
    """Run the service: poll each feed on its interval, until SIGTERM or Ctrl-C.

    Several workers may share one PostgreSQL database: each due feed is polled by one of them, and the
    feeds of a worker that dies are taken over once its leases expire (MONITOR_LEASE_TTL). On SIGTERM or
    Ctrl-C a worker stops claiming feeds, gives those in hand MONITOR_SHUTDOWN_GRACE to finish, stops the
    rest between two articles and exits 0. With SQLite, one worker per database file.

    \b
    Example:
        MONITOR_METRICS_PORT=9100 monitor run --log-format json
    """
    from monitor.service import Service, ServiceOptions

    settings = _settings(ctx, verbosity=1)
    try:
        interval = parse_duration(tick)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tick") from None
    feeds = load_feeds(settings.config_dir)
    port = metrics_port if metrics_port is not None else settings.metrics_port
    options = ServiceOptions(
        tick=interval,
        story_window=settings.story_window,
        lease_ttl=settings.lease_ttl,
        grace=settings.shutdown_grace,
    )
    from monitor.digest.send import SmtpSettings

    tagger = _tagger(settings)
    subscriptions = load_digests(settings.config_dir, tags=tagger.tags, feeds=feeds)
    with _database(settings) as database:
        service = Service(
            database,
            feeds=feeds,
            fetcher_options=_fetcher_options(settings),
            tagger=tagger,
            options=options,
            subscriptions=subscriptions,
            smtp=SmtpSettings.from_settings(settings),
        )
        service.run(http_port=port or None)


@cli.command()
@click.argument("text", required=False, metavar="[TEXT | -]")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@common_options
@click.pass_context
def tag(ctx: click.Context, text: str | None, fmt: str) -> None:
    """Tag a text with the watchlist: which states and topics it mentions, how often, and where.

    TEXT is the text itself; without it, or with -, the text is read from standard input.

    \b
    Example:
        echo "Starlink talks in Ashgabat, Туркменистан" | monitor tag --format json
    """
    from monitor.output import render_tags

    settings = _settings(ctx)
    tagger = _tagger(settings)
    content = sys.stdin.read() if text in (None, "-") else text
    click.echo(render_tags(tagger.tag(content or ""), fmt), nl=False)


@cli.command()
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=500, show_default=True)
@common_options
@click.pass_context
def retag(ctx: click.Context, batch_size: int) -> None:
    """Re-tag stored articles after the watchlist changed; resumable, batch by batch.

    Only articles tagged with another version of the watchlist are touched; stopping half-way and running
    it again carries on where it stopped.

    \b
    Example:
        monitor retag --batch-size 1000
    """
    from monitor.store.repository import count_stale, replace_tags, stale_articles, sync_tags

    settings = _settings(ctx)
    tagger = _tagger(settings)
    version = tagger.fingerprint
    done = 0
    with _database(settings) as database:
        with database.session() as session:
            sync_tags(session, tags=tagger.tags)
            total = count_stale(session, version=version)
        if total == 0:
            click.echo(f"all articles are tagged with the current watchlist ({version})")
            return
        last_id = 0
        with click.progressbar(length=total, label=f"re-tagging {total} articles", file=sys.stderr) as bar:
            while True:
                with database.session() as session:
                    batch = stale_articles(session, version=version, after_id=last_id, limit=batch_size)
                    for article_id, title, text in batch:
                        replace_tags(
                            session, article_id=article_id, tags=tagger.tag(text, title=title), version=version
                        )
                if not batch:
                    break
                last_id = batch[-1][0]
                done += len(batch)
                bar.update(len(batch))
    click.echo(f"re-tagged {done} articles with watchlist {version}")


@cli.group()
def digest() -> None:
    """Daily digest emails: preview the next one, or send the due ones now."""


def _subscriptions(settings: Settings, names: tuple[str, ...]) -> list[SubscriptionConfig]:
    subscriptions = load_digests(
        settings.config_dir, tags=load_tags(settings.config_dir), feeds=load_feeds(settings.config_dir)
    )
    if not subscriptions:
        raise MonitorError(f"{settings.config_dir / 'digests.yaml'}: no subscriptions (see the README's digests.yaml)")
    known = {s.name for s in subscriptions}
    unknown = sorted(set(names) - known)
    if unknown:
        raise MonitorError(f"unknown subscription {unknown[0]!r} (configured: {', '.join(sorted(known))})")
    return [s for s in subscriptions if not names or s.name in names]


@digest.command("preview")
@click.option("--subscription", "names", multiple=True, metavar="NAME", help="This subscription (default: all).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the HTML here and the text beside it (FILE.txt); default: the text to stdout.",
)
@common_options
@click.pass_context
def digest_preview(ctx: click.Context, names: tuple[str, ...], out: Path | None) -> None:
    """Render the digest each subscription would get now, without sending or recording anything.

    \b
    Example:
        monitor digest preview --subscription morning --out morning.html
    """
    from monitor.digest.send import preview

    settings = _settings(ctx)
    subscriptions = _subscriptions(settings, names)
    tagger = _tagger(settings)
    with _database(settings) as database:
        for subscription in subscriptions:
            built, rendered = preview(database, subscription, now=datetime.now(UTC), tagger=tagger)
            if out is None:
                click.echo(f"Subject: {rendered.subject}\n\n{rendered.text}")
                continue
            target = out if len(subscriptions) == 1 else out.with_name(f"{out.stem}-{subscription.name}{out.suffix}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(rendered.html, encoding="utf-8")
            target.with_suffix(".txt").write_text(rendered.text, encoding="utf-8")
            click.echo(f"{subscription.name}: {built.count} stories -> {target} and {target.with_suffix('.txt')}")


@digest.command("send")
@click.option("--subscription", "names", multiple=True, metavar="NAME", help="This subscription (default: all).")
@click.option("--dry-run", is_flag=True, help="Render and report, but send and record nothing.")
@common_options
@click.pass_context
def digest_send(ctx: click.Context, names: tuple[str, ...], dry_run: bool) -> None:
    """Send each subscription its digest now: the stories since its last digest, each once.

    Windows left pending by an earlier failure are sent first. Running it twice sends nothing twice.
    Exits 1 when a digest could not be sent (it stays pending and is retried).

    \b
    Example:
        MONITOR_SMTP_HOST=mail.example.org monitor digest send --subscription morning
    """
    from monitor.digest.send import SmtpSettings, preview, send_due
    from monitor.pipeline.refresh import worker_id

    settings = _settings(ctx)
    subscriptions = _subscriptions(settings, names)
    tagger = _tagger(settings)
    now = datetime.now(UTC)
    with _database(settings) as database:
        if dry_run:
            for subscription in subscriptions:
                built, rendered = preview(database, subscription, now=now, tagger=tagger)
                click.echo(
                    f"{subscription.name}: would send {built.count} stories to {len(subscription.to)} "
                    f"recipient(s): {rendered.subject}"
                )
            return
        outcomes = send_due(
            database,
            subscriptions,
            smtp=SmtpSettings.from_settings(settings),
            now=now,
            worker=worker_id("digest"),
            tagger=tagger,
            until_now=True,
        )
    failed = False
    for outcome in outcomes:
        line = f"{outcome.subscription}: {outcome.status}, {outcome.stories} stories"
        if outcome.message_id:
            line += f", {outcome.message_id}"
        if outcome.failed_recipients:
            line += f"; refused by the server for {', '.join(outcome.failed_recipients)}"
        if outcome.error:
            line += f" ({outcome.error}); it stays pending and is retried"
            failed = True
        click.echo(line)
    if not outcomes:
        click.echo("nothing to send: every window has been sent")
    if failed:
        ctx.exit(1)


@cli.group()
def stories() -> None:
    """Maintain the story index (how new articles find the stories they belong to)."""


@stories.command("rebuild")
@common_options
@click.pass_context
def stories_rebuild(ctx: click.Context) -> None:
    """Recompute every article's story vector and index entries from the stored texts.

    The index is kept up to date as articles arrive, and entries that are missing (an upgraded database)
    are filled in at the start of every poll; rebuild it all after changing the watchlist, whose words
    weigh less in the comparison. Existing stories are kept as they are.

    \b
    Example:
        monitor stories rebuild
    """
    from monitor.pipeline.refresh import story_vectoriser
    from monitor.store.stories import clear_index, count_unindexed, index_missing

    settings = _settings(ctx)
    vectoriser = story_vectoriser(_tagger(settings))
    with _database(settings) as database:
        done = _rebuild(
            database,
            clear=clear_index,
            count=count_unindexed,
            index=lambda session: index_missing(session, features=vectoriser.features),
        )
    click.echo(f"story index rebuilt: {done} articles")


def _rebuild(
    database: Database,
    *,
    clear: Callable[[Session], None],
    count: Callable[[Session], int],
    index: Callable[[Session], int],
) -> int:
    """Empty an index, then fill it in batches of one transaction each, with a progress bar on stderr."""
    done = 0
    with database.session() as session:
        clear(session)
        total = count(session)
    with click.progressbar(length=total, label=f"indexing {total} articles", file=sys.stderr) as bar:
        while True:
            with database.session() as session:
                batch = index(session)
            if not batch:
                break
            done += batch
            bar.update(batch)
    return done


@cli.group(invoke_without_command=True)
@common_options
@click.pass_context
def feeds(ctx: click.Context) -> None:
    """List the sources with their health (the default), or check what each feed answers now.

    \b
    Example:
        monitor feeds list --format json
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(feeds_list)


@feeds.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@common_options
@click.pass_context
def feeds_list(ctx: click.Context, fmt: str = "table") -> None:
    """Show each source: health, last success, last error, failures in a row, items in 7 days, next poll.

    \b
    Example:
        monitor feeds list
    """
    from monitor.output import render_health
    from monitor.store.repository import feed_health, sync_sources

    settings = _settings(ctx)
    configured = load_feeds(settings.config_dir)
    now = datetime.now(UTC)
    with _database(settings) as database, database.session() as session:
        sync_sources(session, feeds=configured, now=now)
        health = feed_health(session, now=now)
    click.echo(render_health(health, fmt), nl=False)


@feeds.command("check")
@click.option("--feed", "names", multiple=True, metavar="NAME", help="Check only this feed (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@common_options
@click.pass_context
def feeds_check(ctx: click.Context, names: tuple[str, ...], fmt: str) -> None:
    """Fetch every enabled feed (or the named ones) once and report what it answered; stores nothing.

    \b
    Example:
        monitor feeds check --feed trend --feed caspian-news
    """
    from monitor.output import render_checks
    from monitor.pipeline.check import check_feeds
    from monitor.pipeline.fetch import Fetcher

    settings = _settings(ctx)
    configured = load_feeds(settings.config_dir)
    unknown = sorted(set(names) - {f.name for f in configured})
    if unknown:
        raise MonitorError(f"unknown feed {unknown[0]!r} (configured: {', '.join(f.name for f in configured)})")
    chosen = [f for f in configured if f.name in names] if names else [f for f in configured if f.enabled]

    async def check() -> list[FeedCheck]:
        async with Fetcher(**_fetcher_options(settings)) as fetcher:
            return await check_feeds(chosen, fetcher=fetcher)

    click.echo(render_checks(asyncio.run(check()), fmt), nl=False)


@cli.command()
@click.argument("query", required=False)
@click.option("--source", "sources", multiple=True, metavar="NAME", help="Only this source (repeatable).")
@click.option("--tag", "tags", multiple=True, metavar="ID", help="Only articles with this tag (repeatable).")
@click.option("--country", "countries", multiple=True, metavar="CODE", help="Only this country, e.g. TM (repeatable).")
@click.option("--since", metavar="DATE", help="Published on or after: 2026-11-01, an ISO time, or 7d (ago).")
@click.option("--until", metavar="DATE", help="Published before the end of this day, or before this ISO time.")
@click.option("--language", "languages", multiple=True, metavar="CODE", help="Only this language (repeatable).")
@click.option("--story", "story_id", type=int, metavar="ID", help="Only the articles of this story.")
@click.option(
    "--sort",
    type=click.Choice(["relevance", "newest", "oldest"]),
    help="Order of the articles [default: relevance with a QUERY, else newest].",
)
@click.option("--limit", type=click.IntRange(0), default=20, show_default=True, help="At most N articles; 0: all.")
@click.option("--offset", type=click.IntRange(0), default=0, help="Skip the first N articles (the next page).")
@click.option("--stories", "by_story", is_flag=True, help="One row per story (its representative article) instead.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
)
@common_options
@click.pass_context
def search(
    ctx: click.Context,
    query: str | None,
    sources: tuple[str, ...],
    tags: tuple[str, ...],
    countries: tuple[str, ...],
    since: str | None,
    until: str | None,
    languages: tuple[str, ...],
    story_id: int | None,
    sort: str | None,
    limit: int,
    offset: int,
    by_story: bool,
    fmt: str,
) -> None:
    """List stored articles matching QUERY and the filters, the best matches first (newest without QUERY).

    QUERY searches titles and texts, in any inflection of its words: `starlink licence` (both words),
    `"ground station"` (a phrase), `starlink OR spacex`, `starlink -spacex` (not the second), and
    parentheses to group. Filters repeated with one name are ORed; different filters are ANDed.

    Each article shows its story_id (articles reporting the same event share it) and also_reported_by (the
    other outlets that carried it). With --stories, each story is listed once, with every outlet that
    carried it; the filters then select the stories that have at least one matching article.

    \b
    Example:
        monitor search starlink --source trend --since 7d --format csv > starlink.csv
        monitor search 'starlink (licence OR лицензия) -spacex' --country UZ --since 2026-03-01
        monitor search --stories --country TM --since 1d
        monitor search --story 42
    """
    from monitor.output import render_articles, render_stories
    from monitor.store.fulltext import count_unindexed
    from monitor.store.search import ArticleQuery, Sort, search_articles, search_stories

    article_query = ArticleQuery(
        text=query.strip() or None if query else None,
        sources=sources,
        tags=tags,
        countries=countries,
        since=_parse_when(since, "--since", end_of_day=False),
        until=_parse_when(until, "--until", end_of_day=True),
        story=story_id,
        languages=languages,
        sort=Sort(sort) if sort else None,
        limit=limit or None,
        offset=offset,
    )
    with _database(_settings(ctx)) as database, database.session() as session:
        if query and (unindexed := count_unindexed(session)):
            click.echo(
                f"note: {unindexed} articles are not in the search index yet (the next poll adds them, "
                "or run `monitor db reindex`)",
                err=True,
            )
        if by_story:
            click.echo(render_stories(search_stories(session, query=article_query), fmt), nl=False)
        else:
            click.echo(render_articles(search_articles(session, query=article_query), fmt), nl=False)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port to listen on.")
@common_options
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the archive: the search page at /, the JSON API at /api (described at /openapi.json and /docs),
    Atom feeds of any search at /feeds/search.atom, CSV and JSON Lines exports, /healthz and /metrics.

    Read-only. With MONITOR_API_TOKEN set, every route but /healthz needs the token: as
    `Authorization: Bearer <token>`, or as the password of HTTP Basic (browsers, feed readers).

    \b
    Example:
        monitor serve --port 8000
        curl 'http://127.0.0.1:8000/api/articles?q=starlink&country=UZ&since=2026-03-01'
    """
    import signal

    import uvicorn

    from monitor.web.app import create_app

    settings = _settings(ctx, verbosity=1)
    with _database(settings) as database:
        if host not in {"127.0.0.1", "localhost", "::1"} and not settings.api_token:
            click.echo(f"warning: {host} is reachable by others and MONITOR_API_TOKEN is not set", err=True)
        app = create_app(database, token=settings.api_token)
        click.echo(f"serving http://{host}:{port}/ (Ctrl-C to stop)", err=True)
        # uvicorn stops gracefully on SIGTERM or Ctrl-C, then raises the signal again for the handler it found:
        # a no-op one lets `monitor serve` exit 0 after a clean stop, like `monitor run`.
        for stop in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop, lambda *_: None)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@cli.command()
@click.option("--since", metavar="DATE", help="Count from this day, ISO time or age such as 30d (default: 12 weeks).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@common_options
@click.pass_context
def stats(ctx: click.Context, since: str | None, fmt: str) -> None:
    """Articles and stories per source, per tag and per week, in the terminal.

    \b
    Example:
        monitor stats --since 30d
    """
    from monitor.output import render_stats
    from monitor.store.stats import archive_stats, default_since

    start = _parse_when(since, "--since", end_of_day=False) or default_since()
    with _database(_settings(ctx)) as database, database.session() as session:
        click.echo(render_stats(archive_stats(session, since=start), fmt), nl=False)


@cli.command()
@click.argument("article_id", metavar="ID", type=int)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@common_options
@click.pass_context
def show(ctx: click.Context, article_id: int, fmt: str) -> None:
    """Show one article with its tags, story and text.

    \b
    Example:
        monitor show 42
    """
    import json

    from monitor.output import article_record, render_article
    from monitor.store.search import get_article

    with _database(_settings(ctx)) as database, database.session() as session:
        article = get_article(session, article_id=article_id)
    if fmt == "json":
        click.echo(json.dumps(article_record(article, with_text=True), ensure_ascii=False, indent=2))
    else:
        click.echo(render_article(article), nl=False)


@cli.command()
def demo() -> None:
    """Offline demonstration: serve bundled sample feeds on loopback, poll them, show what was stored.

    Needs no network and no configuration; writes a throw-away SQLite database in a temporary folder
    and prints where it is.

    \b
    Example:
        monitor demo
    """
    from monitor.demo import run_demo

    logs.configure(0)
    run_demo(echo=click.echo)


def _parse_when(value: str | None, flag: str, *, end_of_day: bool) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_when(value, end_of_day=end_of_day)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from None


def main() -> None:
    """Entry point of the `monitor` console script."""
    cli(prog_name="monitor")
