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

from rma_testkit.served import Served

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

        self._serve(Handler)

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.socket.settimeout(1.0)  # accept() never blocks its shutdown for ever
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
    answer = requests.post(coord.url + "/api/worker/register", json=body, timeout=5)
    answer.raise_for_status()
    beat = {"worker_id": worker_id, "services_status": {"notes-coa": status}}
    auth = {"Authorization": f"Bearer {answer.json()['token']}"}
    requests.post(
        coord.url + "/api/worker/heartbeat", json=beat, headers=auth, timeout=5
    ).raise_for_status()


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


class Hostile(Origin):
    """A worker's service that answers with what must never reach the pool on the
    coordinator's origin: a cookie, CORS for another site, a redirect, script."""

    def __init__(self) -> None:
        owner = self
        self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.seen.append({"path": self.path, "headers": dict(self.headers), "body": ""})
                data = b"<script>steal(document.cookie)</script>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Set-Cookie", "session=evil; Path=/")
                self.send_header("Access-Control-Allow-Origin", "https://evil.example")
                self.send_header("Access-Control-Allow-Credentials", "true")
                self.send_header("Location", "https://evil.example/")
                self.send_header("Server", "evil/1.0")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._serve(Handler)


def test_loopback_and_private_workers_are_refused_unless_allowed(
    serve: Serve, origins: list[Origin]
) -> None:
    """Issue 21, item 8: a worker announcing a loopback URL got anyone the coordinator host's
    internal services (its registry's /v2/_catalog), in any spelling of loopback."""
    coord = serve(dialect="edge", allow_private_workers=False)
    port = origins[0].url.rsplit(":", 1)[1]
    for n, url in enumerate(
        (origins[0].url, f"http://localhost:{port}", f"http://127.1:{port}",
         f"http://[::ffff:127.0.0.1]:{port}", f"http://2130706433:{port}", "http://10.0.0.1:80",
         "http://169.254.169.254/latest", "http://0.0.0.0:80")
    ):  # fmt: skip
        join(coord, f"worker-{n}", url)
    index = requests.get(
        f"{coord.url}/api/admin/services", headers={"Authorization": "Bearer adm"}, timeout=5
    ).json()
    assert {e["service_url"] for e in index["notes-coa"]} == {""}  # kept out when announced
    assert (
        requests.get(f"{coord.url}/api/service/notes-coa/v2/_catalog", timeout=5).status_code == 503
    )
    assert origins[0].seen == []


def test_a_path_with_encoded_slashes_or_dot_segments_is_refused(
    serve: Serve, origins: list[Origin]
) -> None:
    coord = serve(dialect="edge")
    join(coord, "worker-a", origins[0].url + "/app")
    for path in ("..%2f..%2f..%2fsecret%3Fadmin=1", "a/%2e%2e/secret", "a%5c..%5csecret"):
        resp = requests.get(f"{coord.url}/api/service/notes-coa/{path}", timeout=5)
        assert resp.status_code == 400, path
    ok = requests.get(f"{coord.url}/api/service/notes-coa/x%3Fadmin=1", timeout=5)
    assert ok.status_code == 200 and origins[0].seen[-1]["path"] == "/app/x%3Fadmin=1"
    assert len(origins[0].seen) == 1


def test_a_workers_answer_cannot_act_on_the_coordinators_origin(serve: Serve) -> None:
    hostile = Hostile()
    try:
        coord = serve(dialect="edge")
        join(coord, "worker-a", hostile.url)
        resp = requests.get(f"{coord.url}/api/service/notes-coa/", timeout=5)
        assert resp.status_code == 200
        headers = {k.lower(): v for k, v in resp.headers.items()}
        assert "set-cookie" not in headers and "location" not in headers
        assert not any(k.startswith("access-control-") for k in headers)
        assert headers["content-security-policy"] == "sandbox"
        assert headers["x-content-type-options"] == "nosniff"
        assert "evil" not in headers.get("server", "")
        sent = {k.lower(): v for k, v in hostile.seen[0]["headers"].items()}
        assert sent["via"] == "1.1 rma-coordinator"
    finally:
        hostile.close()


def test_a_service_pointing_at_the_coordinator_is_refused_and_a_loop_is_cut(
    serve: Serve,
) -> None:
    """A self-referencing service took the coordinator from 18 to 201 open files in 4 s."""
    coord = serve(dialect="edge")
    join(coord, "worker-a", coord.url + "/api/service/notes-coa")
    resp = requests.get(f"{coord.url}/api/service/notes-coa/x", timeout=10)
    assert resp.status_code in (502, 503), resp.text
    looped = requests.get(
        f"{coord.url}/api/service/notes-coa/x", headers={"Via": "1.1 rma-coordinator"}, timeout=5
    )
    assert looped.status_code == 508
