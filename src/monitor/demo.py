"""`monitor demo`: bundled feeds and pages served on loopback, polled into a throw-away database."""

from __future__ import annotations

import asyncio
import ipaddress
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from monitor.digest.send import preview
from monitor.model import FeedSummary
from monitor.output import render_articles, render_stories, render_summaries
from monitor.pipeline.extract import Extractor
from monitor.pipeline.fetch import Fetcher, FetchLimits
from monitor.pipeline.guard import AddressPolicy
from monitor.pipeline.refresh import poll_feeds
from monitor.pipeline.tag import Tagger
from monitor.settings import FeedConfig, SubscriptionConfig, load_feeds, load_tags
from monitor.store.db import Database, open_database
from monitor.store.search import ArticleQuery, search_articles, search_stories

DEMO = files("monitor") / "data" / "demo"
CONTENT_TYPES = {".xml": "application/xml", ".html": "text/html; charset=utf-8"}


@contextmanager
def serve_demo_site() -> Iterator[str]:
    """Serve the bundled demo site on 127.0.0.1 and yield its base URL."""
    site = DEMO / "site"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            target: Traversable = site
            for part in self.path.split("?")[0].strip("/").split("/"):
                if part in ("", ".", ".."):
                    self.send_error(404)
                    return
                target = target / part
            if not target.is_file():
                self.send_error(404)
                return
            body = target.read_text(encoding="utf-8").replace("{{BASE}}", base).encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPES.get(Path(target.name).suffix, "text/plain"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="demo-site", daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()


async def _poll_twice(
    database: Database, feeds: list[FeedConfig], extractor: Extractor, config_dir: Path
) -> tuple[list[FeedSummary], list[FeedSummary]]:
    # The demo site is on loopback, which the fetcher refuses unless told otherwise; allow exactly it.
    policy = AddressPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),))
    async with Fetcher(policy=policy, limits=FetchLimits(host_delay=0.0, per_host=4)) as fetcher:
        tagger = Tagger(load_tags(config_dir))  # the demo folder has no tags.yaml: the packaged watchlist
        first = await poll_feeds(
            database, feeds=feeds, fetcher=fetcher, extractor=extractor, tagger=tagger, include_all=True
        )
        again = await poll_feeds(
            database, feeds=feeds, fetcher=fetcher, extractor=extractor, tagger=tagger, include_all=True
        )
    return first, again


DEMO_SUBSCRIPTION = SubscriptionConfig(name="demo", to=("you@example.org",), timezone="Asia/Ashgabat")


def run_demo(*, echo: Callable[[str], None]) -> Path:
    """Run the whole pipeline against the demo site; return the folder holding config and database."""
    folder = Path(tempfile.mkdtemp(prefix="monitor-demo-"))
    config_dir = folder / "config"
    config_dir.mkdir()
    database_url = f"sqlite:///{folder / 'monitor.db'}"
    with serve_demo_site() as base:
        template = (DEMO / "feeds.yaml").read_text(encoding="utf-8")
        (config_dir / "feeds.yaml").write_text(template.replace("{{BASE}}", base), encoding="utf-8")
        echo(f"Serving three sample outlets (RSS 2.0, RSS 1.0, Atom) at {base}/ ...")
        feeds = load_feeds(config_dir)
        database = open_database(database_url)
        try:
            with Extractor() as extractor:
                first, again = asyncio.run(_poll_twice(database, feeds, extractor, config_dir))
            echo("\nFirst poll:\n" + render_summaries(first))
            echo("Second poll (nothing new, nothing fetched twice):\n" + render_summaries(again))
            with database.session() as session:
                articles = search_articles(session, query=ArticleQuery(limit=None))
                stories = search_stories(session, query=ArticleQuery(limit=None))
            digest, rendered = preview(
                database, DEMO_SUBSCRIPTION, now=datetime.now(UTC), tagger=Tagger(load_tags(config_dir))
            )
            (folder / "digest.html").write_text(rendered.html, encoding="utf-8")
            (folder / "digest.txt").write_text(rendered.text, encoding="utf-8")
        finally:
            database.dispose()
    echo("Stored articles (also: other outlets carrying the same story):\n" + render_articles(articles, "table"))
    echo("\nThe same, one row per story:\n" + render_stories(stories, "table"))
    shared = next((s for s in stories if s.articles > 1), None)
    example_id = shared.representative_id if shared else articles[0].id if articles else 1
    echo(f"Everything is in the throw-away folder {folder}:")
    echo(f"  config:   {config_dir / 'feeds.yaml'}")
    echo(f"  database: {database_url}")
    echo(f"  digest:   {folder / 'digest.html'} and digest.txt ({digest.count} stories, as the morning email)")
    echo("Explore it, for example:")
    echo(f"  monitor --database-url {database_url} search --format json")
    echo(f"  monitor --database-url {database_url} show {example_id}")
    echo(f"  monitor --database-url {database_url} search --stories --tag starlink")
    echo(f"  monitor --database-url {database_url} search 'starlink OR спутниковый' --sort newest")
    echo(f"  monitor --database-url {database_url} serve    # then open http://127.0.0.1:8000/")
    echo(f"Remove it with: rm -r {folder}")
    return folder
