"""Shared fixtures: a real loopback HTTP server, SQLite files and fresh PostgreSQL databases, the CLI."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from monitor.cli import cli

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


@dataclass
class SeenRequest:
    """A request the test server received."""

    path: str
    headers: dict[str, str]


class FeedServer:
    """A real HTTP server on 127.0.0.1 that serves routes and records every request."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with server._lock:
                    server.requests.append(SeenRequest(self.path, {k.lower(): v for k, v in self.headers.items()}))
                    route = server.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_error(404)
                    return
                if route.delay:
                    time.sleep(route.delay)
                etag = route.headers.get("ETag")
                if etag and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(route.status)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        """Absolute URL of a path on this server."""
        return self.base + path

    def add(
        self,
        path: str,
        body: bytes | str,
        *,
        content_type: str = "text/html; charset=utf-8",
        **kwargs: object,
    ) -> str:
        """Serve body at path; return its URL."""
        data = body.encode() if isinstance(body, str) else body
        headers = {"Content-Type": content_type, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        self.routes[path] = Route(data, headers=headers, **kwargs)  # type: ignore[arg-type]
        return self.url(path)

    def hits(self, path: str) -> int:
        """How many times path was requested."""
        with self._lock:
            return sum(1 for r in self.requests if r.path == path)

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
