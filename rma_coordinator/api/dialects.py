"""The RMA project's other two coordinators (the contract's Part 3), as their own code behaves:

- edge (`--dialect edge`): workers bring their own services; registration keeps the worker's id,
  indexes the services it announces and answers with no assignment key at all; an unknown
  worker's heartbeat is 404 `{"error": ...}`. `--test-mode` is its debugging build: every
  registration answers `"status": "test_mode"` and stores nothing, so every heartbeat is 404.
- local (`--dialect local`): registration REQUIRES `worker_id` and `tunnel_url` (422 without);
  the tier comes from capability flags; services are assigned by name (`assigned_services`);
  404 `{"detail": ...}`.

Both share the registry and the heartbeat recording with Part 1 (workers.py).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from rma_coordinator.api.deps import Coordinator, State
from rma_coordinator.api.limits import registration_allowed
from rma_coordinator.api.models import EdgeRegisterBody, HeartbeatBody, LocalRegisterBody
from rma_coordinator.api.workers import record_heartbeat
from rma_coordinator.tiers import tier_for

edge = APIRouter()
local = APIRouter()

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


def _store(state: Coordinator, worker_id: str, tier: int, body: EdgeRegisterBody) -> int:
    services = _services(body)
    state.registry.add(
        worker_id,
        token_hash=None,
        tier=tier,
        capabilities=body.capabilities,
        containers=[],
        now=state.config.clock(),
        services=services,
        tunnel_url=body.tunnel_url,
        ip_address=body.ip_address,
    )
    return len(services)


@edge.post("/api/worker/register", dependencies=[Depends(registration_allowed)])
def edge_register(body: EdgeRegisterBody, state: State) -> dict[str, Any]:
    state.requests["register"] += 1
    worker_id = body.worker_id or f"worker-{int(time.time() * 1000)}-{secrets.token_hex(4)}"
    tier, interval = tier_for(body.capabilities), state.config.heartbeat_interval
    if state.config.test_mode:
        return {"status": "test_mode", "worker_id": worker_id, "tier": tier}
    registered = _store(state, worker_id, tier, body)
    return {
        "worker_id": worker_id,
        "tier": tier,
        "heartbeat_interval": interval,
        "is_heartbeat_leader": False,
        "services_registered": registered,
    }


@edge.post("/api/worker/heartbeat")
async def edge_heartbeat(body: HeartbeatBody, request: Request) -> Any:
    state: Coordinator = request.app.state.coordinator
    if record_heartbeat(state, body) is None:
        return JSONResponse({"error": "Worker not found"}, status_code=404)
    return {"status": "ok"}


@edge.delete("/api/worker/unregister/{worker_id}")
def edge_unregister(worker_id: str, state: State) -> dict[str, str]:
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
def local_register(body: LocalRegisterBody, state: State) -> dict[str, Any]:
    state.requests["register"] += 1
    tier = local_tier(body)
    _store(state, body.worker_id, tier, body)
    assigned = LOCAL_SERVICES[tier]
    return {
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
    if record_heartbeat(state, body) is None:
        raise HTTPException(404, "Worker not found")
    return {"status": "ok"}


@local.delete("/api/worker/unregister/{worker_id}")
def local_unregister(worker_id: str, state: State) -> dict[str, str]:
    if not state.registry.remove(worker_id):
        raise HTTPException(404, "Worker not found")
    return {"status": "unregistered", "worker_id": worker_id}
