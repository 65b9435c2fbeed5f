"""The RMA project's other two coordinators (the contract's Part 3), as their own code behaves:

- edge (`--dialect edge`): workers bring their own services; registration keeps the worker's id,
  indexes the services it announces and answers with no assignment key at all; an unknown
  worker's heartbeat is 404 `{"error": ...}`. `--test-mode` is its debugging build: every
  registration answers `"status": "test_mode"` and stores nothing, so every heartbeat is 404.
- local (`--dialect local`): registration REQUIRES `worker_id` and `tunnel_url` (422 without);
  the tier comes from capability flags; services are assigned by name (`assigned_services`);
  404 `{"detail": ...}`.

Both share the registry and the heartbeat recording with Part 1 (workers.py).

Unlike the RMA originals, a worker's id is its own here: registration answers a `token` (the
originals' clients ignore an extra field; the agent keeps it and sends it as its bearer token),
and heartbeats, unregistrations and a registration again of that id need it — 401 otherwise,
in the dialect's own error shape — so nobody can take over another worker's URL.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from rma_coordinator.api.deps import Coordinator, State, holds, token_hash
from rma_coordinator.api.limits import registration_allowed
from rma_coordinator.api.models import EdgeRegisterBody, HeartbeatBody, LocalRegisterBody
from rma_coordinator.api.workers import record_heartbeat, screen_heartbeat
from rma_coordinator.db import NewWorker
from rma_coordinator.tiers import tier_for

edge = APIRouter()
local = APIRouter()
Auth = Annotated[str | None, Header()]
NOT_YOURS = "this worker id is registered with another token"

# The local coordinator's services per tier, with the ports it expects (Part 3).
LOCAL_SERVICES: dict[int, list[tuple[str, int]]] = {
    1: [("llm-inference", 8105), ("vision-ocr", 8104), ("rag-embeddings", 8102)],
    2: [("ner-extraction", 8108), ("document-processing", 8103), ("notes-coa", 8100)],
    3: [("chromadb", 8000), ("redis", 6379), ("postgres", 5432), ("minio", 9000), ("neo4j", 7474)],
    4: [("coordinator", 8080), ("edge-proxy", 8787), ("load-balancer", 8090)],
}
WORKER_TYPES = {1: "gpu", 2: "cpu", 3: "storage", 4: "edge"}


def _services(body: EdgeRegisterBody) -> list[dict[str, Any]]:
    """What the worker serves: `containers`, or the older name list pointing at its tunnel."""
    if body.containers is not None:
        return [
            {**c.model_dump(), "service_url": c.service_url or body.tunnel_url}
            for c in body.containers
        ]
    fallback = body.tunnel_url or body.ip_address
    return [{"name": name, "service_url": fallback} for name in body.services or ()]


def _claim(state: Coordinator, worker_id: str, authorization: str | None) -> str | None:
    """A new token for `worker_id`; None when the id is known and held by another token."""
    known, expected = state.registry.token_hash(worker_id, fresh=True)
    if known and expected is not None and not holds(authorization, expected):
        return None
    return secrets.token_urlsafe(32)


def _owner(state: Coordinator, worker_id: str, authorization: str | None) -> int:
    """200 when the caller holds the worker's token, 404 for an unknown id, else 401."""
    known, expected = state.registry.token_hash(worker_id)
    if known and not holds(authorization, expected):  # kept: another replica may have a newer
        known, expected = state.registry.token_hash(worker_id, fresh=True)
    if not known:
        return 404
    return 200 if holds(authorization, expected) else 401


def _store(
    state: Coordinator, worker_id: str, tier: int, body: EdgeRegisterBody, token: str
) -> int:
    services = _services(body)
    state.guard.screen(services)
    tunnel = body.tunnel_url if state.guard.announced(body.tunnel_url or "") else ""
    worker = NewWorker(
        worker_id,
        tier,
        body.capabilities,
        [],
        token_hash=token_hash(token),
        services=services,
        tunnel_url=tunnel,
        ip_address=body.ip_address,
    )
    state.registry.add(worker, now=state.config.clock())
    return len(services)


