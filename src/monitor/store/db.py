"""Engine, sessions and migrations. SQLite gets WAL, foreign keys and a busy timeout."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, Table, bindparam, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import StorageError

MIGRATIONS = Path(__file__).with_name("migrations")


def normalise_database_url(url: str) -> str:
    """Map bare postgres URLs to the psycopg 3 driver we ship; leave others alone."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@dataclass(frozen=True)
class Database:
    """An engine and its session factory; the one handle the services receive."""

    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def display_url(self) -> str:
        """The URL with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One unit of work: commit on success, roll back on any error."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def take_write_lock(session: Session) -> None:
    """On SQLite, take the database's write lock now, before this transaction reads anything, so that what
    it reads stays true until it commits (Python's sqlite3 begins a transaction only at the first write).
    PostgreSQL needs nothing here: its callers lock the rows or keys they decide on."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("UPDATE fetch_state SET leased_by = leased_by WHERE 0"))


def insert_new(session: Session, model: type[Any], **values: Any) -> int | None:
    """INSERT ... ON CONFLICT DO NOTHING: the new row's id, or None when a unique constraint already holds
    these values (another worker may have stored them a moment earlier). Values are bound as they are
    (no SQL expressions such as func.now())."""
    statement = _insert_new_statement(model.__table__, tuple(values), session.get_bind().dialect.name)
    result: int | None = session.execute(statement, values).scalar_one_or_none()
    return result


@lru_cache(maxsize=64)
def _insert_new_statement(table: Table, columns: tuple[str, ...], dialect: str) -> Any:
    # Composed once per table, columns and backend: .values() coerces every value on every call, which
    # cost more than the INSERT itself when storing articles. The values travel as bound parameters.
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = {column: bindparam(column, type_=table.c[column].type) for column in columns}
    return insert(table).values(values).on_conflict_do_nothing().returning(table.c.id)


def open_database(url: str, *, migrate: bool = True) -> Database:
    """Connect to url; migrate SQLite files automatically, refuse an out-of-date PostgreSQL."""
    engine = _create_engine(normalise_database_url(url))
    database = Database(engine, sessionmaker(engine, expire_on_commit=False))
    try:
        current = current_revision(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StorageError(f"cannot open database {database.display_url}: {_first_line(exc)}") from None
    if current != head_revision():
        if migrate and engine.dialect.name == "sqlite":
            upgrade(database)
        elif migrate:
            engine.dispose()
            raise StorageError(
                f"database {database.display_url} is at schema {current or 'empty'}, this version needs "
                f"{head_revision()}: run `monitor db upgrade`"
            )
    return database


def upgrade(database: Database) -> str:
    """Migrate to the newest schema and return its revision."""
    config = _alembic_config()
    try:
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot migrate {database.display_url}: {_first_line(exc)}") from None
    return head_revision()


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at, or None when it was never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision this code ships."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "the migration history is empty"
    return head


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _create_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(f"not a database URL: {url!r} (try sqlite:///data/monitor.db)") from None
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create the folder for {parsed.database}: {exc.strerror}") from None
        options["connect_args"] = {"timeout": 30}
    else:
        options["pool_pre_ping"] = True
        # Every query here is short: JIT compilation (some 40 ms per search, measured on a 1M archive) costs
        # more than it saves. A URL that sets its own options keeps them.
        if parsed.get_backend_name() == "postgresql" and "options" not in parsed.query:
            options["connect_args"] = {"options": "-c jit=off"}
    try:
        engine = create_engine(parsed, **options)
    except (ArgumentError, ImportError) as exc:
        raise StorageError(f"cannot use database URL {url!r}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (search, the web page) run while a poll writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # SQLite's own lower() knows only ASCII; ILIKE must fold Казахстан as well as Kazakhstan.
    dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)


def _unicode_lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    return str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
