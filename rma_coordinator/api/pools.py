"""The proxy's connections to workers (issue 25): one pool per process instead of a client per
request. Plain HTTP shares one pool (the address is pinned, the Host header says the name, and
HTTP/1.1 lets each request on a connection name its own); each HTTPS host has its own pool, so a
connection opened with one name's SNI never carries another name's request — at most TLS_HOSTS
of them, the least recently used closed first. Timeouts: CONNECT to connect (and to wait for a
pooled connection), READ for the first byte and between chunks.
"""

from __future__ import annotations

from collections import OrderedDict

import httpx

from rma_coordinator.api.guard import Target

CONNECT, READ = 5.0, 30.0  # seconds: to connect; to the first byte and between chunks
TIMEOUT = httpx.Timeout(READ, connect=CONNECT, pool=CONNECT)
LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30.0)
TLS_HOSTS = 64  # HTTPS hosts with a pool of their own kept at once


class Pools:
    """The process's connections to workers: one pool for plain HTTP (a pinned address serves
    every Host), one per HTTPS host (its SNI), at most TLS_HOSTS of them."""

    def __init__(self) -> None:
        self._plain: httpx.AsyncClient | None = None
        self._tls: OrderedDict[str, httpx.AsyncClient] = OrderedDict()

    @staticmethod
    def _new() -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=TIMEOUT, limits=LIMITS, follow_redirects=False)

    async def client(self, target: Target) -> httpx.AsyncClient:
        if target.scheme != "https":
            if self._plain is None:
                self._plain = self._new()
            return self._plain
        found = self._tls.pop(target.host, None) or self._new()
        self._tls[target.host] = found
        while len(self._tls) > TLS_HOSTS:
            await self._tls.popitem(last=False)[1].aclose()
        return found

    async def close(self) -> None:
        clients = [*self._tls.values(), *([self._plain] if self._plain else [])]
        self._plain, self._tls = None, OrderedDict()
        for client in clients:
            await client.aclose()
