"""What the server holds for its requests (app.state): the database."""

from __future__ import annotations

from typing import cast

from fastapi import Request

from monitor.store.db import Database


def database_of(request: Request) -> Database:
    """The server's database (one engine; a session per request)."""
    return cast(Database, request.app.state.database)
