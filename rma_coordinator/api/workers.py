"""Part 1 of the worker API, exactly as the deployed coordinator speaks it, plus Part 2's token
and generation when enabled: health, register, heartbeat, unregister. The services a worker
announces (Parts 3 and 4: `containers`, `tunnel_url`) are kept for the service index.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from rma_coordinator import __version__
from rma_coordinator.api.deps import Coordinator, State, check_token, token_hash
from rma_coordinator.api.limits import registration_allowed
from rma_coordinator.api.models import HeartbeatBody, RegisterBody
from rma_coordinator.db import Beat, NewWorker, Registry
from rma_coordinator.tiers import tier_for

WORKER_ID_RE = re.compile(r"^worker-[0-9a-f]{8}$")
router = APIRouter()
common = APIRouter()  # every dialect's


def _new_worker_id(registry: Registry, previous: str | None, authorization: str | None) -> str:
    """The previous id when the caller proves it holds it (its token: the current or the one
    before of a worker still registered — an agent that crashed and registers again, perhaps
    before saving the last answer —, or the last one of a worker that left), else a new one.
    Without the first case an agent killed between this answer and saving it left a ghost
    worker behind, registered and never heard of again."""
    if previous and WORKER_ID_RE.match(previous):
        known, current = registry.token_hash(previous, fresh=True)
        # Still registered: its current token, or the one before (a registration again whose
        # answer the agent never saved); gone: the token it left with.
        expected = (
            [current, registry.previous_hash(previous)]
            if known
            else [registry.retired_hash(previous)]
        )
        given = (authorization or "").removeprefix("Bearer ").strip()
        if given and any(e and hmac.compare_digest(token_hash(given), e) for e in expected):
            return previous  # the same machine coming back: its id (and its containers' env)
    return f"worker-{secrets.token_hex(4)}"


@common.get("/health")
def health(state: State) -> dict[str, Any]:
    """Every dialect's; `requests` (per route, since start) lets tests bound what a worker sent."""
    counts = state.registry.counts()
    return {
        "status": "healthy",
        "version": __version__,
        "dialect": state.config.dialect,
        "workers": {"total": sum(counts.values()), **counts},
        "requests": dict(state.requests),
    }


def screened_before(state: Coordinator, body: HeartbeatBody) -> bool:
    """Whether every URL the heartbeat announces was screened lately (the same URLs come every
    interval): then screening it again resolves nothing."""
    urls = [r.get("service_url") for r in body.containers or () if isinstance(r, dict)]
    return all(state.guard.known(u) for u in urls if isinstance(u, str))


async def screen_heartbeat(state: Coordinator, body: HeartbeatBody) -> None:
    """A heartbeat's announced URLs screened (api/guard.py); resolved off the event loop only
    when one is new."""
    if screened_before(state, body):
        state.guard.screen(body.containers)
    else:
        await run_in_threadpool(state.guard.screen, body.containers)


def record_heartbeat(state: Coordinator, body: HeartbeatBody) -> int | None:
    """Record a heartbeat in any dialect; the assignment generation, or None: not known."""
    state.requests["heartbeat"] += 1
    beat = Beat(
        health=body.status,
        load=body.current_load,
        memory=body.available_memory,
        reported=body.containers,
        converged=body.assignment_generation,
        services_status=body.services_status,
        gpu_utilization=body.gpu_utilization,
    )
    return state.registry.heartbeat(body.worker_id, beat, now=state.config.clock())


@router.post("/api/worker/register", dependencies=[Depends(registration_allowed)])
def register(
    body: RegisterBody, state: State, authorization: Annotated[str | None, Header()] = None
) -> dict[str, Any]:
    config, registry = state.config, state.registry
    state.requests["register"] += 1
    caps = body.capabilities.model_dump()
    # The id hint is an extension: a Part 1 coordinator ignores it, like the deployed one.
    previous = body.previous_worker_id if config.part2 else None
    worker_id = _new_worker_id(registry, previous, authorization)
    tier = tier_for(caps)
    containers = config.catalog.containers_for(
        tier, worker_id, config.public_url, http_marks=config.dialect != "part1"
    )
    token = secrets.token_urlsafe(32) if config.part2 else None
    services = [c.model_dump() for c in body.containers or ()]
    state.guard.screen(services)
    worker = NewWorker(
        worker_id,
        tier,
        caps,
        containers,
        token_hash=token_hash(token) if token else None,
        services=services,
        tunnel_url=body.tunnel_url if state.guard.announced(body.tunnel_url or "") else "",
        ip_address=body.ip_address,
    )
    registry.add(worker, now=config.clock())
    answer: dict[str, Any] = {
        "worker_id": worker_id,
        "tier": tier,
        "assigned_containers": containers,
        "heartbeat_url": "/api/worker/heartbeat",
        "heartbeat_interval": config.heartbeat_interval,
        "coordinator_url": config.public_url,
    }
    if token:
        answer |= {"token": token, "assignment_url": f"/api/worker/{worker_id}/assignment"}
    if state.ledger is not None:  # Part 5: its key for priority; its receipts' public key kept
        answer["contributor_key"] = state.ledger.registered(
            worker_id,
            public_key=body.public_key,
            display_name=body.display_name,
            tier=tier,
            capabilities=caps,
        )
    return answer


@router.post("/api/worker/heartbeat")
async def heartbeat(body: HeartbeatBody, request: Request) -> dict[str, Any]:
    """The hot path (every worker, every interval), so `async` with its two short indexed SQLite
    statements inline, and its state read without a dependency: in the threadpool it took 3 x
    fewer heartbeats per second here (`make bench`), the GIL passed among 40 threads."""
    state: Coordinator = request.app.state.coordinator
    check_token(state.registry, body.worker_id, request.headers.get("authorization"))
    await screen_heartbeat(state, body)
    generation = record_heartbeat(state, body)
    if generation is None:
        raise HTTPException(404, "Worker not found")
    answer: dict[str, Any] = {"status": "ok"}
    if state.config.part2:
        answer["assignment_generation"] = generation
    return answer


@router.delete("/api/worker/unregister/{worker_id}")
async def unregister(
    worker_id: str, state: State, authorization: Annotated[str | None, Header()] = None
) -> dict[str, str]:
    """Async only to wake the worker's long poll on the event loop; SQLite runs in a thread."""
    await run_in_threadpool(check_token, state.registry, worker_id, authorization)
    await run_in_threadpool(state.registry.remove, worker_id)
    state.notifier.notify(worker_id)
    return {"status": "unregistered", "worker_id": worker_id}
