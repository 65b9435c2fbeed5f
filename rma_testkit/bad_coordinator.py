"""A misbehaving coordinator for fault-injection tests, served on loopback only."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("http500", "invalid_json", "wrong_types", "huge", "hang")


class BadCoordinator:
    def __init__(self, port: int, mode: str) -> None:
        self.mode = mode
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                owner.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                owner.respond(self)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def respond(self, h: BaseHTTPRequestHandler) -> None:
        if self.mode == "hang":
            time.sleep(120)
            return
        if self.mode == "http500":
            return self._send(h, 500, b'{"detail": "boom"}')
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

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, code: int, body: bytes) -> None:
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
