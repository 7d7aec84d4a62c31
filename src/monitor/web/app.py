"""The `monitor serve` application: API, pages, Atom feeds, /healthz and /metrics on one FastAPI app."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.routing import Route

from monitor import __version__
from monitor.errors import NotFoundError
from monitor.metrics import CONTENT_TYPE, WebMetrics
from monitor.store.db import Database
from monitor.store.query_syntax import QuerySyntaxError
from monitor.web import api, atom, pages
from monitor.web.auth import TokenGuard

DESCRIPTION = """Read-only access to the archive of Central Asian news that `monitor` collects.

Filters repeated with one name are ORed (`country=UZ&country=KZ`), different names are ANDed. `q` is full
text: words (all must match, in any inflection), `"a phrase"`, `OR`, `-excluded`, and `(groups)`. When
MONITOR_API_TOKEN is set, send `Authorization: Bearer <token>`."""


_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'"


def create_app(database: Database, *, token: str | None = None) -> FastAPI:
    """The app over an open database; with token, every route but /healthz requires it."""
    app = FastAPI(title="monitor", version=__version__, description=DESCRIPTION, redoc_url=None)
    app.state.database = database
    metrics = WebMetrics()
    app.include_router(api.router)
    app.include_router(atom.router)
    app.include_router(pages.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        try:
            with database.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            return JSONResponse({"status": "failing", "reason": f"database unreachable: {type(exc).__name__}"}, 503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", include_in_schema=False)
    def metrics_page() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.exception_handler(QuerySyntaxError)
    async def bad_query(request: Request, exc: QuerySyntaxError) -> Response:
        return JSONResponse({"detail": f"q: {exc}"}, status_code=400)

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=404)
        return pages.not_found_page(request, str(exc))

    if token:  # added before `count`, so inside it: refusals are counted and carry the same headers
        app.add_middleware(TokenGuard, token=token)

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = route.path if isinstance(route, Route) else "other"
        metrics.requests.labels(path, str(response.status_code)).inc()
        metrics.duration.labels(path).observe(time.perf_counter() - started)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if path != "/docs":
            # No script runs on these pages: a stored title that slipped through escaping still could not run.
            response.headers.setdefault("Content-Security-Policy", _POLICY)
        return response

    return app
