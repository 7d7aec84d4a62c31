"""What every command shares: the common options, settings, database, errors as one line, date options."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from monitor import logs
from monitor.errors import MonitorError
from monitor.settings import (
    Settings,
    load_settings,
    load_tags,
    parse_when,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

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


def settings_of(ctx: click.Context, *, verbosity: int = 0) -> Settings:
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
def database_for(settings: Settings, *, migrate: bool = True) -> Iterator[Database]:
    """The open database of settings, disposed of on leaving."""
    from monitor.store.db import open_database

    database = open_database(settings.database_url, migrate=migrate)
    try:
        yield database
    finally:
        database.dispose()


class UserError(click.ClickException):
    """A MonitorError on its way to stderr as one line, exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"monitor: error: {self.message}", err=True)


class MonitorGroup(click.Group):
    """A group that turns MonitorError and database errors into one line on stderr."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MonitorError as exc:
            raise UserError(str(exc)) from None
        except SQLAlchemyError as exc:
            logging.getLogger(__name__).debug("database error", exc_info=True)
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise UserError(f"database error: {detail[0] if detail else type(exc).__name__}") from None


def tagger_of(settings: Settings) -> Tagger:
    """The watchlist matcher of the configured tags.yaml (or the packaged default)."""
    from monitor.pipeline.tag import Tagger

    return Tagger(load_tags(settings.config_dir))


def fetcher_options(settings: Settings) -> dict[str, Any]:
    """Fetcher keyword arguments from the settings."""
    from monitor.pipeline.fetch import FetchLimits
    from monitor.pipeline.guard import AddressPolicy

    return {
        "user_agent": settings.user_agent,
        "policy": AddressPolicy.from_setting(settings.allow_private_networks),
        "limits": FetchLimits(per_host=settings.per_host, host_delay=settings.host_delay, retries=settings.retries),
    }


def when_option(value: str | None, flag: str, *, end_of_day: bool) -> datetime | None:
    """A --since/--until value as a time (None when absent); a usage error naming the flag when unreadable."""
    if value is None:
        return None
    try:
        return parse_when(value, end_of_day=end_of_day)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from None


def rebuild_index(
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
