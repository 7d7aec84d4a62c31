"""Shared fixtures: a real loopback HTTP server, SQLite files and fresh PostgreSQL databases, the CLI."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.pipeline.extract import Extractor
from monitor.store.db import Database, open_database
from pollkit import Poll, make_poll

DATA = Path(__file__).parent / "data"
PAGES = DATA / "pages"
POSTGRES_ADMIN_URL = os.environ.get(
    "MONITOR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
ON_CI = os.environ.get("CI", "").lower() == "true"


@dataclass
class Route:
    """A canned answer of the test server."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # A slow body: `chunk` bytes at a time, `trickle` seconds apart.
    trickle: float = 0.0
    chunk: int = 1024
    # Close the connection with a TCP reset instead of answering.
    reset: bool = False
    # False: no Content-Length; the body ends when the server closes the connection (HTTP/1.0 style).
    content_length: bool = True


@dataclass
class SeenRequest:
    """A request the test server received."""

    path: str
    headers: dict[str, str]
    started: float = 0.0  # time.monotonic() when it arrived
    status: int | None = None  # what the server answered; None for a reset
    client_port: int = 0  # the client's end of the connection: one port per connection


class FeedServer:
    """A real HTTP server on a loopback address that serves routes and records every request.

    Besides fixed routes it plays back per-path sequences of answers (500, then 200), resets connections,
    trickles bodies, answers conditional requests (If-None-Match, else If-Modified-Since: RFC 9110 13.1.3)
    and keeps the most requests it ever had in flight at once, for politeness tests.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route] = {}
        self.sequences: dict[str, list[Route]] = {}
        self.requests: list[SeenRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                seen = SeenRequest(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    time.monotonic(),
                    client_port=self.client_address[1],
                )
                with server._lock:
                    server.requests.append(seen)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    route = server._route(self.path.split("?")[0])
                self._done = False
                try:
                    self._answer(route, seen)
                except OSError:  # the client gave up (a timeout or a size cap): nothing left to answer
                    self.close_connection = True
                finally:
                    self._leave()

            def _leave(self) -> None:
                # Called before the last bytes go out, so a client can never start its next request
                # while this one still counts as in flight.
                if not self._done:
                    self._done = True
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, route: Route | None, seen: SeenRequest) -> None:
                if route is None:
                    seen.status = 404
                    self._leave()
                    self.send_error(404)
                    return
                if route.delay:
                    time.sleep(route.delay)
                if route.reset:
                    self._leave()
                    self.close_connection = True
                    # SO_LINGER 0: close() sends RST, not FIN.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.shutdown(socket.SHUT_RD)
                    os.close(self.connection.detach())
                    return
                if self._not_modified(route):
                    seen.status = 304
                    self._leave()
                    # No validators repeated (RFC 9110 15.4.5 wants the ETag, some servers omit it): the
                    # client must keep the ones it stored.
                    self.send_response(304)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                seen.status = route.status
                self.send_response(route.status)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                if route.content_length:
                    self.send_header("Content-Length", str(len(route.body)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                if not route.trickle:
                    self._leave()
                self.end_headers()
                if not route.trickle:
                    self.wfile.write(route.body)
                    return
                for start in range(0, len(route.body), route.chunk):
                    if start + route.chunk >= len(route.body):
                        self._leave()
                    self.wfile.write(route.body[start : start + route.chunk])
                    time.sleep(route.trickle)

            def _not_modified(self, route: Route) -> bool:
                etag = route.headers.get("ETag")
                if_none_match = self.headers.get("If-None-Match")
                if if_none_match is not None:
                    return etag is not None and etag in (tag.strip() for tag in if_none_match.split(","))
                last_modified = route.headers.get("Last-Modified")
                if_modified_since = self.headers.get("If-Modified-Since")
                if not (last_modified and if_modified_since):
                    return False
                try:
                    return parsedate_to_datetime(if_modified_since) >= parsedate_to_datetime(last_modified)
                except (TypeError, ValueError):
                    return False

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.host = host
        self.base = f"http://{host}:{self._server.server_address[1]}"
        # A short poll interval: close() waits for it, and every test closes a server.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def _route(self, path: str) -> Route | None:
        queue = self.sequences.get(path)
        if queue:
            return queue.pop(0) if len(queue) > 1 else queue[0]
        return self.routes.get(path)

    def url(self, path: str) -> str:
        """Absolute URL of a path on this server."""
        return self.base + path

    def add(
        self,
        path: str,
        body: bytes | str,
        *,
        content_type: str | None = "text/html; charset=utf-8",
        **kwargs: object,
    ) -> str:
        """Serve body at path (content_type None: send no Content-Type); return its URL."""
        data = body.encode() if isinstance(body, str) else body
        extra: dict[str, str] = kwargs.pop("headers", {})  # type: ignore[assignment]
        headers = {"Content-Type": content_type, **extra} if content_type is not None else dict(extra)
        self.routes[path] = Route(data, headers=headers, **kwargs)  # type: ignore[arg-type]
        return self.url(path)

    def add_sequence(self, path: str, *answers: Route) -> str:
        """Answer requests for path with answers in turn, the last one from then on; return its URL."""
        self.sequences[path] = list(answers)
        return self.url(path)

    def add_redirect(self, path: str, location: str, *, status: int = 301) -> str:
        """Redirect path to location; return the URL of path."""
        self.routes[path] = Route(status=status, headers={"Location": location})
        return self.url(path)

    def add_reset(self, path: str) -> str:
        """Reset the connection, without answering, whenever path is requested; return its URL."""
        self.routes[path] = Route(reset=True)
        return self.url(path)

    def hits(self, path: str) -> int:
        """How many times path was requested."""
        with self._lock:
            return sum(1 for r in self.requests if r.path == path)

    def seen(self, path: str) -> list[SeenRequest]:
        """The requests for path, in order of arrival."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def starts(self, prefix: str = "/") -> list[float]:
        """Arrival times (time.monotonic()) of the requests whose path starts with prefix."""
        with self._lock:
            return [r.started for r in self.requests if r.path.startswith(prefix)]

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def server() -> Iterator[FeedServer]:
    """A fresh loopback HTTP server for one test."""
    instance = FeedServer()
    yield instance
    instance.close()


