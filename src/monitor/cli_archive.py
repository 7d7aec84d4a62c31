"""Reading the archive: `monitor search`, `show`, `stats` and `serve`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from monitor.output import FORMATS

if TYPE_CHECKING:
    pass

from monitor.clikit import common_options, database_for, settings_of, when_option


@click.command()
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
        since=when_option(since, "--since", end_of_day=False),
        until=when_option(until, "--until", end_of_day=True),
        story=story_id,
        languages=languages,
        sort=Sort(sort) if sort else None,
        limit=limit or None,
        offset=offset,
    )
    with database_for(settings_of(ctx)) as database, database.session() as session:
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


@click.command()
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

    settings = settings_of(ctx, verbosity=1)
    with database_for(settings) as database:
        if host not in {"127.0.0.1", "localhost", "::1"} and not settings.api_token:
            click.echo(f"warning: {host} is reachable by others and MONITOR_API_TOKEN is not set", err=True)
        app = create_app(database, token=settings.api_token)
        click.echo(f"serving http://{host}:{port}/ (Ctrl-C to stop)", err=True)
        # uvicorn stops gracefully on SIGTERM or Ctrl-C, then raises the signal again for the handler it found:
        # a no-op one lets `monitor serve` exit 0 after a clean stop, like `monitor run`.
        for stop in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop, lambda *_: None)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@click.command()
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

    start = when_option(since, "--since", end_of_day=False) or default_since()
    with database_for(settings_of(ctx)) as database, database.session() as session:
        click.echo(render_stats(archive_stats(session, since=start), fmt), nl=False)


@click.command()
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

    with database_for(settings_of(ctx)) as database, database.session() as session:
        article = get_article(session, article_id=article_id)
    if fmt == "json":
        click.echo(json.dumps(article_record(article, with_text=True), ensure_ascii=False, indent=2))
    else:
        click.echo(render_article(article), nl=False)
