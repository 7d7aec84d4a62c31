"""The thin command line and composition root: builds settings, database and services, calls them."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from monitor import __version__, logs
from monitor.errors import MonitorError
from monitor.settings import (
    load_digests,
    load_feeds,
    parse_duration,
)

if TYPE_CHECKING:
    from monitor.model import FeedCheck, FeedSummary
    from monitor.store.db import Database

from monitor.cli_archive import search, serve, show, stats
from monitor.cli_digest import digest
from monitor.clikit import (
    MonitorGroup,
    common_options,
    database_for,
    fetcher_options,
    rebuild_index,
    settings_of,
    tagger_of,
)


@click.group(cls=MonitorGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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

    with database_for(settings_of(ctx), migrate=False) as database:
        revision = upgrade(database)
        click.echo(f"{database.display_url}: schema at {revision} (newest)")


@db.command("reindex")
@common_options
@click.pass_context
def db_reindex(ctx: click.Context) -> None:
    """Rebuild the full-text search index from the stored titles and texts, and the per-day id ranges
    that date filters use.

    The index is kept up to date as articles arrive, and articles missing from it (an upgraded database)
    are added at the start of every poll and by the service; rebuild it all if search seems to miss
    articles it should find.

    \b
    Example:
        monitor db reindex
    """
    from monitor.store import day_ranges, fulltext

    with database_for(settings_of(ctx)) as database:
        done = rebuild_index(
            database, clear=fulltext.clear, count=fulltext.count_unindexed, index=fulltext.index_missing
        )
        with database.session() as session:
            days = day_ranges.rebuild(session)
    click.echo(f"search index rebuilt: {done} articles, {days} days")


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

    settings = settings_of(ctx)
    feeds = load_feeds(settings.config_dir)

    tagger = tagger_of(settings)

    async def poll_once(database: Database) -> list[FeedSummary]:
        async with Fetcher(**fetcher_options(settings)) as fetcher:
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

    with database_for(settings) as database, Extractor() as extractor:
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

    settings = settings_of(ctx, verbosity=1)
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

    tagger = tagger_of(settings)
    subscriptions = load_digests(settings.config_dir, tags=tagger.tags, feeds=feeds)
    with database_for(settings) as database:
        service = Service(
            database,
            feeds=feeds,
            fetcher_options=fetcher_options(settings),
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

    settings = settings_of(ctx)
    tagger = tagger_of(settings)
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

    settings = settings_of(ctx)
    tagger = tagger_of(settings)
    version = tagger.fingerprint
    done = 0
    with database_for(settings) as database:
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
    from monitor.pipeline.prepare import story_vectoriser
    from monitor.store.stories import clear_index, count_unindexed, index_missing

    settings = settings_of(ctx)
    vectoriser = story_vectoriser(tagger_of(settings))
    with database_for(settings) as database:
        done = rebuild_index(
            database,
            clear=clear_index,
            count=count_unindexed,
            index=lambda session: index_missing(session, features=vectoriser.features),
        )
    click.echo(f"story index rebuilt: {done} articles")


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

    settings = settings_of(ctx)
    configured = load_feeds(settings.config_dir)
    now = datetime.now(UTC)
    with database_for(settings) as database, database.session() as session:
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

    settings = settings_of(ctx)
    configured = load_feeds(settings.config_dir)
    unknown = sorted(set(names) - {f.name for f in configured})
    if unknown:
        raise MonitorError(f"unknown feed {unknown[0]!r} (configured: {', '.join(f.name for f in configured)})")
    chosen = [f for f in configured if f.name in names] if names else [f for f in configured if f.enabled]

    async def check() -> list[FeedCheck]:
        async with Fetcher(**fetcher_options(settings)) as fetcher:
            return await check_feeds(chosen, fetcher=fetcher)

    click.echo(render_checks(asyncio.run(check()), fmt), nl=False)


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


for command in (digest, search, serve, show, stats):
    cli.add_command(command)


def main() -> None:
    """Entry point of the `monitor` console script."""
    cli(prog_name="monitor")