def _postgres_available() -> str | None:
    engine = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
        return None
    except sa.exc.OperationalError as exc:
        return str(exc.orig).splitlines()[0]
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    """An AUTOCOMMIT engine on the test PostgreSQL server; skipped locally, fatal on CI, when absent."""
    problem = _postgres_available()
    if problem:
        message = f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {problem}"
        if ON_CI:
            pytest.fail(message)
        pytest.skip(message)
    engine = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin: sa.Engine) -> Iterator[str]:
    """URL of a brand-new, empty PostgreSQL database, dropped after the test."""
    name = f"monitor_test_{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield postgres_admin.url.set(database=name).render_as_string(hide_password=False)
    with postgres_admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage test runs twice: on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'monitor.db'}"
    url: str = request.getfixturevalue("postgres_url")
    # PostgreSQL is never migrated implicitly: do what a user does first.
    result = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 0, result.output
    return url


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's MONITOR_* settings or writes into the checkout."""
    for name in list(os.environ):
        if name.startswith("MONITOR_") and name != "MONITOR_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    # The test outlets live on loopback, and need no politeness delay; tests of those features set their own.
    monkeypatch.setenv("MONITOR_ALLOW_PRIVATE_NETWORKS", "1")
    monkeypatch.setenv("MONITOR_HOST_DELAY", "0")
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def extractor() -> Iterator[Extractor]:
    """One extraction pool per module: starting workers costs more than most tests."""
    with Extractor(workers=1) as instance:
        yield instance


@pytest.fixture
def poll(database: Database, extractor: Extractor) -> Poll:
    """Run one poll pass over the given feeds, due or not, with a fresh Fetcher like `monitor poll` does."""
    return make_poll(database, extractor)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """An open Database on database_url (SQLite or PostgreSQL), disposed after the test."""
    instance = open_database(database_url)
    yield instance
    instance.dispose()


def write_feeds(config_dir: Path, feeds: list[dict[str, object]]) -> Path:
    """Write a feeds.yaml for the given entries and return the folder."""
    import yaml

    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "feeds.yaml").write_text(yaml.safe_dump({"feeds": feeds}, allow_unicode=True), encoding="utf-8")
    return config_dir


def run_cli(*args: str, database_url: str | None = None, config_dir: Path | None = None) -> Result:
    """Run the CLI in-process, like a user would from the shell."""
    argv = list(args)
    if config_dir is not None:
        argv = ["--config-dir", str(config_dir), *argv]
    if database_url is not None:
        argv = ["--database-url", database_url, *argv]
    return CliRunner().invoke(cli, argv, catch_exceptions=False)