@edge.post("/api/worker/register", dependencies=[Depends(registration_allowed)])
def edge_register(body: EdgeRegisterBody, state: State, authorization: Auth = None) -> Any:
    state.requests["register"] += 1
    worker_id = body.worker_id or f"worker-{int(time.time() * 1000)}-{secrets.token_hex(4)}"
    tier, interval = tier_for(body.capabilities), state.config.heartbeat_interval
    if state.config.test_mode:
        return {"status": "test_mode", "worker_id": worker_id, "tier": tier}
    token = _claim(state, worker_id, authorization)
    if token is None:
        return JSONResponse({"error": NOT_YOURS}, status_code=401)
    registered = _store(state, worker_id, tier, body, token)
    return {
        "worker_id": worker_id,
        "tier": tier,
        "heartbeat_interval": interval,
        "is_heartbeat_leader": False,
        "services_registered": registered,
        "token": token,
    }


@edge.post("/api/worker/heartbeat")
async def edge_heartbeat(body: HeartbeatBody, request: Request) -> Any:
    state: Coordinator = request.app.state.coordinator
    code = _owner(state, body.worker_id, request.headers.get("authorization"))
    if code == 401:
        return JSONResponse({"error": NOT_YOURS}, status_code=401)
    await screen_heartbeat(state, body)
    if code == 404 or record_heartbeat(state, body) is None:
        return JSONResponse({"error": "Worker not found"}, status_code=404)
    return {"status": "ok"}


@edge.delete("/api/worker/unregister/{worker_id}")
def edge_unregister(worker_id: str, state: State, authorization: Auth = None) -> Any:
    if _owner(state, worker_id, authorization) == 401:
        return JSONResponse({"error": NOT_YOURS}, status_code=401)
    state.registry.remove(worker_id)
    return {"status": "ok", "message": "Worker and services cleaned up"}


def local_tier(body: LocalRegisterBody) -> int:
    kind = (body.worker_type or "").lower()
    if body.has_gpu or kind == "gpu":
        return 1
    if kind == "cpu":
        return 2
    if body.has_storage or kind == "storage":
        return 3
    if body.has_edge or body.has_public_ip:
        return 4
    return 3


@local.post("/api/worker/register", dependencies=[Depends(registration_allowed)])
def local_register(
    body: LocalRegisterBody, state: State, authorization: Auth = None
) -> dict[str, Any]:
    state.requests["register"] += 1
    tier = local_tier(body)
    token = _claim(state, body.worker_id, authorization)
    if token is None:
        raise HTTPException(401, NOT_YOURS)
    _store(state, body.worker_id, tier, body, token)
    assigned = LOCAL_SERVICES[tier]
    return {
        "token": token,
        "status": "registered",
        "worker_id": body.worker_id,
        "worker_type": WORKER_TYPES[tier],
        "tier": tier,
        "assigned_services": [name for name, _ in assigned],
        "service_configs": [
            {"name": name, "port": port, "priority": i + 1}
            for i, (name, port) in enumerate(assigned)
        ],
        "message": f"Registered as a tier {tier} worker",
    }


@local.post("/api/worker/heartbeat")
async def local_heartbeat(body: HeartbeatBody, request: Request) -> dict[str, str]:
    state: Coordinator = request.app.state.coordinator
    if _owner(state, body.worker_id, request.headers.get("authorization")) == 401:
        raise HTTPException(401, NOT_YOURS)
    await screen_heartbeat(state, body)
    if record_heartbeat(state, body) is None:
        raise HTTPException(404, "Worker not found")
    return {"status": "ok"}


@local.delete("/api/worker/unregister/{worker_id}")
def local_unregister(worker_id: str, state: State, authorization: Auth = None) -> dict[str, str]:
    if _owner(state, worker_id, authorization) == 401:
        raise HTTPException(401, NOT_YOURS)
    if not state.registry.remove(worker_id):
        raise HTTPException(404, "Worker not found")
    return {"status": "unregistered", "worker_id": worker_id}
