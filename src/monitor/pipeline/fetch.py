"""The only httpx user: bounded GETs that end in one FetchOutcome, never an exception."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from types import TracebackType

import httpx

from monitor.model import FetchOutcome, FetchResult
from monitor.settings import DEFAULT_USER_AGENT, is_http_url

log = logging.getLogger(__name__)

FEED_MAX_BYTES = 10 * 1024 * 1024
PAGE_MAX_BYTES = 5 * 1024 * 1024
# Answers worth trying again later: the site is busy or down, not wrong (RFC 9110 15.5.9, 15.6; RFC 6585 4).
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Time and size bounds for one request."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 60.0
    max_redirects: int = 5


class Fetcher:
    """A keep-alive HTTP client; one per poll pass or service, closed when done."""

    def __init__(self, *, user_agent: str = DEFAULT_USER_AGENT, limits: FetchLimits | None = None) -> None:
        self.limits = limits or FetchLimits()
        self._client = httpx.Client(
            headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(self.limits.read_timeout, connect=self.limits.connect_timeout),
            follow_redirects=True,
            max_redirects=self.limits.max_redirects,
        )

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections."""
        self._client.close()

    def fetch_feed(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
        """GET a feed, conditionally when validators are known."""
        headers = {"Accept": FEED_ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        return self._get(url, headers, FEED_MAX_BYTES)

    def fetch_page(self, url: str) -> FetchResult:
        """GET an article page."""
        return self._get(url, {"Accept": PAGE_ACCEPT}, PAGE_MAX_BYTES)

    def _get(self, url: str, headers: dict[str, str], max_bytes: int) -> FetchResult:
        started = time.monotonic()
        if not is_http_url(url):
            return FetchResult(url, FetchOutcome.REFUSED, error="only http(s) URLs are fetched")
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                final_url = str(response.url)
                if response.status_code == 304:
                    return self._result(response, FetchOutcome.NOT_MODIFIED, started)
                if response.status_code >= 400:
                    outcome = (
                        FetchOutcome.SOFT_ERROR
                        if response.status_code in TRANSIENT_STATUSES
                        else FetchOutcome.HARD_ERROR
                    )
                    error = f"HTTP {response.status_code} {response.reason_phrase}".strip()
                    return self._result(response, outcome, started, error=error)
                body = bytearray()
                # Count decoded bytes: a small gzip body can inflate without bound.
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        error = f"body larger than {max_bytes // (1024 * 1024)} MB"
                        return self._result(response, FetchOutcome.HARD_ERROR, started, error=error)
                    if time.monotonic() - started > self.limits.total_timeout:
                        error = f"took longer than {self.limits.total_timeout:.0f}s"
                        return self._result(response, FetchOutcome.SOFT_ERROR, started, error=error)
                return self._result(response, FetchOutcome.OK, started, body=bytes(body), url=final_url)
        except httpx.TooManyRedirects:
            return self._failure(url, FetchOutcome.HARD_ERROR, "too many redirects", started)
        except httpx.UnsupportedProtocol as exc:
            return self._failure(url, FetchOutcome.REFUSED, f"redirected to a non-http(s) URL: {exc}", started)
        except httpx.TimeoutException as exc:
            return self._failure(url, FetchOutcome.SOFT_ERROR, f"timed out ({type(exc).__name__})", started)
        except httpx.TransportError as exc:
            return self._failure(url, FetchOutcome.SOFT_ERROR, _describe(exc), started)
        except httpx.InvalidURL as exc:
            return self._failure(url, FetchOutcome.REFUSED, f"invalid URL: {exc}", started)

    @staticmethod
    def _result(
        response: httpx.Response,
        outcome: FetchOutcome,
        started: float,
        *,
        body: bytes = b"",
        error: str | None = None,
        url: str | None = None,
    ) -> FetchResult:
        return FetchResult(
            url=url or str(response.url),
            outcome=outcome,
            status=response.status_code,
            body=body,
            content_type=response.headers.get("content-type"),
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            error=error,
            elapsed=time.monotonic() - started,
        )

    @staticmethod
    def _failure(url: str, outcome: FetchOutcome, error: str, started: float) -> FetchResult:
        return FetchResult(url, outcome, error=error, elapsed=time.monotonic() - started)


def _describe(exc: httpx.TransportError) -> str:
    detail = str(exc).strip() or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {detail}"
    return f"{type(exc).__name__}: {detail}"
