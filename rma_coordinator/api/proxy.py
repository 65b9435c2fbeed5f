"""The pool's way in (the contract's Part 4): `/service/<name>/<path>` (the community coordinator's
route) and `/api/service/<name>/<path>` (the service and edge coordinators') are proxied to a
worker that announced `<name>` at a URL and reports it healthy, round-robin among them.

Streamed both ways (issue 25): the answer is passed on as it arrives — a model's tokens as
server-sent events, a chunked body — and the request body is streamed to the worker, bounded by
the app's limit (64 KiB). The answer is bounded by MAX_ANSWER (a stream over it is cut there) and
by time: CONNECT to connect, READ for the first byte and between chunks. One connection pool per
process (`Pools`: plain HTTP shares one; each HTTPS host has its own, so a connection opened with
one name's SNI never carries another name's request). A GET, HEAD or OPTIONS that cannot connect
to the chosen worker goes to the next one, at most twice. The caller's `Authorization`, cookies
and hop-by-hop headers are never forwarded (a worker's service must not see the pool's
credentials). 503 when no worker serves the name; 502 when the chosen one fails.

A worker's answer is served on the coordinator's own origin, so it is held to what a proxy of
strangers' content must allow (issue 21): the URL screened again and its address pinned for the
connection (api/guard.py); a path with encoded slashes or dot segments refused (400); only the
answer headers in ANSWER_HEADERS passed on (never Set-Cookie, Access-Control-*, Location, or a
second Date/Server), with `Content-Security-Policy: sandbox` and `nosniff` added; `Via` added to
what it forwards, and a request that already carries its own refused (508: a loop).
"""

from __future__ import annotations

import itertools
import re
import weakref
from collections.abc import AsyncIterator, Callable

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from rma_coordinator.api.deps import Coordinator
from rma_coordinator.api.guard import Refused
from rma_coordinator.api.priority import KEY_HEADER, Full, Slot
from rma_coordinator.db import Worker

MAX_ANSWER = 8 * 1024 * 1024
RETRIES = 2  # more workers tried when an idempotent request cannot connect
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
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
        "x-rma-contributor-key",  # the pool's, never a worker's business
    }
)
ANSWER_HEADERS = frozenset(
    {
        "content-type",
        "content-encoding",
        "content-language",
        "cache-control",
        "etag",
        "last-modified",
        "expires",
        "vary",
        "retry-after",
        "accept-ranges",
        "content-range",
    }
)
VIA = "1.1 rma-coordinator"
SANDBOX = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff", "Via": VIA}
_BAD_PATH = re.compile(r"%2f|%5c|%2e|\\", re.IGNORECASE)
router = APIRouter()
_turns = itertools.count()


def healthy_urls(workers: list[Worker], name: str) -> list[tuple[str, str]]:
    """(URL, worker id) where `name` is served by online workers that do not report it
    unhealthy."""
    urls = []
    for worker in workers:
        if worker.status != "online":
            continue
        state = (worker.services_status or {}).get(name, "healthy")
        url = _announced_url(worker, name)
        if url and state == "healthy":
            urls.append((url, worker.id))
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
    if any(VIA in v for v in request.headers.getlist("via")):
        return JSONResponse({"error": "a loop through this coordinator"}, status_code=508)
    raw = request.scope.get("raw_path", b"").decode("latin-1")
    if _BAD_PATH.search(raw) or any(part in (".", "..") for part in path.split("/")):
        return JSONResponse({"error": "encoded slashes or dot segments"}, status_code=400)
    urls = healthy_urls(await run_in_threadpool(state.registry.serving, name), name)
    if not urls:
        return JSONResponse({"error": f"no worker serves {name!r}"}, status_code=503)
    first = next(_turns)
    return await _pass_on(state, request, name, [*urls[first % len(urls) :], *urls][: len(urls)])


