"""The reference coordinator as one FastAPI application: Part 1 exactly as the deployed RMA
coordinator speaks it, Part 2 when enabled (token, assignment resource with ETag, If-None-Match
and long poll), or one of Part 3's other dialects (edge, local: api/dialects.py), health, and an
admin API protected by a bearer token. The routes live in api/;
this module builds the state they share, the sweeper that marks silent workers offline and
forgets them, and the flush that writes the heartbeats kept in memory twice a second. OpenAPI is
served at /openapi.json and /docs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from rma_coordinator import __version__
from rma_coordinator.api import admin, assignment, dialects, leaderboard, proxy, workers
from rma_coordinator.api.deps import Config, Coordinator, Notifier, own_addresses
from rma_coordinator.api.fastpath import HeartbeatFastPath
from rma_coordinator.api.guard import Guard
from rma_coordinator.api.limits import BodyLimit, RateLimit
from rma_coordinator.api.priority import Gate
from rma_coordinator.db import Registry
from rma_coordinator.ledger import Ledger

__all__ = ["Config", "create_app"]


def create_app(config: Config) -> FastAPI:
    registry = Registry(config.db_path)
    guard = Guard(config.allow_private_workers, own_addresses(config))
    registry.presence_gap = config.offline_after  # silent longer: what it ran has ended
    ledger = Ledger(registry, grace=config.heartbeat_interval) if config.part2 else None
    gate = Gate(config.max_in_flight, config.queue_max, config.queue_wait)
    state = Coordinator(
        config, registry, Notifier(), RateLimit(), guard=guard, ledger=ledger, gate=gate
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(_sweep(registry, config))
        flusher = asyncio.create_task(_flush(registry, ledger))
        loop, stop = asyncio.get_running_loop(), threading.Event()
        # Replicas on one PostgreSQL: a change made on another wakes this one's long polls.

        def heard(worker_id: str) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: shutting down
                loop.call_soon_threadsafe(state.notifier.notify, worker_id)

        registry.listen(heard, stop)
        yield
        stop.set()
        sweeper.cancel()
        flusher.cancel()
        await state.pools.close()
        registry.close()

    app = FastAPI(title="RMA coordinator (reference)", version=__version__, lifespan=lifespan)
    app.state.registry = registry
    app.state.coordinator = state
    app.include_router(workers.common)
    if config.dialect == "edge":
        app.include_router(dialects.edge)
    elif config.dialect == "local":
        app.include_router(dialects.local)
    else:
        app.include_router(workers.router)
    if config.part2:
        app.include_router(assignment.router)
    app.include_router(admin.router)
    if ledger is not None:
        app.include_router(leaderboard.router)
        app.include_router(leaderboard.admin)
    app.include_router(proxy.router)
    if config.dialect not in ("edge", "local"):
        app.add_middleware(HeartbeatFastPath)  # the hot path's success (api/fastpath.py)
    app.add_middleware(BodyLimit)  # added last: outside the fast path
    return app


async def _sweep(registry: Registry, config: Config) -> None:
    period = max(0.5, min(config.offline_after / 5, 10.0))
    while True:
        await asyncio.sleep(period)
        await run_in_threadpool(
            registry.sweep, config.clock(), config.offline_after, config.forget_after
        )


FLUSH = 0.5  # seconds between writes of the heartbeats this process kept (db.py)


async def _flush(registry: Registry, ledger: Ledger | None) -> None:
    while True:
        await asyncio.sleep(FLUSH)
        await run_in_threadpool(registry.flush)
        if ledger is not None:
            await run_in_threadpool(ledger.flush)
