"""The admin API (bearer token from --admin-token; off without one): list the workers, the
service index (which worker serves each RMA service, at which URL: from the registration's
`containers`, updated by Part 2 heartbeat rows that carry a `service_url`), replace a worker's
assignment (which wakes its long poll), forget a worker.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

from rma_coordinator.api.deps import Admin, State
from rma_coordinator.api.models import AssignmentBody
from rma_coordinator.db import Worker

router = APIRouter(prefix="/api/admin", dependencies=[Admin])


@router.get("/workers")
def workers(state: State) -> list[dict[str, Any]]:
    return [w.public() for w in state.registry.all()]


@router.get("/services")
def services(state: State) -> dict[str, list[dict[str, Any]]]:
    index: dict[str, list[dict[str, Any]]] = {}
    for worker in state.registry.all():
        status = worker.services_status or {}
        for name, entry in _announced(worker).items():
            index.setdefault(name, []).append(
                {
                    "worker_id": worker.id,
                    "service_url": entry.get("service_url"),
                    "port": entry.get("port"),
                    "status": status.get(name),
                }
            )
    return index


def _announced(worker: Worker) -> dict[str, dict[str, Any]]:
    found = {str(s.get("name")): s for s in worker.services or () if isinstance(s, dict)}
    for row in worker.reported or ():  # a Part 2 heartbeat carries the same URLs
        if isinstance(row, dict) and row.get("service") and "service_url" in row:
            found[str(row["service"])] = {**row, "name": row["service"]}
    return found


@router.put("/workers/{worker_id}/assignment")
async def set_assignment(worker_id: str, body: AssignmentBody, state: State) -> dict[str, Any]:
    """Async only to wake the worker's long poll on the event loop; SQLite runs in a thread."""
    generation = await run_in_threadpool(
        state.registry.set_assignment, worker_id, body.containers, body.tier
    )
    if generation is None:
        raise HTTPException(404, "Worker not found")
    state.notifier.notify(worker_id)
    return {"worker_id": worker_id, "generation": generation}


@router.delete("/workers/{worker_id}")
async def forget(worker_id: str, state: State) -> dict[str, str]:
    """Forget a worker, as the sweep does after a long silence (`nomad node purge`): its heartbeats
    are 404 from now on, on every replica, and it registers again (keeping its id with its last
    token)."""
    if not await run_in_threadpool(state.registry.remove, worker_id):
        raise HTTPException(404, "Worker not found")
    state.notifier.notify(worker_id)
    return {"status": "forgotten", "worker_id": worker_id}
