"""The pool's way in (the contract's Part 4): `/service/<name>/<path>` (the community coordinator's
route) and `/api/service/<name>/<path>` (the service and edge coordinators') are proxied to a
worker that announced `<name>` at a URL and reports it healthy, round-robin among them.

Bounded like every other route: the request body by the app's limit (64 KiB), the answer by
MAX_ANSWER, the whole exchange by a connect and a read timeout. The caller's `Authorization`,
cookies and hop-by-hop headers are never forwarded (a worker's service must not see the
pool's credentials). 503 when no worker serves the name; 502 when the chosen one fails.
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from rma_coordinator.api.deps import Coordinator
from rma_coordinator.db import Worker

MAX_ANSWER = 8 * 1024 * 1024
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
DROPPED = frozenset(
    {
        "authorization",
        "cookie",
        "host",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
router = APIRouter()
_turns = itertools.count()


def healthy_urls(workers: list[Worker], name: str) -> list[str]:
    """The URLs `name` is served at by online workers that do not report it unhealthy."""
    urls = []
    for worker in workers:
        if worker.status != "online":
            continue
        state = (worker.services_status or {}).get(name, "healthy")
        url = _announced_url(worker, name)
        if url and state == "healthy":
            urls.append(url)
    return sorted(urls)


def _announced_url(worker: Worker, name: str) -> str:
    found = ""
    for entry in worker.services or ():
        if isinstance(entry, dict) and entry.get("name") == name:
            found = str(entry.get("service_url") or "")
    for row in worker.reported or ():  # a Part 2 heartbeat's newer URL
        if isinstance(row, dict) and row.get("service") == name and "service_url" in row:
            found = str(row.get("service_url") or "")
    return found


# A pass-through, not part of the API: left out of the OpenAPI schema (where one function on
# several methods would repeat its operation id).
@router.api_route("/service/{name}/{path:path}", methods=METHODS, include_in_schema=False)
@router.api_route("/api/service/{name}/{path:path}", methods=METHODS, include_in_schema=False)
async def proxy(name: str, path: str, request: Request) -> Response:
    state: Coordinator = request.app.state.coordinator
    urls = healthy_urls(await run_in_threadpool(state.registry.all), name)
    if not urls:
        return JSONResponse({"error": f"no worker serves {name!r}"}, status_code=503)
    target = urls[next(_turns) % len(urls)].rstrip("/") + "/" + path
    headers = {k: v for k, v in request.headers.items() if k.lower() not in DROPPED}
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as client:
            answer = await _forward(client, request, target, headers)
    except (httpx.HTTPError, _TooLarge) as exc:
        return JSONResponse({"error": f"{name}: {type(exc).__name__}"}, status_code=502)
    return answer


class _TooLarge(Exception):
    pass


async def _forward(
    client: httpx.AsyncClient, request: Request, target: str, headers: dict[str, Any]
) -> Response:
    body = await request.body()
    params = request.url.query or None
    async with client.stream(
        request.method, target, params=params, headers=headers, content=body
    ) as upstream:
        chunks, size = [], 0
        async for chunk in upstream.aiter_raw():
            size += len(chunk)
            if size > MAX_ANSWER:
                raise _TooLarge
            chunks.append(chunk)
        kept = {k: v for k, v in upstream.headers.items() if k.lower() not in DROPPED}
        return Response(b"".join(chunks), status_code=upstream.status_code, headers=kept)
