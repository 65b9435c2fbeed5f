"""The tunnels' request counters (clients/tunnel_metrics.py): cloudflared's Prometheus text read
on loopback, bounded; what a tunnel that does not answer, or has no such metric, gives: None."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from controller.clients import tunnel_metrics
from controller.core.models import ActualContainer

TEXT = """# HELP cloudflared_tunnel_total_requests Amount of requests proxied through all tunnels
# TYPE cloudflared_tunnel_total_requests counter
cloudflared_tunnel_total_requests{connection="0"} 7
cloudflared_tunnel_total_requests{connection="1"} 5
cloudflared_tunnel_request_errors 1
"""


@pytest.fixture
def metrics() -> Iterator[tuple[int, list[str]]]:
    bodies = [TEXT]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = bodies[0].encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], bodies
    server.shutdown()
    server.server_close()


def test_the_counter_is_read_and_summed_over_connections(metrics: tuple[int, list[str]]) -> None:
    port, bodies = metrics
    assert tunnel_metrics.total_requests("127.0.0.1", port) == 12
    bodies[0] = "# nothing counted here\n"
    assert tunnel_metrics.total_requests("127.0.0.1", port) is None


def test_a_tunnel_that_does_not_answer_counts_nothing() -> None:
    assert tunnel_metrics.total_requests("127.0.0.1", 1, timeout=0.5) is None


def test_each_running_tunnel_is_read_by_its_service(metrics: tuple[int, list[str]]) -> None:
    port, _ = metrics
    rows = [
        ActualContainer("1", "rma-tunnel-rag", "running", addresses=(("net", "127.0.0.1"),)),
        ActualContainer("2", "rma-tunnel-ocr", "exited", addresses=(("net", "127.0.0.1"),)),
        ActualContainer("3", "rag", "running", addresses=(("net", "127.0.0.1"),)),
    ]
    assert tunnel_metrics.by_service(rows, port) == {"rag": 12}
    assert tunnel_metrics.by_service(rows[1:], port) is None
