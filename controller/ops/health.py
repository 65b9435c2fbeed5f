"""The agent's small HTTP endpoint (RMA_HEALTH_ADDR, default 127.0.0.1:9321; `off` disables it):

- /healthz  200 while the loop is alive and its last successful pass is recent, else 503
- /readyz   200 when registered (or the manifest loaded) and converged, else 503
- /metrics  Prometheus text format
- /status   the JSON that `rma-worker status` shows

Served by the standard library on a daemon thread; it only reads snapshots the agent publishes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

log = structlog.get_logger(__name__)
Check = Callable[[], tuple[bool, dict[str, Any]]]


class HealthServer:
    def __init__(
        self,
        addr: tuple[str, int],
        *,
        alive: Check,
        ready: Check,
        status: Callable[[], dict[str, Any]],
        metrics: Callable[[], bytes],
    ) -> None:
        routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/healthz": lambda: _check(alive),
            "/readyz": lambda: _check(ready),
            "/status": lambda: (200, "application/json", json.dumps(status()).encode()),
            "/metrics": lambda: (200, "text/plain; version=0.0.4; charset=utf-8", metrics()),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                code, ctype, body = route() if route else (404, "text/plain", b"not found\n")
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # requests are not worth a log line each

        self._server = ThreadingHTTPServer(addr, Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host if isinstance(host, str) else host.decode()}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        log.info("health_endpoint", address=self.url)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _check(check: Check) -> tuple[int, str, bytes]:
    ok, detail = check()
    body = json.dumps({"ok": ok, **detail}).encode()
    return (200 if ok else 503), "application/json", body
