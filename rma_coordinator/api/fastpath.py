"""The Part 1/2 heartbeat answered beside FastAPI's stack: every worker sends one every interval,
so at pool scale it is nearly all the coordinator does, and FastAPI's routing, dependency solving,
exception wrapping and response classes cost more than the heartbeat's own work (profiled with
py-spy at 100 000 workers: ~60 % of a replica's CPU; `make bench` `capacity`, ADR 0023).

Only the plain success is answered here: a JSON body that validates, a known worker holding its
token, announced URLs already screened. Anything else — a bad body, an unknown worker, a wrong
token, a URL not seen before (screened off the event loop) — is handed, body replayed, to the
FastAPI route in api/workers.py, which stays the one place errors are shaped. The answer is the
route's, byte for byte (Starlette's compact JSON).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException
from pydantic import ValidationError

from rma_coordinator.api.deps import Coordinator, holds
from rma_coordinator.api.limits import ASGIApp, Message, Receive, Scope, Send, too_large
from rma_coordinator.api.models import HeartbeatBody
from rma_coordinator.api.workers import record_heartbeat, screened_before

PATH = "/api/worker/heartbeat"


class HeartbeatFastPath:
    """ASGI middleware in front of the Part 1/2 routes (inside BodyLimit)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        try:
            body = await _body(receive)
        except HTTPException as exc:  # BodyLimit's: more than it declared
            await too_large(send, str(exc.detail))
            return
        answer = _answer(scope["app"].state.coordinator, scope, body)
        if answer is None:
            await self.app(scope, _replay(body, receive), send)
            return
        headers = [(b"content-length", b"%d" % len(answer)), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


def _answer(state: Coordinator, scope: Scope, body: bytes) -> bytes | None:
    """The success answer's bytes, the heartbeat recorded; None: the route must answer."""
    headers = dict(scope.get("headers") or [])
    if not headers.get(b"content-type", b"").startswith(b"application/json"):
        return None
    try:
        beat = HeartbeatBody.model_validate_json(body)
    except ValidationError:
        return None
    if not _plain(state, beat, headers.get(b"authorization", b"").decode("latin-1")):
        return None
    state.guard.screen(beat.containers)
    generation = record_heartbeat(state, beat)
    if generation is None:  # forgotten between the two reads: the route says 404
        return None
    answer: dict[str, Any] = {"status": "ok"}
    if state.config.part2:
        answer["assignment_generation"] = generation
    return json.dumps(answer, separators=(",", ":")).encode()


def _plain(state: Coordinator, beat: HeartbeatBody, authorization: str) -> bool:
    """A known worker, its token as kept, every announced URL screened before."""
    known, expected = state.registry.token_hash(beat.worker_id)
    return known and holds(authorization, expected) and screened_before(state, beat)


async def _body(receive: Receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body once more, then whatever the connection says next (a disconnect)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
