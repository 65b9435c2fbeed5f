"""A misbehaving coordinator for fault-injection tests, served on loopback only."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("http500", "invalid_json", "wrong_types", "huge", "hang")
# Refusals of Part 3: a 422 in FastAPI's shape; an edge router with no coordinator behind it.
REFUSE_422, NO_COORDINATORS = "refuse_422", "no_coordinators"
REFUSAL = {"detail": [{"loc": ["body", "tunnel_url"], "msg": "Field required", "type": "missing"}]}
CANNED = {
    "http500": (500, b'{"detail": "boom"}'),
    REFUSE_422: (422, json.dumps(REFUSAL).encode()),
    NO_COORDINATORS: (503, b'{"error": "No coordinators available"}'),
}
# Answers meant to wedge or spin an agent (not in MODES: they get tests of their own).
TRICKLE_BODY, TRICKLE_HEADERS, EARLY_304 = "trickle_body", "trickle_headers", "early_304"


class BadCoordinator:
    def __init__(self, port: int, mode: str) -> None:
        self.mode = mode
        self.requests = 0
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                owner.requests += 1
                owner.paths.append(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                owner.respond(self)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def respond(self, h: BaseHTTPRequestHandler) -> None:
        if self.mode in (TRICKLE_BODY, TRICKLE_HEADERS, EARLY_304):
            return self._wedge(h)
        if self.mode == "hang":
            time.sleep(120)
            return
        if self.mode in CANNED:
            status, canned = CANNED[self.mode]
            return self._send(h, status, canned)
        if self.mode == "invalid_json":
            return self._send(h, 200, b"{not json")
        if self.mode == "wrong_types":
            body = {
                "status": 5,
                "assignment_generation": "seven",
                "generation": "x",
                "tier": "gpu",
                "containers": "all",
                "worker_id": ["a"],
            }
            return self._send(h, 200, json.dumps(body).encode())
        h.send_response(200)  # huge: 10 MB of JSON array
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(10 * 1024 * 1024))
        h.end_headers()
        chunk = b"1," * 512 * 1024
        try:
            for _ in range(10):
                h.wfile.write(chunk)
        except OSError:
            return

    def _wedge(self, h: BaseHTTPRequestHandler) -> None:
        if self.mode == EARLY_304:
            return self._early_304(h)
        return self._trickle(h, headers=self.mode == TRICKLE_HEADERS)

    @staticmethod
    def _trickle(h: BaseHTTPRequestHandler, *, headers: bool) -> None:
        """One byte every 0.2 s, of the headers or of a 1 000-byte body, for a minute."""
        try:
            if headers:
                h.wfile.write(b"HTTP/1.1 200 OK\r\n")
                for _ in range(300):
                    h.wfile.write(b"X")
                    h.wfile.flush()
                    time.sleep(0.2)
                return
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", "1000")
            h.end_headers()
            for _ in range(300):
                h.wfile.write(b" ")
                h.wfile.flush()
                time.sleep(0.2)
        except OSError:
            return

    def _early_304(self, h: BaseHTTPRequestHandler) -> None:
        """A valid registration asking for 1 000 heartbeats a second, whose long poll answers
        304 at once, every time."""
        if h.path.endswith("/register"):
            body = {
                "worker_id": "worker-spin",
                "tier": 2,
                "assigned_containers": [],
                "heartbeat_interval": 0.001,
                "token": "t",
                "assignment_url": "/api/worker/worker-spin/assignment",
            }
            return self._send(h, 200, json.dumps(body).encode())
        if "/assignment" in h.path and "wait=" in h.path:
            h.send_response(304)
            h.send_header("ETag", '"1"')
            h.end_headers()
            return None
        if "/assignment" in h.path:
            body = {"generation": 1, "tier": 2, "containers": []}
            h.send_response(200)
            h.send_header("ETag", '"1"')
            data = json.dumps(body).encode()
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            return None
        return self._send(h, 200, b'{"status": "ok"}')

    def count(self, part: str) -> int:
        return sum(part in p for p in self.paths)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, code: int, body: bytes) -> None:
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def close(self) -> None:
        self._server.shutdown()  # a handler still trickling ends on its own (daemon thread)
        self._server.server_close()
