"""The Part 1/2 heartbeat's fast path (api/fastpath.py, issue 25 item 3): the plain success is
answered beside FastAPI with the route's own bytes, and every other case — bad body, unknown
worker, wrong token, a URL not screened yet, a body over the limit — reaches the route, which
answers as it always did."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rma_coordinator.api import fastpath
from rma_coordinator.api.deps import Coordinator
from tests.unit.test_coordinator_app import ADMIN, make, register

URL = "/api/worker/heartbeat"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    with make(tmp_path) as client:
        yield client


def state(api: TestClient) -> Coordinator:
    coordinator: Coordinator = api.app.state.coordinator  # type: ignore[attr-defined]
    return coordinator


def scope(token: str | None, content_type: bytes = b"application/json") -> dict[str, Any]:
    headers = [(b"content-type", content_type)]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return {"type": "http", "method": "POST", "path": URL, "headers": headers}


def beat(worker_id: str, **extra: Any) -> bytes:
    return json.dumps({"worker_id": worker_id, "status": "healthy", **extra}).encode()


def test_the_plain_success_is_answered_beside_fastapi_with_the_routes_bytes(
    api: TestClient,
) -> None:
    w = register(api)
    answer = fastpath._answer(state(api), scope(w["token"]), beat(w["worker_id"]))
    assert answer == b'{"status":"ok","assignment_generation":1}'
    resp = api.post(URL, content=beat(w["worker_id"]), headers=_auth(w))
    assert resp.status_code == 200 and resp.content == answer
    assert resp.headers["content-type"] == "application/json"
    assert int(resp.headers["content-length"]) == len(answer)
    [row] = api.get("/api/admin/workers", headers=ADMIN).json()
    assert row["heartbeats"] == 2 and api.get("/health").json()["requests"]["heartbeat"] == 2


@pytest.mark.parametrize(
    ("case", "status"),
    [("no token", 401), ("wrong token", 401), ("unknown", 404), ("bad body", 422)],
)
def test_every_other_case_is_the_routes_answer(api: TestClient, case: str, status: int) -> None:
    w = register(api)
    token = {"no token": None, "wrong token": "nope"}.get(case, w["token"])
    worker_id = "worker-00000000" if case == "unknown" else w["worker_id"]
    body = b'{"status": "healthy"}' if case == "bad body" else beat(worker_id)
    assert fastpath._answer(state(api), scope(token), body) is None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    resp = api.post(URL, content=body, headers=headers)
    assert resp.status_code == status
    assert "detail" in resp.json()  # FastAPI's shape, the route's
    assert api.get("/health").json()["requests"].get("heartbeat", 0) == 0  # none recorded


def test_a_url_not_screened_yet_goes_to_the_route_and_is_screened(api: TestClient) -> None:
    w = register(api)
    rows = [{"name": "rag", "service": "rag", "service_url": "http://127.0.0.1:8102"}]
    body = beat(w["worker_id"], containers=rows)
    assert fastpath._answer(state(api), scope(w["token"]), body) is None  # new: resolved first
    assert api.post(URL, content=body, headers=_auth(w)).status_code == 200
    # seen now: the next identical heartbeat is the fast path's
    assert fastpath._answer(state(api), scope(w["token"]), body) is not None


def test_another_content_type_goes_to_the_route(api: TestClient) -> None:
    w = register(api)
    body = beat(w["worker_id"])
    assert fastpath._answer(state(api), scope(w["token"], b"text/plain"), body) is None


def test_a_streamed_body_over_the_limit_is_413(api: TestClient) -> None:
    w = register(api)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"worker_id": "' + w["worker_id"].encode() + b'", "pad": "'
        for _ in range(20):
            yield b"x" * 4096
        yield b'"}'

    resp = api.post(URL, content=chunks(), headers=_auth(w))
    assert resp.status_code == 413 and "over" in resp.json()["detail"]


def test_the_other_dialects_have_no_fast_path(api: TestClient, tmp_path: Path) -> None:
    assert fastpath.HeartbeatFastPath in [m.cls for m in api.app.user_middleware]  # type: ignore[attr-defined]
    for dialect in ("edge", "local"):
        (tmp_path / dialect).mkdir()
        with make(tmp_path / dialect, dialect=dialect) as client:
            stack = client.app.user_middleware  # type: ignore[attr-defined]
            assert fastpath.HeartbeatFastPath not in [m.cls for m in stack]


def _auth(w: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {w['token']}", "Content-Type": "application/json"}
