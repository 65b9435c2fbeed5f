"""The admin API (bearer token from --admin-token; off without one): list the workers, replace a
worker's assignment (which wakes its long poll).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

from rma_coordinator.api.deps import Admin, State
from rma_coordinator.api.models import AssignmentBody

router = APIRouter(prefix="/api/admin", dependencies=[Admin])


@router.get("/workers")
def workers(state: State) -> list[dict[str, Any]]:
    return [w.public() for w in state.registry.all()]


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
