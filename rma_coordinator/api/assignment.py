"""Part 2's assignment resource: ETag, If-None-Match and long poll (`?wait=`, at most 60 s).
Async, because a long poll waits on the notifier; its SQLite reads run in the threadpool.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from rma_coordinator.api.deps import State, check_token

MAX_WAIT = 60
router = APIRouter()


@router.get("/api/worker/{worker_id}/assignment")
async def assignment(
    worker_id: str,
    state: State,
    wait: Annotated[int, Query(ge=0)] = 0,
    if_none_match: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    registry = state.registry
    await run_in_threadpool(check_token, registry, worker_id, authorization)
    deadline = time.monotonic() + min(wait, MAX_WAIT)
    while True:
        with state.notifier.watch(worker_id) as event:  # before the read: no change missed
            worker = await run_in_threadpool(registry.get, worker_id)
            if worker is None:
                raise HTTPException(404, "Worker not found")
            etag = f'"{worker.generation}"'
            if if_none_match != etag:
                return JSONResponse(
                    {
                        "generation": worker.generation,
                        "tier": worker.tier,
                        "containers": worker.containers,
                    },
                    headers={"ETag": etag},
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Response(status_code=304, headers={"ETag": etag})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
