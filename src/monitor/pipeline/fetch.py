"""The only httpx user: polite, bounded, retried GETs that end in one FetchOutcome, never an exception.

Politeness: at most `per_host` requests in flight per host and `host_delay` seconds between their starts
(or the site's robots.txt Crawl-delay when longer), `max_connections` overall, keep-alive reuse.
Bounds: connect/read timeouts and a total per request; body caps counted after decompression, which we do
ourselves so a gzip bomb is cut off at the cap; manual redirects (each hop checked, loops detected).
Safety: connections go through guard.GuardedBackend; article pages honour robots.txt.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
import zlib
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from urllib.parse import urljoin, urlsplit

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt

from monitor.model import FetchOutcome, FetchResult
from monitor.pipeline.guard import AddressPolicy, AddressRefusedError, GuardedBackend
from monitor.pipeline.robots import RobotsCache, RobotsRules, robots_url, rules_from_response
from monitor.settings import DEFAULT_USER_AGENT, is_http_url

log = logging.getLogger(__name__)

# Worth trying again: the site is busy or down, not wrong (RFC 9110 15.5.9, 15.6; RFC 6585 4).
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 2.5: parse at least 500 KiB


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Time, size, politeness and retry bounds."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 60.0
    max_redirects: int = 5
    feed_max_bytes: int = 10 * 1024 * 1024
    page_max_bytes: int = 5 * 1024 * 1024
    max_connections: int = 32
    per_host: int = 2
    host_delay: float = 1.0
    retries: int = 2
    retry_base: float = 1.0
    retry_max_wait: float = 60.0  # a longer Retry-After ends the attempt; the next poll honours it


class _HostGate:
    """At most `concurrency` requests to one host; each starts `delay` after the previous start and end."""

    def __init__(self, concurrency: int, delay: float) -> None:
        self.delay = delay
        self._slots = asyncio.Semaphore(concurrency)
        self._lock = asyncio.Lock()
        self._next_start = 0.0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._slots:
            async with self._lock:
                loop = asyncio.get_running_loop()
                wait = self._next_start - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._next_start = loop.time() + self.delay
            try:
                yield
            finally:
                # Also `delay` after this request ends: a slow answer must not let the next one follow at once.
                self._next_start = max(self._next_start, loop.time() + self.delay)


class PerHostTransport(httpx.AsyncBaseTransport):
    """Routes each request to its origin's own pool of at most `per_host` connections, kept alive between
    requests; at most `max_pools` pools are kept, the least recently used idle ones closed beyond that.

    httpcore's pool re-examines every pooled connection each time a request enters or leaves it, polling each
    idle socket and counting idle connections once per connection (encode/httpcore#1035, open): with the
    dozens of hosts one pass visits, that bookkeeping cost more CPU than reading the answers. A pool per host
    holds only the host's own few connections. A pool keeps its sockets until it is used again or closed, so
    the service, which keeps one Fetcher for its life and meets thousands of hosts, would otherwise pile up
    sockets its outlets closed long ago. All pools share one TLS context, and every connection goes through
    the address guard.
    """

    def __init__(self, *, policy: AddressPolicy, per_host: int, max_pools: int) -> None:
        self._backend = GuardedBackend(policy)
        self._limits = httpx.Limits(max_connections=per_host, max_keepalive_connections=per_host)
        self._max_pools = max_pools
        self._tls: ssl.SSLContext | None = None
        self._pools: OrderedDict[tuple[bytes, bytes, int | None], httpx.AsyncHTTPTransport] = OrderedDict()
        self._busy: Counter[tuple[bytes, bytes, int | None]] = Counter()  # responses not closed yet

    @property
    def pools(self) -> int:
        """How many per-host pools are open."""
        return len(self._pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin = (url.raw_scheme, url.raw_host, url.port)
        # No await until the pool is found or made and counted busy: requests run side by side.
        pool = self._pools.get(origin)
        evicted = []
        if pool is None:
            evicted = self._evict_idle(keep=self._max_pools - 1)
            if self._tls is None:
                self._tls = httpx.create_ssl_context()  # loading the CA bundle takes a while: once, when first needed
            pool = self._pools[origin] = httpx.AsyncHTTPTransport(verify=self._tls, limits=self._limits)
            # httpx takes no network backend of its own yet (encode/httpx#3180): put the guard under its pool.
            pool._pool._network_backend = self._backend
        self._pools.move_to_end(origin)
        self._busy[origin] += 1
        try:
            for idle in evicted:
                await idle.aclose()
            response = await pool.handle_async_request(request)
        except BaseException:
            self._release(origin)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Releasing(response.stream, lambda: self._release(origin))
        return response

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.aclose()

    def _release(self, origin: tuple[bytes, bytes, int | None]) -> None:
        self._busy[origin] -= 1
        if self._busy[origin] <= 0:
            del self._busy[origin]

    def _evict_idle(self, *, keep: int) -> list[httpx.AsyncHTTPTransport]:
        """Take out the least recently used pools with no response open until at most `keep` are left; the
        caller closes them."""
        evicted = []
        for origin in list(self._pools):
            if len(self._pools) <= keep:
                break
            if origin not in self._busy:
                evicted.append(self._pools.pop(origin))
        return evicted


class _Releasing(httpx.AsyncByteStream):
    """A response body that says when it is closed (the Fetcher closes every response it opens)."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class Fetcher:
    """One per `monitor poll` pass, one for the service's life: an async client with keep-alive, politeness
    gates and a robots cache."""

    def __init__(
        self,
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        policy: AddressPolicy | None = None,
        limits: FetchLimits | None = None,
        robots: RobotsCache | None = None,
    ) -> None:
        self.user_agent = user_agent
        self.limits = limits or FetchLimits()
        self.robots = robots if robots is not None else RobotsCache()
        self._client = httpx.AsyncClient(
            transport=PerHostTransport(
                policy=policy or AddressPolicy(),
                per_host=self.limits.per_host,
                max_pools=self.limits.max_connections,
            ),
            headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(self.limits.read_timeout, connect=self.limits.connect_timeout),
            follow_redirects=False,
        )
        self._global = asyncio.Semaphore(self.limits.max_connections)
        self._gates: dict[str, _HostGate] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._client.aclose()

    async def fetch_feed(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
        """GET a feed, conditionally when validators are known, retrying transient failures."""
        headers = {"Accept": FEED_ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        return await self._with_retries(url, headers, self.limits.feed_max_bytes)

    async def fetch_page(self, url: str) -> FetchResult:
        """GET an article page if robots.txt allows it, retrying transient failures."""
        if not is_http_url(url):
            return FetchResult(url, FetchOutcome.REFUSED, error="only http(s) URLs are fetched")
        rules = await self._robots_rules(url)
        if isinstance(rules, FetchResult):
            return replace(rules, url=url)  # the site itself is refused: say why, not "robots.txt"
        if not rules.allows(url, self.user_agent):
            reason = "robots.txt could not be read (RFC 9309: assume disallowed)" if rules.disallow_all else None
            return FetchResult(url, FetchOutcome.REFUSED, error=reason or "disallowed by robots.txt")
        delay = rules.crawl_delay(self.user_agent)
        if delay is not None:
            gate = self._gate(url)
            gate.delay = max(gate.delay, delay)
        return await self._with_retries(url, {"Accept": PAGE_ACCEPT}, self.limits.page_max_bytes)

    async def _robots_rules(self, url: str) -> RobotsRules | FetchResult:
        """The site's robots.txt rules, or the refusal when the site's address may not be contacted."""
        cached = self.robots.get(url)
        if cached is not None:
            return cached
        key = robots_url(url)
        async with self._robots_locks.setdefault(key, asyncio.Lock()):
            cached = self.robots.get(url)
            if cached is not None:
                return cached
            result = await self._attempt(key, {"Accept": "text/plain"}, ROBOTS_MAX_BYTES)
            if result.outcome is FetchOutcome.REFUSED:
                return result
            status = result.status if result.outcome in (FetchOutcome.OK, FetchOutcome.HARD_ERROR) else None
            if result.outcome is FetchOutcome.HARD_ERROR and result.status is None:
                status = 404  # an oversized or redirect-looping robots.txt: treat as absent
            rules, ttl = rules_from_response(status, result.body)
            self.robots.put(url, rules, ttl)
            return rules

    async def _with_retries(self, url: str, headers: dict[str, str], max_bytes: int) -> FetchResult:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(1 + self.limits.retries),
            wait=self._wait,
            retry=retry_if_result(self._worth_retrying),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        result: FetchResult = await retrying(self._attempt, url, headers, max_bytes)
        attempts = retrying.statistics.get("attempt_number", 1)
        return replace(result, attempts=attempts) if attempts != result.attempts else result

    def _worth_retrying(self, result: FetchResult) -> bool:
        if result.outcome is not FetchOutcome.SOFT_ERROR:
            return False
        return result.retry_after is None or result.retry_after <= self.limits.retry_max_wait

    def _wait(self, state: RetryCallState) -> float:
        result = state.outcome.result() if state.outcome else None
        if isinstance(result, FetchResult) and result.retry_after is not None:
            return result.retry_after
        # Exponential backoff with full jitter: retries of many clients do not arrive in step.
        ceiling = self.limits.retry_base * 2 ** (state.attempt_number - 1)
        return random.uniform(ceiling / 2, ceiling)

    def _gate(self, url: str) -> _HostGate:
        host = (urlsplit(url).hostname or "").lower()
        gate = self._gates.get(host)
        if gate is None:
            gate = self._gates[host] = _HostGate(self.limits.per_host, self.limits.host_delay)
        return gate

    async def _attempt(self, url: str, headers: dict[str, str], max_bytes: int) -> FetchResult:
        """One try: follow redirects by hand, checking every hop."""
        started = time.monotonic()
        current, seen, permanent = url, {url}, True
        spent = 0.0  # network time of the earlier hops: total_timeout bounds the whole chain
        for _hop in range(self.limits.max_redirects + 1):
            if not is_http_url(current):
                return _failure(current, FetchOutcome.REFUSED, "only http(s) URLs are fetched", started)
            async with self._gate(current).slot(), self._global:
                hop_started = time.monotonic()
                try:
                    async with asyncio.timeout(max(self.limits.total_timeout - spent, 0.001)):
                        response = await self._client.send(
                            self._client.build_request("GET", current, headers=headers), stream=True
                        )
                        try:
                            location = response.headers.get("location")
                            if response.status_code in REDIRECT_STATUSES and location:
                                target = urljoin(current, location.strip())
                                permanent = permanent and response.status_code in PERMANENT_REDIRECTS
                                if target in seen:
                                    return _failure(current, FetchOutcome.HARD_ERROR, "redirect loop", started)
                                seen.add(target)
                                current = target
                                spent += time.monotonic() - hop_started
                                continue
                            result = await self._complete(response, max_bytes, started)
                        finally:
                            await response.aclose()
                except AddressRefusedError as exc:
                    return _failure(current, FetchOutcome.REFUSED, f"refused: {exc}", started)
                except TimeoutError:
                    error = f"took longer than {self.limits.total_timeout:.0f}s"
                    return _failure(current, FetchOutcome.SOFT_ERROR, error, started)
                except httpx.TimeoutException as exc:
                    return _failure(current, FetchOutcome.SOFT_ERROR, f"timed out ({type(exc).__name__})", started)
                except httpx.TransportError as exc:
                    return _failure(current, FetchOutcome.SOFT_ERROR, _describe(exc), started)
                except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
                    return _failure(current, FetchOutcome.REFUSED, f"invalid URL: {exc}", started)
                except httpx.HTTPError as exc:
                    return _failure(current, FetchOutcome.HARD_ERROR, f"{type(exc).__name__}: {exc}", started)
            if len(seen) > 1 and permanent and result.outcome in (FetchOutcome.OK, FetchOutcome.NOT_MODIFIED):
                result = replace(result, permanent_redirect=current)
            return result
        return _failure(current, FetchOutcome.HARD_ERROR, f"more than {self.limits.max_redirects} redirects", started)

    async def _complete(self, response: httpx.Response, max_bytes: int, started: float) -> FetchResult:
        url = str(response.url)
        meta = {
            "status": response.status_code,
            "content_type": response.headers.get("content-type"),
            "etag": response.headers.get("etag"),
            "last_modified": response.headers.get("last-modified"),
            "max_age": _max_age(response.headers.get("cache-control")),
        }
        if response.status_code == 304:
            return FetchResult(url, FetchOutcome.NOT_MODIFIED, elapsed=time.monotonic() - started, **meta)
        if not 200 <= response.status_code < 300:
            transient = response.status_code in TRANSIENT_STATUSES
            return FetchResult(
                url,
                FetchOutcome.SOFT_ERROR if transient else FetchOutcome.HARD_ERROR,
                error=f"HTTP {response.status_code} {response.reason_phrase}".strip(),
                retry_after=_retry_after(response.headers.get("retry-after")) if transient else None,
                elapsed=time.monotonic() - started,
                **meta,
            )
        body, error = await _read_body(response, max_bytes)
        if error is not None:
            return FetchResult(url, FetchOutcome.HARD_ERROR, error=error, elapsed=time.monotonic() - started, **meta)
        return FetchResult(url, FetchOutcome.OK, body=body, elapsed=time.monotonic() - started, **meta)


async def _read_body(response: httpx.Response, max_bytes: int) -> tuple[bytes, str | None]:
    """The decoded body, or an error once it exceeds max_bytes after decompression."""
    too_large = f"body larger than {max_bytes / (1024 * 1024):g} MB"
    declared = response.headers.get("content-length")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity") and declared and declared.isdigit() and int(declared) > max_bytes:
        return b"", too_large
    body = bytearray()
    try:
        decoder = _Decoder(encoding)
        async for chunk in response.aiter_raw():
            body += decoder.feed(chunk, max_bytes + 1 - len(body))
            if len(body) > max_bytes:
                return b"", too_large
        body += decoder.feed(b"", max_bytes + 1 - len(body))
    except zlib.error as exc:
        return b"", f"broken {encoding} body: {exc}"
    except ValueError as exc:
        return b"", str(exc)
    if len(body) > max_bytes:
        return b"", too_large
    return bytes(body), None


class _Decoder:
    """Content-Encoding decoding with an output ceiling per call (zlib's max_length)."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        if encoding in ("", "identity"):
            self._zlib = None
        elif encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = None  # zlib-wrapped or raw: decided on the first bytes
        else:
            raise ValueError(f"unsupported Content-Encoding {encoding!r}")
        self._pending = b""

    def feed(self, data: bytes, limit: int) -> bytes:
        if self.encoding in ("", "identity"):
            return data
        if self._zlib is None:
            # RFC 9110 says zlib format; some servers send raw deflate.
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS if data[:1] == b"\x78" else -zlib.MAX_WBITS)
        source = self._pending + data
        output = self._zlib.decompress(source, max(limit, 1))
        self._pending = self._zlib.unconsumed_tail
        if self._zlib.eof and self._zlib.unused_data and self.encoding != "deflate":
            # RFC 1952 2.2: a gzip body may hold several members, one after the other.
            rest = self._zlib.unused_data
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._pending = b""
            output += self.feed(rest, max(limit - len(output), 1))
        return output


def _max_age(cache_control: str | None) -> float | None:
    if not cache_control:
        return None
    for directive in cache_control.lower().split(","):
        name, _, value = directive.strip().partition("=")
        if name == "max-age" and value.strip().strip('"').isdigit():
            return float(value.strip().strip('"'))
    return None


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _failure(url: str, outcome: FetchOutcome, error: str, started: float) -> FetchResult:
    return FetchResult(url, outcome, error=error, elapsed=time.monotonic() - started)


def _describe(exc: httpx.TransportError) -> str:
    detail = str(exc).strip()
    if not detail or detail == type(exc).__name__:
        detail = "the connection was closed or reset by the server"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {detail}"
    return f"{type(exc).__name__}: {detail}"
