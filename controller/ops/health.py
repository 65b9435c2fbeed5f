"""The agent's small HTTP endpoint (RMA_HEALTH_ADDR, default 127.0.0.1:9321; `off` disables it):

- /healthz  200 while the loop is alive and its last successful pass is recent, else 503
- /readyz   200 when registered (or the manifest loaded) and converged, else 503
- /metrics  Prometheus text format
- /status   the JSON that `rma-worker status` shows
- /         the owner's page and its API (ops/dashboard.py), when given

Served by the standard library on a daemon thread; it only reads snapshots the agent publishes.
Every request must name the endpoint by an address — an IP literal or `localhost` — in its
`Host` header: a web page that rebinds a name of its own to this machine is refused (421).
Every answer carries security headers and never a CORS header.
"""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

log = structlog.get_logger(__name__)
Check = Callable[[], tuple[bool, dict[str, Any]]]
MAX_BODY = 4096
SECURITY_HEADERS = (
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass(frozen=True)
class Response:
    code: int
    ctype: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


Route = Callable[[Request], Response]


def text(code: int, message: str) -> Response:
    return Response(code, "text/plain; charset=utf-8", (message + "\n").encode())


def as_json(code: int, data: Any) -> Response:
    return Response(code, "application/json", json.dumps(data).encode())


def known_host(host: str | None) -> bool:
    """`Host` names this machine by address: an IP literal or localhost (any port: an SSH
    forward may map another one), never a DNS name a page could rebind."""
    if not host:
        return False
    if host.startswith("["):  # [::1]:9321
        end = host.find("]")
        name = host[1:end] if end > 0 else ""
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name.lower() == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HealthServer:
    def __init__(
        self,
        addr: tuple[str, int],
        *,
        alive: Check,
        ready: Check,
        status: Callable[[], dict[str, Any]],
        metrics: Callable[[], bytes],
        routes: Mapping[tuple[str, str], Route] | None = None,
    ) -> None:
        table: dict[tuple[str, str], Route] = {
            ("GET", "/healthz"): lambda _r: _check(alive),
            ("GET", "/readyz"): lambda _r: _check(ready),
            ("GET", "/status"): lambda _r: as_json(200, status()),
            ("GET", "/metrics"): lambda _r: Response(
                200, "text/plain; version=0.0.4; charset=utf-8", metrics()
            ),
            **(routes or {}),
        }
        self._server = ThreadingHTTPServer(addr, _handler(table))
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


def answer(table: Mapping[tuple[str, str], Route], request: Request) -> Response:
    """The response to one request (no I/O: the unit tests call it directly)."""
    if not known_host(request.headers.get("Host")):
        return text(421, "refused: address this endpoint by IP (127.0.0.1) or localhost")
    route = table.get((request.method, request.path))
    if route is not None:
        return route(request)
    allowed = sorted(m for m, p in table if p == request.path)
    if allowed:
        return Response(
            405, "text/plain", b"method not allowed\n", (("Allow", ", ".join(allowed)),)
        )
    return text(404, "not found")


def _handler(table: Mapping[tuple[str, str], Route]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            if size > MAX_BODY:
                response = text(413, "request body too large")
            else:
                body = self.rfile.read(size) if size > 0 else b""
                path = self.path.split("?", 1)[0]
                headers = {k.title(): v for k, v in self.headers.items()}
                response = answer(table, Request(self.command, path, headers, body))
            self.send_response(response.code)
            self.send_header("Content-Type", response.ctype)
            self.send_header("Content-Length", str(len(response.body)))
            for key, value in (*SECURITY_HEADERS, *response.headers):
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return  # requests are not worth a log line each

    return Handler


def _check(check: Check) -> Response:
    ok, detail = check()
    return as_json(200 if ok else 503, {"ok": ok, **detail})