async def _pass_on(
    state: Coordinator, request: Request, name: str, urls: list[tuple[str, str]]
) -> Response:
    """To a worker of `urls` with room (priority.py: in flight bounded per worker, a queue when
    all are full); a GET, HEAD or OPTIONS that could not connect goes to the next one with room
    (at most RETRIES more): its body is kept to be sent again, any other is streamed."""
    where = {worker_id: url for url, worker_id in urls}
    try:
        chosen = await state.gate.acquire(
            name, list(where), keyed=await _keyed(state, request.headers.get(KEY_HEADER))
        )
    except Full:
        return JSONResponse(
            {"error": f"{name}: every worker serving it is busy"},
            status_code=429,
            headers={"Retry-After": "1"},
        )
    idempotent = request.method in IDEMPOTENT
    tries = 1 + RETRIES if idempotent else 1
    body: bytes | AsyncIterator[bytes] = await request.body() if idempotent else request.stream()
    # Content-Length, when the caller sent one, goes on with the streamed body (the app's limit
    # held it to 64 KiB); without one the body goes chunked.
    headers = {k: v for k, v in request.headers.items() if k.lower() not in DROPPED}
    raw = request.scope.get("raw_path", b"").decode("latin-1")
    failure: Exception | None = None
    others = [w for w in where if w != chosen]
    worker_id: str | None = chosen
    while worker_id is not None and tries > 0:
        tries -= 1
        try:
            upstream = await _send(state, request, where[worker_id], headers, raw, body)
        except Refused as exc:
            state.gate.release(name, worker_id)
            return JSONResponse({"error": f"{name}: refused: {exc}"}, status_code=502)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            failure = exc  # nothing reached that worker: the next one with room may answer
            state.gate.release(name, worker_id)
            worker_id = next((w for w in others if state.gate.try_take(w)), None)
            others = [w for w in others if w != worker_id]
            continue
        except httpx.HTTPError as exc:
            state.gate.release(name, worker_id)
            failure = exc
            break
        if upstream.status_code < 500 and state.ledger is not None:
            state.ledger.witness(worker_id, name, state.config.clock())  # its credits' witness
        kept = {k: v for k, v in upstream.headers.items() if k.lower() in ANSWER_HEADERS}
        slot = Slot(state.gate, name, worker_id)
        stream = _relay(upstream, slot.release)
        # A caller gone before the answer was streamed: the stream never starts (its `finally`
        # never runs); the slot is given back when the stream is dropped.
        weakref.finalize(stream, slot.release)
        return StreamingResponse(stream, status_code=upstream.status_code, headers=kept | SANDBOX)
    else:
        if worker_id is not None:
            state.gate.release(name, worker_id)  # retries used up with a slot still held
    return JSONResponse({"error": f"{name}: {type(failure).__name__}"}, status_code=502)


async def _keyed(state: Coordinator, key: str | None) -> bool:
    """Whether the request carries the contributor key of a worker with credits."""
    if not key or state.ledger is None or len(key) > 256:
        return False
    found = await run_in_threadpool(state.ledger.contributor, key)
    return found is not None and found[1] > 0


async def _send(
    state: Coordinator,
    request: Request,
    url: str,
    headers: dict[str, str],
    raw: str,
    body: bytes | AsyncIterator[bytes],
) -> httpx.Response:
    target = await run_in_threadpool(state.guard.target, url)
    client = await state.pools.client(target)
    built = client.build_request(
        request.method,
        target.pinned(_raw_rest(raw)),
        params=request.url.query or None,
        headers=headers | {"host": target.host_header, "via": VIA},
        content=body,
        extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
    )
    return await client.send(built, stream=True)


async def _relay(upstream: httpx.Response, done: Callable[[], None]) -> AsyncIterator[bytes]:
    """The worker's answer as it arrives, cut at MAX_ANSWER or a READ timeout between chunks
    (the status is sent by then: the stream simply ends); `done` when it is over, whichever
    way (its worker's slot is free again)."""
    size = 0
    try:
        async for chunk in upstream.aiter_raw():
            size += len(chunk)
            if size > MAX_ANSWER:
                return
            yield chunk
    except httpx.HTTPError:
        return
    finally:
        done()
        await upstream.aclose()


def _raw_rest(raw: str) -> str:
    """The path after `/service/<name>/` (or `/api/service/<name>/`) as the caller encoded it:
    forwarded as it came, never decoded first (`%3F` must not become a query)."""
    parts = raw.split("/", 4 if raw.startswith("/api/") else 3)
    return parts[-1] if len(parts) == (5 if raw.startswith("/api/") else 4) else ""
