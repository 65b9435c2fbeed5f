"""This machine as a target the containers should not reach: a one-line HTTP service on this
machine's address on a network the test made, and how to find that address on any engine."""

from __future__ import annotations

import http.server
import threading
from typing import Any

import docker


def gateway_of(client: docker.DockerClient, network: str) -> str:
    """This machine's address on a network the test made (a freshly installed engine's default
    bridge says no `Gateway` in its IPAM config; a network the agent made does, and a
    container on it always knows its own)."""
    configs = client.api.inspect_network(network)["IPAM"]["Config"] or [{}]
    if configs[0].get("Gateway"):
        return str(configs[0]["Gateway"])
    found = client.api.inspect_network(network, verbose=True)["Containers"]
    some = next(iter(found))
    return str(
        client.api.inspect_container(some)["NetworkSettings"]["Networks"][network]["Gateway"]
    )


class HostService:
    """A one-line HTTP service of this machine's, on `address` (a local bridge's gateway)."""

    def __init__(self, address: str) -> None:
        class Hello(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"host-secret\n")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer((address, 0), Hello)

    def __enter__(self) -> int:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return int(self._server.server_address[1])

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
