"""The fetcher's httpx transport: a small connection pool per host, every connection through the address guard.

httpcore's pool re-examines every pooled connection each time a request enters or leaves it, polling each
idle socket and counting idle connections once per connection (encode/httpcore#1035, open): with the
dozens of hosts one poll pass visits, that bookkeeping cost more CPU than reading the answers. A pool per
host holds at most the host's own few connections, so each pass over it is short; the overall bound on
connections stays the fetcher's. All pools share one TLS context.
"""

from __future__ import annotations

import ssl

import httpx

from monitor.pipeline.guard import AddressPolicy, GuardedBackend


class PerHostTransport(httpx.AsyncBaseTransport):
    """Routes each request to its origin's own pool of at most `per_host` connections, kept alive between requests."""

    def __init__(self, *, policy: AddressPolicy, per_host: int) -> None:
        self._backend = GuardedBackend(policy)
        self._limits = httpx.Limits(max_connections=per_host, max_keepalive_connections=per_host)
        self._tls: ssl.SSLContext | None = None
        self._pools: dict[tuple[bytes, bytes, int | None], httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin = (url.raw_scheme, url.raw_host, url.port)
        pool = self._pools.get(origin)
        if pool is None:
            if self._tls is None:
                self._tls = httpx.create_ssl_context()  # loading the CA bundle takes a while: once, when first needed
            pool = self._pools[origin] = httpx.AsyncHTTPTransport(verify=self._tls, limits=self._limits)
            # httpx takes no network backend of its own yet (encode/httpx#3180): put the guard under its pool.
            pool._pool._network_backend = self._backend
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()
