"""The web pages: search with filters and highlighted snippets, a story with every outlet, an article, feed
health. Server-rendered with autoescaped Jinja2; no JavaScript."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.errors import NotFoundError
from monitor.model import ArticleView
from monitor.store.query_syntax import QuerySyntaxError, Term, parse_query, wanted_terms
from monitor.store.repository import feed_health
from monitor.store.schema import Source, Tag
from monitor.store.search import ArticleQuery, Sort, get_article, search_articles, search_page
from monitor.store.snippets import match_spans
from monitor.web.params import MAX_ID, search_filters
from monitor.web.session import database_of

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 20


@cache
def _templates() -> Jinja2Templates:
    environment = Environment(
        loader=PackageLoader("monitor.web", "templates"), autoescape=select_autoescape(default=True)
    )
    environment.filters["highlight"] = highlight
    environment.filters["when"] = lambda value: value.strftime("%Y-%m-%d %H:%M") if value else ""
    return Jinja2Templates(env=environment)


def highlight(text: str, terms: tuple[Term, ...]) -> Markup:
    """text, escaped, with the words search matched in <mark>."""
    if not terms:
        return Markup(escape(text))
    out, position = [], 0
    for start, end in match_spans(text, terms):
        out += [escape(text[position:start]), Markup("<mark>"), escape(text[start:end]), Markup("</mark>")]
        position = end
    out.append(escape(text[position:]))
    return Markup("").join(out)


@router.get("/", response_class=HTMLResponse)
def search_form(
    request: Request,
    filters: Annotated[ArticleQuery, Depends(search_filters)],
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    """The search form and one page of results."""
    query = replace(filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    error: str | None = None
    terms: tuple[Term, ...] = ()
    articles: list[ArticleView] = []
    total = 0
    with database_of(request).session() as session:
        try:
            if filters.text:
                terms = wanted_terms(parse_query(filters.text))
            articles, total = search_page(session, query=query)
        except QuerySyntaxError as exc:
            error = str(exc)
        choices = _choices(session)
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "page" and v]
    context: dict[str, Any] = {
        "filters": filters,
        "articles": articles,
        "total": total,
        "terms": terms,
        "error": error,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "query_string": urlencode(params),
        "sorts": [sort.value for sort in Sort],
        "day": timedelta(days=1),
        **choices,
    }
    return _templates().TemplateResponse(request, "search.html.j2", context, status_code=400 if error else 200)


@router.get("/articles/{article_id}", response_class=HTMLResponse)
def article_page(request: Request, article_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> HTMLResponse:
    """One article: its text, tags, and the story's other reports."""
    with database_of(request).session() as session:
        article = get_article(session, article_id=article_id)
    return _templates().TemplateResponse(request, "article.html.j2", {"article": article})


@router.get("/stories/{story_id}", response_class=HTMLResponse)
def story_page(request: Request, story_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> HTMLResponse:
    """One story: every outlet that carried it, with its report, oldest first."""
    with database_of(request).session() as session:
        articles = search_articles(session, query=ArticleQuery(story=story_id, sort=Sort.OLDEST, limit=None))
        if not articles:
            raise NotFoundError(f"no story with id {story_id}")
        members = get_article(session, article_id=articles[0].id).members
    copies = [member for member in members if member.article_id is None]
    outlets = sorted({article.source for article in articles} | {copy.source for copy in copies})
    context = {"story_id": story_id, "articles": articles, "copies": copies, "outlets": outlets}
    return _templates().TemplateResponse(request, "story.html.j2", context)


@router.get("/sources", response_class=HTMLResponse)
def sources_page(request: Request) -> HTMLResponse:
    """Every source with its health: last success, last error, consecutive failures."""
    with database_of(request).session() as session:
        feeds = feed_health(session, now=datetime.now(UTC))
    return _templates().TemplateResponse(request, "sources.html.j2", {"feeds": feeds})


def not_found_page(request: Request, message: str) -> HTMLResponse:
    """A 404 page with the reason."""
    return _templates().TemplateResponse(request, "error.html.j2", {"message": message}, status_code=404)


def _choices(session: Session) -> dict[str, list[tuple[str, str]]]:
    tags = session.execute(select(Tag.id, Tag.name, Tag.kind).order_by(Tag.kind, Tag.id)).all()
    return {
        "countries": [(row.id, row.name) for row in tags if row.kind == "country"],
        "topics": [(row.id, row.name) for row in tags if row.kind != "country"],
        "sources": [(name, name) for name in session.scalars(select(Source.name).order_by(Source.name))],
    }
