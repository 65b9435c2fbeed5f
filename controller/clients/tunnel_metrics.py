"""The requests each tunnel carried, from the tunnel's own Prometheus metrics (cloudflared's
`--metrics`: `cloudflared_tunnel_total_requests`, a counter since the tunnel started; the
stand-in tunnel serves the same name). What the agent can count honestly about the traffic its
services served, for the signed receipts (issue 26): the agent never sees the requests itself.

Read on the tunnel container's address (the host reaches containers on the agent's bridge
networks), bounded: 1 s, 64 KiB.
"""

from __future__ import annotations

import re

import requests

from controller.core.models import ActualContainer
from controller.core.tunnels import METRICS_PORT, TUNNEL_PREFIX

METRIC = re.compile(r"^cloudflared_tunnel_total_requests(?:\{[^}]*\})?\s+([0-9.eE+]+)\s*$", re.M)
MAX_BYTES = 64 * 1024


def total_requests(address: str, port: int = METRICS_PORT, timeout: float = 1.0) -> int | None:
    """The tunnel's request counter, or None: not reachable, or no such metric."""
    try:
        with requests.get(f"http://{address}:{port}/metrics", timeout=timeout, stream=True) as resp:
            if resp.status_code != 200:
                return None
            text = resp.raw.read(MAX_BYTES, decode_content=True).decode("utf-8", "replace")
    except (requests.RequestException, OSError):
        return None
    found = METRIC.findall(text)
    try:
        return sum(int(float(v)) for v in found) if found else None
    except ValueError:
        return None


def by_service(
    containers: list[ActualContainer], port: int = METRICS_PORT
) -> dict[str, int] | None:
    """{service container: requests its tunnel carried} for each running tunnel that answered;
    None when no tunnel answered (nothing counted)."""
    counted: dict[str, int] = {}
    for c in containers:
        if not c.name.startswith(TUNNEL_PREFIX) or c.state != "running":
            continue
        for _network, ip in c.addresses:
            n = total_requests(ip, port)
            if n is not None:
                counted[c.name.removeprefix(TUNNEL_PREFIX)] = n
                break
    return counted or None
