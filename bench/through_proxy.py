"""`make bench`, section `proxy` (issue 25): what the coordinator's service proxy adds to a
request. A worker's service on loopback (HTTP/1.1, keep-alive) is asked directly and through
the reference coordinator served in this process, by the same client: the time to the first byte
(median of each, and the difference: target ≤ 10 ms), requests per second one after another,
and a model's stream — 5 server-sent events sent 1 s apart — timed to its first event through
the proxy (target ≤ 0.1 s: the answer is passed on as it arrives, not at its end).
"""

from __future__ import annotations

import socket
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import requests

from rma_testkit.served import Served

BODY = b'{"answer": "ok"}'


class _Handler(BaseHTTPRequestHandler):
    """A service as real servers answer: HTTP/1.1 kept alive, TCP_NODELAY (uvicorn's and
    vLLM's), so a small answer is not held 40 ms by Nagle's algorithm against a delayed ACK."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        if self.path.endswith("/events"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for i in range(5):
                if i:
                    time.sleep(1.0)  # the model's next token
                self.wfile.write(b"data: %d\n\n" % i)
                self.wfile.flush()
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: Any) -> None:
        return


def _first_byte(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    with client.stream("GET", url) as answer:
        chunks = answer.iter_raw()
        next(chunks)
        took = time.perf_counter() - started
        for _ in chunks:
            pass
    return took


def _rate(client: httpx.Client, url: str, seconds: float) -> float:
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        client.get(url).raise_for_status()
        done += 1
    return done / (time.perf_counter() - started)


def _first_event(client: httpx.Client, url: str) -> tuple[float, float]:
    started = time.perf_counter()
    with client.stream("GET", url) as answer:
        lines = answer.iter_lines()
        next(line for line in lines if line.startswith("data:"))
        first = time.perf_counter() - started
        for _ in lines:
            pass
    return first, time.perf_counter() - started


def run(repeats: int = 200, seconds: float = 3.0, streams: int = 3) -> dict[str, Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    # accept() never waits for ever: a connection gone between the poll and the accept left the
    # server's thread blocked there and its `shutdown` waiting with it (seen once in CI).
    server.socket.settimeout(1.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    direct = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        coord = Served(Path(tmp), dialect="edge")
        try:
            body = {
                "worker_id": "worker-bench",
                "capabilities": {"cpu_cores": 4, "ram": "16.0GB"},
                "tunnel_url": "",
                "containers": [{"name": "llm", "service_url": direct}],
            }
            requests.post(
                coord.url + "/api/worker/register", json=body, timeout=5
            ).raise_for_status()
            proxied = f"{coord.url}/api/service/llm"
            with httpx.Client(timeout=30) as client:
                for base in (direct, proxied):  # warm both connections
                    client.get(base + "/x").raise_for_status()
                pairs = [
                    (_first_byte(client, direct + "/x"), _first_byte(client, proxied + "/x"))
                    for _ in range(repeats)
                ]
                rate_direct = _rate(client, direct + "/x", seconds)
                rate_proxied = _rate(client, proxied + "/x", seconds)
                events = [_first_event(client, proxied + "/events") for _ in range(streams)]
        finally:
            coord.close()
            server.shutdown()
            server.server_close()
    ttfb_direct = statistics.median(d for d, _ in pairs)
    ttfb_proxied = statistics.median(p for _, p in pairs)
    return {
        "ttfb_direct_ms": round(ttfb_direct * 1000, 2),
        "ttfb_proxied_ms": round(ttfb_proxied * 1000, 2),
        "ttfb_added_ms": round((ttfb_proxied - ttfb_direct) * 1000, 2),
        "requests_per_s_direct": round(rate_direct, 1),
        "requests_per_s_proxied": round(rate_proxied, 1),
        "first_event_s": round(statistics.median(f for f, _ in events), 3),
        "stream_s": round(statistics.median(t for _, t in events), 2),
        "repeats": repeats,
    }
