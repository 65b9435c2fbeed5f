"""The coordinator's HTTP API: Part 1 exactly as the deployed RMA coordinator speaks it, Part 2
when enabled (token, assignment resource with ETag, If-None-Match and long poll), health, and an
admin API protected by a bearer token. OpenAPI is served at /openapi.json and /docs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from rma_coordinator import __version__
from rma_coordinator.db import Registry
from rma_coordinator.tiers import Catalog, tier_for

WORKER_ID_RE = re.compile(r"^worker-[0-9a-f]{8}$")
MAX_WAIT = 60


@dataclass
class Config:
    db_path: Path
    catalog: Catalog
    public_url: str = "http://127.0.0.1:8080"
    admin_token: str | None = None
    heartbeat_interval: float = 30.0
    offline_after: float = 300.0
    forget_after: float = 1800.0
    part2: bool = True
    clock: Callable[[], float] = time.time


class Capabilities(BaseModel):
    model_config = ConfigDict(extra="allow")
    cpu_cores: int | float | str
    ram: str | float | int


class RegisterBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    capabilities: Capabilities
    ip_address: str | None = None
    previous_worker_id: str | None = None


class HeartbeatBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    worker_id: str
    status: str = "healthy"
    current_load: float | None = None
    available_memory: str | None = None
    assignment_generation: int | None = None
    containers: list[dict[str, Any]] | None = None


class AssignmentBody(BaseModel):
    containers: list[dict[str, Any]]
    tier: int | None = Field(default=None, ge=1, le=3)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Notifier:
    """Wakes long polls waiting on a worker's assignment."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def event(self, worker_id: str) -> asyncio.Event:
        return self._events.setdefault(worker_id, asyncio.Event())

    def notify(self, worker_id: str) -> None:
        event = self._events.pop(worker_id, None)
        if event is not None:
            event.set()


def create_app(config: Config) -> FastAPI:
    registry = Registry(config.db_path)
    notifier = Notifier()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(_sweep(registry, config))
        yield
        sweeper.cancel()
        registry.close()

    app = FastAPI(title="RMA coordinator (reference)", version=__version__, lifespan=lifespan)
    app.state.registry = registry
    _worker_routes(app, config, registry, notifier)
    _admin_routes(app, config, registry, notifier)
    return app


async def _sweep(registry: Registry, config: Config) -> None:
    period = max(0.5, min(config.offline_after / 5, 10.0))
    while True:
        await asyncio.sleep(period)
        registry.sweep(config.clock(), config.offline_after, config.forget_after)


def _check_token(registry: Registry, worker_id: str, authorization: str | None) -> None:
    known, token_hash = registry.token_hash(worker_id)
    if not known:
        raise HTTPException(404, "Worker not found")
    if token_hash is None:
        return
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(_hash(given), token_hash):
        raise HTTPException(401, "invalid or missing worker token")


def _new_worker_id(registry: Registry, previous: str | None) -> str:
    if previous and WORKER_ID_RE.match(previous) and not registry.exists(previous):
        return previous  # the same machine coming back: keep its id (and its containers' env)
    return f"worker-{secrets.token_hex(4)}"


def _worker_routes(app: FastAPI, config: Config, registry: Registry, notifier: Notifier) -> None:
    @app.get("/health")
    async def health() -> dict[str, Any]:
        counts = registry.counts()
        return {"status": "healthy", "version": __version__,
                "workers": {"total": sum(counts.values()), **counts}}

    @app.post("/api/worker/register")
    async def register(body: RegisterBody) -> dict[str, Any]:
        caps = body.capabilities.model_dump()
        # The id hint is an extension: a Part 1 coordinator ignores it, like the deployed one.
        worker_id = _new_worker_id(registry, body.previous_worker_id if config.part2 else None)
        tier = tier_for(caps)
        containers = config.catalog.containers_for(tier, worker_id, config.public_url)
        token = secrets.token_urlsafe(32) if config.part2 else None
        registry.add(worker_id, token_hash=_hash(token) if token else None, tier=tier,
                     capabilities=caps, containers=containers, now=config.clock())
        answer: dict[str, Any] = {
            "worker_id": worker_id, "tier": tier, "assigned_containers": containers,
            "heartbeat_url": "/api/worker/heartbeat",
            "heartbeat_interval": config.heartbeat_interval,
            "coordinator_url": config.public_url}
        if token:
            answer |= {"token": token, "assignment_url": f"/api/worker/{worker_id}/assignment"}
        return answer

    @app.post("/api/worker/heartbeat")
    async def heartbeat(body: HeartbeatBody,
                        authorization: str | None = Header(default=None)) -> dict[str, Any]:
        _check_token(registry, body.worker_id, authorization)
        generation = registry.heartbeat(
            body.worker_id, now=config.clock(), health=body.status, load=body.current_load,
            memory=body.available_memory, reported=body.containers,
            converged=body.assignment_generation)
        if generation is None:
            raise HTTPException(404, "Worker not found")
        answer: dict[str, Any] = {"status": "ok"}
        if config.part2:
            answer["assignment_generation"] = generation
        return answer

    @app.delete("/api/worker/unregister/{worker_id}")
    async def unregister(worker_id: str,
                         authorization: str | None = Header(default=None)) -> dict[str, str]:
        _check_token(registry, worker_id, authorization)
        registry.remove(worker_id)
        notifier.notify(worker_id)
        return {"status": "unregistered", "worker_id": worker_id}

    if config.part2:
        _assignment_route(app, registry, notifier)


def _assignment_route(app: FastAPI, registry: Registry, notifier: Notifier) -> None:
    @app.get("/api/worker/{worker_id}/assignment")
    async def assignment(worker_id: str, wait: int = Query(default=0, ge=0),
                         if_none_match: str | None = Header(default=None),
                         authorization: str | None = Header(default=None)) -> Response:
        _check_token(registry, worker_id, authorization)
        deadline = time.monotonic() + min(wait, MAX_WAIT)
        while True:
            event = notifier.event(worker_id)
            worker = registry.get(worker_id)
            if worker is None:
                raise HTTPException(404, "Worker not found")
            etag = f'"{worker.generation}"'
            if if_none_match != etag:
                return JSONResponse({"generation": worker.generation, "tier": worker.tier,
                                     "containers": worker.containers}, headers={"ETag": etag})
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Response(status_code=304, headers={"ETag": etag})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)


def _admin_routes(app: FastAPI, config: Config, registry: Registry, notifier: Notifier) -> None:
    def require_admin(request: Request) -> None:
        if not config.admin_token:
            raise HTTPException(403, "admin API disabled: start with --admin-token")
        given = (request.headers.get("authorization") or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), config.admin_token.encode()):
            raise HTTPException(401, "admin token required")

    @app.get("/api/admin/workers")
    async def workers(request: Request) -> list[dict[str, Any]]:
        require_admin(request)
        return [w.public() for w in registry.all()]

    @app.put("/api/admin/workers/{worker_id}/assignment")
    async def set_assignment(worker_id: str, body: AssignmentBody,
                             request: Request) -> dict[str, Any]:
        require_admin(request)
        generation = registry.set_assignment(worker_id, body.containers, body.tier)
        if generation is None:
            raise HTTPException(404, "Worker not found")
        notifier.notify(worker_id)
        return {"worker_id": worker_id, "generation": generation}
