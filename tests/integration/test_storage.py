"""Storage guarantees on SQLite and PostgreSQL: migrations, constraints, UTC, pragmas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from conftest import run_cli
from monitor.errors import StorageError
from monitor.model import ArticleDraft, Extraction, Stored
from monitor.settings import FeedConfig
from monitor.store import repository
from monitor.store.db import Database, head_revision, open_database
from monitor.store.schema import Article, Base, Source


def _draft(source_id: int, *, guid: str = "g1", url: str = "https://x.org/1") -> ArticleDraft:
    return ArticleDraft(
        source_id=source_id,
        guid=guid,
        url=url,
        canonical_url=url,
        title="Title",
        text="Text",
        summary=None,
        author=None,
        published_at=datetime(2026, 11, 1, 10, 0, tzinfo=timezone(timedelta(hours=5))),
        fetched_at=datetime(2026, 11, 1, 6, 0, tzinfo=UTC),
        language="en",
        extraction=Extraction.PAGE,
    )


@pytest.fixture
def database(database_url: str) -> Database:
    db = open_database(database_url)
    with db.session() as session:
        repository.sync_sources(
            session,
            feeds=[
                FeedConfig(name="a", url="https://a.org/feed"),
                FeedConfig(name="b", url="https://b.org/feed"),
            ],
            now=datetime.now(UTC),
        )
    yield db  # type: ignore[misc]
    db.dispose()


def _source_id(database: Database, name: str) -> int:
    with database.session() as session:
        return session.scalars(sa.select(Source.id).where(Source.name == name)).one()


# Neither backend's reflection compares expression indexes (ix_articles_when); Alembic says so, loudly.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
def test_migrations_build_exactly_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        # The full-text index is one backend's own: an FTS5 virtual table (and its shadow tables) or a tsvector table.
        def modelled(name: str | None, kind: str, _parents: object) -> bool:
            return not (kind == "table" and name is not None and name.startswith(("article_fts", "article_search")))

        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": modelled})
        assert compare_metadata(context, Base.metadata) == []
        assert context.get_current_revision() == head_revision()


def test_second_insert_of_an_article_is_ignored(database: Database) -> None:
    a = _source_id(database, "a")
    with database.session() as session:
        first = repository.add_article(session, draft=_draft(a))
    with database.session() as session:
        same_guid = repository.add_article(session, draft=_draft(a, url="https://x.org/other"))
        same_url = repository.add_article(session, draft=_draft(_source_id(database, "b"), guid="zz"))

    assert first[0] is Stored.NEW
    assert first[1] is not None
    assert same_guid == (Stored.KNOWN, None)
    assert same_url == (Stored.KNOWN, None)
    with database.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Article)) == 1
        assert session.scalar(sa.select(sa.func.count()).select_from(sa.table("stories"))) == 1


def test_unique_constraints_hold_whatever_the_code_does(database: Database) -> None:
    a = _source_id(database, "a")
    with database.session() as session:
        repository.add_article(session, draft=_draft(a))
    row = {
        "source_id": a,
        "guid": "g2",
        "url": "u",
        "canonical_url": "https://x.org/1",
        "title": "t",
        "text": "",
        "fetched_at": datetime.now(UTC),
        "extraction": "page",
    }
    with pytest.raises(sa.exc.IntegrityError), database.session() as session:
        session.execute(sa.insert(Article).values(**row))
    with pytest.raises(sa.exc.IntegrityError), database.session() as session:
        session.execute(sa.insert(Article).values(**{**row, "guid": "g1", "canonical_url": "https://x.org/2"}))


def test_timestamps_come_back_in_utc(database: Database) -> None:
    with database.session() as session:
        _, article_id = repository.add_article(session, draft=_draft(_source_id(database, "a")))
    with database.session() as session:
        article = session.get(Article, article_id)
        assert article is not None
        assert article.published_at == datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
        assert article.published_at.utcoffset() == timedelta(0)


def test_sources_dropped_from_config_are_disabled_not_deleted(database: Database) -> None:
    with database.session() as session:
        repository.add_article(session, draft=_draft(_source_id(database, "b")))
        repository.sync_sources(session, feeds=[FeedConfig(name="a", url="https://a.org/feed")], now=datetime.now(UTC))
    with database.session() as session:
        enabled = dict(session.execute(sa.select(Source.name, Source.enabled)).all())  # type: ignore[arg-type]
        due = repository.due_feeds(session, now=datetime.now(UTC))

    assert enabled == {"a": True, "b": False}
    assert [feed.name for feed in due] == ["a"]


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path}/nested/folder/m.db")
    try:
        with database.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        database.dispose()


def test_sqlite_is_migrated_on_first_use(tmp_path: Path) -> None:
    result = run_cli("search", database_url=f"sqlite:///{tmp_path}/fresh.db")

    assert result.exit_code == 0
    assert result.stdout == "no articles match\n"


def test_postgres_is_never_migrated_implicitly(postgres_url: str) -> None:
    result = run_cli("search", database_url=postgres_url)

    assert result.exit_code == 1
    assert "is at schema empty" in result.stderr
    assert "run `monitor db upgrade`" in result.stderr
    upgrade = run_cli("db", "upgrade", database_url=postgres_url)
    assert upgrade.exit_code == 0
    assert f"schema at {head_revision()} (newest)" in upgrade.stdout
    assert run_cli("search", database_url=postgres_url).exit_code == 0


def test_db_upgrade_twice_is_harmless(database_url: str) -> None:
    assert run_cli("db", "upgrade", database_url=database_url).exit_code == 0
    assert run_cli("db", "upgrade", database_url=database_url).exit_code == 0


def test_unreachable_database_is_a_one_line_error_without_the_password() -> None:
    url = "postgresql://nobody:s3cret@127.0.0.1:9/x"
    with pytest.raises(
        StorageError, match=r"^cannot open database postgresql\+psycopg://nobody:\*\*\*@127.0.0.1:9/x: "
    ):
        open_database(url)
    result = run_cli("search", database_url=url)
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "s3cret" not in result.stderr


def test_a_file_that_is_no_database_is_a_one_line_error(tmp_path: Path) -> None:
    not_a_database = tmp_path / "notes.db"
    not_a_database.write_text("these are my notes, not a database\n" * 100)

    result = run_cli("search", database_url=f"sqlite:///{not_a_database}")

    assert result.exit_code == 1
    assert result.stderr.startswith(f"monitor: error: cannot open database sqlite:///{not_a_database}: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_impossible_database_folder_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")

    result = run_cli("search", database_url=f"sqlite:///{tmp_path}/afile/sub/m.db")

    assert result.exit_code == 1
    assert result.stderr == f"monitor: error: cannot create the folder for {tmp_path}/afile/sub/m.db: Not a directory\n"


def test_postgresql_sessions_run_without_jit(postgres_url: str) -> None:
    database = open_database(postgres_url, migrate=False)
    try:
        with database.session() as session:
            assert session.scalar(sa.text("SHOW jit")) == "off"
    finally:
        database.dispose()
