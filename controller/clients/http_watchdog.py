"""A true wall-clock deadline for one HTTP exchange with the coordinator.

requests' read timeout bounds each socket read, not the answer: a server that trickles one byte a
second (headers or body) holds the request open for as long as it likes. Here a watchdog timer
shuts the connection's socket down when the deadline passes, so the blocked read ends at once and
the call fails as a timeout (retried with backoff like any outage).

The socket is found through the connection classes of a requests adapter (`WatchedAdapter`):
each records its socket in the exchange being watched, in the calling thread, just before it
reads the answer (for a new connection and a reused one alike).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()


class Exchange:
    """One watched exchange: the socket it reads from, and whether the watchdog fired."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.expired = False
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            self.sock = sock
            if self.expired:
                self._shut()

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shut()

    def _shut(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):  # already closed
                self.sock.shutdown(socket.SHUT_RDWR)


def _attach(sock: Any) -> None:
    exchange = getattr(_current, "exchange", None)
    if exchange is not None:
        exchange.attach(sock)


class _WatchedHTTP(HTTPConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _attach(self.sock)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPS(HTTPSConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _attach(self.sock)
        return super().getresponse(*args, **kwargs)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTP


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPS


class WatchedAdapter(HTTPAdapter):
    """An adapter whose connections report their socket to the exchange being watched."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


@contextmanager
def deadline(seconds: float) -> Iterator[Exchange]:
    """Watch the requests made in this block by this thread; after `seconds`, cut them off."""
    exchange = Exchange()
    timer = threading.Timer(max(0.0, seconds), exchange.expire)
    timer.daemon = True
    _current.exchange = exchange
    timer.start()
    try:
        yield exchange
    finally:
        timer.cancel()
        _current.exchange = None
