"""The reference coordinator's service proxy (Part 4) in process: a request to `/service/<name>/…`
or `/api/service/<name>/…` reaches a healthy announced URL (round-robin), never with the caller's
credentials; 503 when nobody serves the name, 502 when the chosen worker fails."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from tests.contract.conftest import Served

Serve = Callable[..., Served]


class Origin:
    """A worker's service on loopback: answers who it is and what it was sent."""

    def __init__(self, tag: str) -> None:
        owner = self
        self.seen: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                owner.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
                data = json.dumps({"from": tag, "path": self.path, "body": body}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def origins() -> Iterator[list[Origin]]:
    made = [Origin("a"), Origin("b")]
    yield made
    for origin in made:
        origin.close()


def join(coord: Served, worker_id: str, url: str, status: str = "healthy") -> None:
    body = {
        "worker_id": worker_id,
        "capabilities": {"cpu_cores": 4, "ram": "16.0GB"},
        "tunnel_url": "",
        "containers": [{"name": "notes-coa", "service_url": url, "port": 8100}],
    }
    requests.post(coord.url + "/api/worker/register", json=body, timeout=5).raise_for_status()
    beat = {"worker_id": worker_id, "services_status": {"notes-coa": status}}
    requests.post(coord.url + "/api/worker/heartbeat", json=beat, timeout=5).raise_for_status()


def test_a_request_reaches_a_healthy_service_round_robin(
    serve: Serve, origins: list[Origin]
) -> None:
    coord = serve(dialect="edge")
    join(coord, "worker-a", origins[0].url)
    join(coord, "worker-b", origins[1].url)
    join(coord, "worker-c", "http://127.0.0.1:9", status="unhealthy")  # never chosen
    seen = set()
    for route in ("/service", "/api/service") * 2:
        resp = requests.post(
            f"{coord.url}{route}/notes-coa/notes/1?q=x",
            data="hello",
            headers={"Authorization": "Bearer pool-secret", "Cookie": "s=1"},
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        got = resp.json()
        assert got["path"] == "/notes/1?q=x" and got["body"] == "hello"
        seen.add(got["from"])
    assert seen == {"a", "b"}
    for origin in origins:
        for request in origin.seen:
            assert "Authorization" not in request["headers"]
            assert "Cookie" not in request["headers"]


def test_no_worker_is_503_and_a_failing_one_is_502(serve: Serve) -> None:
    coord = serve(dialect="local")
    resp = requests.get(f"{coord.url}/service/notes-coa/x", timeout=5)
    assert resp.status_code == 503 and "notes-coa" in resp.json()["error"]
    join_local = {
        "worker_id": "worker-z",
        "tunnel_url": "",
        "worker_type": "cpu",
        "containers": [{"name": "notes-coa", "service_url": "http://127.0.0.1:9"}],
    }
    requests.post(coord.url + "/api/worker/register", json=join_local, timeout=5)
    assert requests.get(f"{coord.url}/service/notes-coa/x", timeout=10).status_code == 502


def test_a_body_over_the_limit_is_refused_before_any_worker_sees_it(
    serve: Serve, origins: list[Origin]
) -> None:
    coord = serve(dialect="edge")
    join(coord, "worker-a", origins[0].url)
    resp = requests.post(f"{coord.url}/api/service/notes-coa/up", data=b"x" * 70_000, timeout=5)
    assert resp.status_code == 413 and origins[0].seen == []
