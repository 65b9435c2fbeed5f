"""What the routers depend on, through FastAPI's `Depends`: the coordinator's state (config,
registry, notifier), the worker token check and the admin token check.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from rma_coordinator.api.guard import Guard, resolve
from rma_coordinator.api.limits import RateLimit
from rma_coordinator.api.pools import Pools
from rma_coordinator.api.priority import Gate
from rma_coordinator.db import Registry
from rma_coordinator.ledger import Ledger
from rma_coordinator.tiers import Catalog


@dataclass
class Config:
    db_path: Path | str  # a SQLite file, or a postgresql:// URL
    catalog: Catalog
    public_url: str = "http://127.0.0.1:8080"
    admin_token: str | None = None
    heartbeat_interval: float = 30.0
    offline_after: float = 300.0
    forget_after: float = 1800.0
    dialect: str = "full"  # full (Parts 1 + 2) | part1 | edge | local (the contract's Part 3)
    test_mode: bool = False  # the edge coordinator's debugging build: stores nothing
    clock: Callable[[], float] = time.time
    allow_private_workers: bool = False  # a LAN pool: proxy to private and loopback addresses
    listen: tuple[str, int] | None = None  # where it listens (never proxied to)
    max_in_flight: int = 8  # the proxy's requests on their way to one worker at a time
    queue_max: int = 100  # requests waiting for a busy service, at most
    queue_wait: float = 30.0  # seconds one waits, at most (then 429)

    @property
    def part2(self) -> bool:
        return self.dialect == "full"


class Notifier:
    """Wakes long polls waiting on a worker's assignment. Used on the event loop only.

    A poll watches its worker while it runs (`watch`); the last one to leave, by an answer, a
    timeout or a dropped client, forgets the worker: nothing is kept for polls that are over."""

    def __init__(self) -> None:
        self._watched: dict[str, tuple[asyncio.Event, int]] = {}  # worker -> (event, polls)

    @contextlib.contextmanager
    def watch(self, worker_id: str) -> Iterator[asyncio.Event]:
        """The event a change of this worker's assignment sets, while the block runs."""
        event, polls = self._watched.get(worker_id, (asyncio.Event(), 0))
        self._watched[worker_id] = (event, polls + 1)
        try:
            yield event
        finally:
            now, left = self._watched.get(worker_id, (None, 0))
            if now is event:  # not notified meanwhile (that forgot it already)
                if left <= 1:
                    del self._watched[worker_id]
                else:
                    self._watched[worker_id] = (event, left - 1)

    def waiting(self, worker_id: str) -> bool:
        """Whether a long poll of this worker is in progress now."""
        return worker_id in self._watched

    def __len__(self) -> int:
        """How many workers are watched now (0 once every poll is over)."""
        return len(self._watched)

    def notify(self, worker_id: str) -> None:
        entry = self._watched.pop(worker_id, None)
        if entry is not None:
            entry[0].set()


def own_addresses(config: Config) -> frozenset[tuple[str, int]]:
    """The coordinator's own (address, port)s: where it listens and its public URL's."""
    found = set()
    if config.listen is not None:
        found.add(config.listen)
    public = urllib.parse.urlsplit(config.public_url)
    if public.hostname:
        default = 443 if public.scheme == "https" else 80
        with contextlib.suppress(OSError, ValueError):
            for address in resolve(public.hostname, public.port or default):
                found.add((address, public.port or default))
    return frozenset(found)


@dataclass
class Coordinator:
    config: Config
    registry: Registry
    notifier: Notifier
    register_rate: RateLimit
    requests: Counter[str] = field(default_factory=Counter)  # per route, for /health
    guard: Guard = field(default_factory=Guard)
    pools: Pools = field(default_factory=Pools)  # the proxy's connections to workers
    ledger: Ledger | None = None  # credits (issue 26): the full dialect's
    gate: Gate = field(default_factory=Gate)  # the proxy's bound per worker, and its queue


async def coordinator(request: Request) -> Coordinator:
    """`async`: it never blocks, and a sync dependency would cost a threadpool hop per request."""
    state: Coordinator = request.app.state.coordinator
    return state


State = Annotated[Coordinator, Depends(coordinator)]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def holds(authorization: str | None, expected: str | None) -> bool:
    """Whether the bearer token of `authorization` is the one hashed to `expected` (None: the
    worker has no token, as on a Part 1 coordinator)."""
    given = (authorization or "").removeprefix("Bearer ").strip()
    return expected is None or hmac.compare_digest(token_hash(given), expected)


def check_token(registry: Registry, worker_id: str, authorization: str | None) -> None:
    """404 for an unknown worker; 401 when its token is required and wrong."""
    for fresh in (False, True):  # what is kept first; a mismatch may be another replica's token
        known, expected = registry.token_hash(worker_id, fresh=fresh)
        if not known:
            raise HTTPException(404, "Worker not found")
        if holds(authorization, expected):
            return
    raise HTTPException(401, "invalid or missing worker token")


def require_admin(state: State, authorization: Annotated[str | None, Header()] = None) -> None:
    admin = state.config.admin_token
    if not admin:
        raise HTTPException(403, "admin API disabled: start with --admin-token")
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), admin.encode()):
        raise HTTPException(401, "admin token required")


Admin = Depends(require_admin)
